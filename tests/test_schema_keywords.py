"""Honest rules, on the real engine: for each keyword the rules call ``enforced`` for a backend,
generate with the tiny random-weight model under a small schema (random weights write no JSON
at all without the grammar) and check every seeded sample against the schema, for xgrammar
(the session engine) and guidance (one engine for this module).

Keywords called ``validated`` are shown reported ``valid: false`` in tests/test_schema_compiler.py.
"""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest
from conftest import EngineRunner
from PIL import Image

from docextract.config import SamplingConfig
from docextract.requests import ExtractionRequest
from docextract.schema.compiler import check_coverage
from docextract.schema.rules import RULES
from docextract.tasks import task_from_schema

pytestmark = pytest.mark.integration

SEEDS = (1, 2, 3)
BOTH = ("xgrammar", "guidance")
DRAFT4 = "http://json-schema.org/draft-04/schema#"

CASES = {
    "enum": ({"type": "object", "properties": {"e": {"enum": ["x", "y", "z"]}}, "required": ["e"]}, BOTH),
    "const": ({"const": "fixed"}, BOTH),
    "type list": ({"type": ["boolean", "null"]}, BOTH),
    "optional and closed object": (
        {
            "type": "object",
            "properties": {"a": {"type": "boolean"}, "b": {"enum": [1, 2]}},
            "required": ["a"],
            "additionalProperties": False,
        },
        BOTH,
    ),
    "item counts": ({"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 3}, BOTH),
    "prefixItems": (
        {"type": "array", "prefixItems": [{"type": "boolean"}, {"enum": ["a"]}], "minItems": 2, "maxItems": 2},
        BOTH,
    ),
    "tuple items (draft 04)": (
        {
            "$schema": DRAFT4,
            "type": "array",
            "items": [{"enum": [7]}, {"type": "boolean"}],
            "minItems": 2,
            "maxItems": 2,
        },
        BOTH,
    ),
    "string length": ({"type": "string", "minLength": 2, "maxLength": 4}, BOTH),
    "pattern": ({"type": "string", "pattern": "^[A-C]{2}-[0-9]$"}, BOTH),
    "format uuid": ({"type": "string", "format": "uuid"}, BOTH),
    "format ipv4": ({"type": "string", "format": "ipv4"}, BOTH),
    "integer bounds": ({"type": "integer", "minimum": 3, "maximum": 7}, BOTH),
    "exclusive bounds": ({"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 6}, BOTH),
    "boolean exclusiveMinimum (draft 04)": (
        {"$schema": DRAFT4, "type": "integer", "minimum": 3, "exclusiveMinimum": True, "maximum": 5},
        BOTH,
    ),
    "multipleOf": ({"type": "integer", "minimum": 1, "maximum": 30, "multipleOf": 7}, ("guidance",)),
    "anyOf": ({"anyOf": [{"type": "boolean"}, {"enum": [1, 2]}]}, BOTH),
    "allOf, one branch": ({"allOf": [{"type": "integer", "minimum": 1, "maximum": 3}]}, BOTH),
    "allOf, two branches": (
        {"allOf": [{"type": "integer", "minimum": 1, "maximum": 9}, {"type": "integer", "maximum": 3}]},
        ("guidance",),
    ),
    "$ref and $defs": (
        {
            "$defs": {"B": {"enum": [True]}},
            "type": "object",
            "properties": {"x": {"$ref": "#/$defs/B"}},
            "required": ["x"],
        },
        BOTH,
    ),
    "root $ref and definitions": (
        {"$ref": "#/definitions/R", "definitions": {"R": {"type": "integer", "minimum": 0, "maximum": 2}}},
        BOTH,
    ),
}


@pytest.fixture(scope="module")
def guidance_runner(tiny_config):
    runner = EngineRunner(tiny_config.model_copy(update={"structured_output_backend": "guidance"}))
    yield runner
    runner.close()


def _runner(backend, request):
    return request.getfixturevalue("engine_runner" if backend == "xgrammar" else "guidance_runner")


def _samples(runner, task):
    image = Image.new("RGB", (64, 64), (30, 120, 200))

    async def run_all():
        return await asyncio.gather(
            *(
                runner.engine.run(
                    ExtractionRequest(
                        task=task,
                        images=[image],
                        sampling=SamplingConfig(temperature=1.0, seed=seed, max_tokens=96),
                    )
                )
                for seed in SEEDS
            )
        )

    return runner.run(run_all())


@pytest.mark.parametrize("backend", BOTH)
@pytest.mark.parametrize("case", sorted(CASES))
def test_enforced_keyword_holds_in_every_sample(case, backend, request):
    schema, backends = CASES[case]
    if backend not in backends:
        pytest.skip(f"{backend} does not enforce this keyword (validated after instead)")
    task = task_from_schema(schema, "Describe the image.", backend=backend)
    assert task.validated_after == [], task.report()
    results = _samples(_runner(backend, request), task)
    validator = jsonschema.validators.validator_for(schema)
    for result in results:
        assert result.error is None and result.finish_reason == "stop", result
        assert result.valid, (result.raw_text, result.errors)
        assert validator(schema, format_checker=validator.FORMAT_CHECKER).is_valid(result.data), result.raw_text
        assert result.backend == backend and result.validated_after == []


@pytest.mark.parametrize("backend", BOTH)
def test_every_enforced_rule_has_a_case(backend):
    enforced = {r.keyword for r in RULES if r.status(backend) == "enforced"}
    seen = set()
    for schema, backends in CASES.values():
        if backend in backends:
            seen |= {e.keyword for e in check_coverage(schema, backend).coverage if e.status == "enforced"}
    # `items` draft-04 tuple is read as prefixItems; `properties` etc. come from the object cases.
    assert enforced - seen == set()


def test_a_validated_keyword_is_reported_by_the_engine(engine_runner):
    # xgrammar ignores multipleOf: it is left to the check after, and said so on the result.
    task = task_from_schema({"type": "integer", "minimum": 1, "maximum": 30, "multipleOf": 7}, "x")
    results = _samples(engine_runner, task)
    for result in results:
        assert result.validated_after == ["#: multipleOf"] and result.backend == "xgrammar"
        assert result.valid == (result.data is not None and result.data % 7 == 0), result.raw_text


@pytest.mark.parametrize("backend", BOTH)
def test_references_to_a_stored_document_hold_in_every_sample(backend, request, tmp_path):
    # The schema store's documents are bundled into the schema the grammar compiles: what they
    # say holds in every sample, checked by jsonschema resolving the original document itself.
    import json

    import referencing.jsonschema

    units = {
        "$id": "https://s.example.com/units.json",
        "definitions": {"unit": {"enum": ["kg", "l"]}, "qty": {"type": "integer", "minimum": 1, "maximum": 9}},
    }
    (tmp_path / "units.json").write_text(json.dumps(units))
    schema = {
        "$id": "https://s.example.com/item.json",
        "type": "object",
        "properties": {
            "unit": {"$ref": "units.json#/definitions/unit"},
            "qty": {"$ref": "units.json#/definitions/qty"},
        },
        "required": ["unit", "qty"],
        "additionalProperties": False,
    }
    task = task_from_schema(schema, "Describe the image.", backend=backend, schema_store=[str(tmp_path)])
    assert task.report().bundled == [units["$id"]] and task.validated_after == []
    registry = referencing.Registry().with_resource(
        units["$id"], referencing.jsonschema.DRAFT202012.create_resource(units)
    )
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    for result in _samples(_runner(backend, request), task):
        assert result.error is None and result.finish_reason == "stop", result
        assert result.valid and validator.is_valid(result.data), result.raw_text


def test_a_schema_xgrammar_cannot_compile_runs_on_guidance_in_the_same_engine(engine_runner, monkeypatch):
    # xgrammar refuses the scoped flag group; guidance compiles it. The session engine is
    # configured for xgrammar: docextract.vllm_plugin lets this request run on guidance there.
    import re
    import time

    import docextract.schema.apply_rules as apply_rules
    import docextract.schema.compiler as compiler

    pattern = "^(?i:[a-c]{2})-[0-9]$"
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}, "required": ["code"]}
    task = task_from_schema(schema, "Describe the image.")
    report = task.report()
    assert task.backend == "xgrammar" and report.backend == "guidance" and report.fallback == "other_backend"
    for result in _samples(engine_runner, task):
        assert result.error is None and result.finish_reason == "stop", result
        assert result.valid and re.fullmatch(pattern, result.data["code"]), result.raw_text
        assert result.backend == "guidance" and result.validated_after == []

    # Both backends live in one engine: a plain xgrammar schema still runs on xgrammar.
    plain, _ = CASES["pattern"]
    for result in _samples(engine_runner, task_from_schema(plain, "Describe the image.")):
        assert result.valid and result.backend == "xgrammar", result.raw_text

    # The same schema again (a new task, as a new request builds): no compilation at all.
    calls = []
    for module in (compiler, apply_rules):
        monkeypatch.setattr(module, "_compile_with_backend", lambda *a: calls.append(a))
    started = time.perf_counter()
    again = task_from_schema(json.loads(json.dumps(schema)), "Describe the image.")
    assert time.perf_counter() - started < 0.1 and calls == [] and again.report() is report
    for result in _samples(engine_runner, again):
        assert result.valid and result.backend == "guidance", result.raw_text
