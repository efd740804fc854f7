"""The schema compiler: what real users send is accepted, each keyword is reported enforced /
validated / annotation / refused, the engine schema is one vLLM and the backend accept, and a
keyword left to the check after generation is reported ``valid: false`` when broken."""

from __future__ import annotations

import json
import pathlib
import time

import pytest

from docextract.errors import SchemaError
from docextract.schema.compiler import check_coverage, clear_cache, compile_schema
from docextract.schema.rules import README_END, README_START, RULES, rules_markdown
from docextract.tasks import task_from_schema
from docextract.validate import validate_output

BACKENDS = ("xgrammar", "guidance")


@pytest.fixture
def one_backend(monkeypatch):
    """The compiler as on an engine without the plugin: a schema stays on its configured backend."""
    import docextract.vllm_plugin

    monkeypatch.setattr(docextract.vllm_plugin, "per_request_backends", lambda: False)


OBJ_A = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["a"]}

# What issue 12 measured as refused or silently not enforced, one schema each.
REAL_WORLD = {
    "root $ref (zod-to-json-schema)": {"$ref": "#/definitions/R", "definitions": {"R": OBJ_A}},
    "root oneOf of objects": {"oneOf": [OBJ_A, {"type": "object", "properties": {"b": {"type": "string"}}}]},
    "non-object root": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
    "patternProperties beside properties": {**OBJ_A, "patternProperties": {"^x_": {"type": "string"}}},
    "unknown format": {"type": "object", "properties": {"c": {"type": "string", "format": "color"}}},
    "draft-04 required []": {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": [],
    },
    "integer bound beyond int64": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 2**64}}},
    "maxProperties below required": {**OBJ_A, "maxProperties": 0},
    "pattern with a length bound": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
    "uniqueItems": {"type": "array", "items": {"enum": [1, 2, 3]}, "uniqueItems": True, "maxItems": 3},
    "multipleOf": {"type": "object", "properties": {"m": {"type": "integer", "multipleOf": 3}}},
    "draft-04 boolean exclusiveMinimum": {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"p": {"type": "number", "minimum": 0, "exclusiveMinimum": True}},
    },
    "if/then/else": {**OBJ_A, "if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}},
    "minProperties": {"type": "object", "properties": {"a": {"type": "integer"}}, "minProperties": 1},
    "dependencies": {"type": "object", "properties": {"a": {"type": "integer"}}, "dependencies": {"a": ["b"]}},
    "tuple items": {"type": "array", "items": [{"type": "integer"}, {"type": "string"}]},
    "not": {"not": {"type": "string"}},
    "multi-branch allOf": {"allOf": [OBJ_A, {"properties": {"b": {"type": "string"}}}]},
    "lookahead pattern": {"type": "string", "pattern": "^(?!abc)[a-z]{3}$"},
    "format date": {"type": "string", "format": "date"},
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_schemas_are_accepted_and_vllm_takes_their_engine_schema(name, backend):
    pytest.importorskip("vllm")
    from vllm.v1.structured_output.backend_guidance import has_guidance_unsupported_json_features
    from vllm.v1.structured_output.backend_xgrammar import has_xgrammar_unsupported_json_features

    report = compile_schema(REAL_WORLD[name], backend)
    assert report.accepted and report.fallback in (None, "other_backend"), report
    engine = report.engine_schema
    unsupported = (
        has_xgrammar_unsupported_json_features
        if report.backend == "xgrammar"
        else has_guidance_unsupported_json_features
    )
    assert not unsupported(engine)
    task = task_from_schema(REAL_WORLD[name], "x", backend=backend)
    assert task.engine_schema == engine and task.backend == backend


def _status(schema, backend, keyword):
    return {e.keyword: e.status for e in check_coverage(schema, backend, other_backend=False).coverage}.get(keyword)


def test_report_names_what_each_backend_enforces():
    assert _status(REAL_WORLD["multipleOf"], "xgrammar", "multipleOf") == "validated"
    assert _status(REAL_WORLD["multipleOf"], "guidance", "multipleOf") == "enforced"
    assert _status(REAL_WORLD["unknown format"], "guidance", "format") == "annotation"
    assert _status(REAL_WORLD["if/then/else"], "xgrammar", "if") == "validated"
    assert _status(REAL_WORLD["integer bound beyond int64"], "xgrammar", "maximum") == "validated"
    assert _status(REAL_WORLD["integer bound beyond int64"], "guidance", "maximum") == "enforced"
    assert _status(REAL_WORLD["pattern with a length bound"], "xgrammar", "maxLength") == "validated"
    assert _status(REAL_WORLD["lookahead pattern"], "guidance", "pattern") == "validated"
    assert _status(REAL_WORLD["multi-branch allOf"], "xgrammar", "allOf") == "validated"
    assert _status(REAL_WORLD["multi-branch allOf"], "guidance", "allOf") == "enforced"
    assert _status(REAL_WORLD["lookahead pattern"], "xgrammar", "pattern") == "validated"  # compiled, ignored
    report = check_coverage(REAL_WORLD["draft-04 boolean exclusiveMinimum"], "xgrammar")
    assert report.draft == "Draft4"
    assert report.engine_schema["properties"]["p"]["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0}
    # The merged allOf still guides xgrammar: the branches' properties are in the engine schema.
    merged = check_coverage(REAL_WORLD["multi-branch allOf"], "xgrammar").engine_schema
    assert set(merged["properties"]) == {"a", "b"}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"type": "strin"}, "invalid JSON Schema"),
        ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}, "names another document"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "points to nothing"),
    ],
)
def test_only_unusable_schemas_are_refused(schema, message):
    report = check_coverage(schema, "xgrammar")
    assert not report.accepted and report.coverage[0].status == "refused"
    with pytest.raises(SchemaError, match=message):
        task_from_schema(schema, "x")


def test_unknown_backend_is_an_error():
    with pytest.raises(SchemaError, match="unknown structured-output backend"):
        check_coverage(OBJ_A, "outlines")


def test_a_schema_the_backend_cannot_compile_falls_back_to_a_relaxed_engine_schema():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}}}
    report = compile_schema(schema, "xgrammar", other_backend=False)
    assert report.fallback == "relaxed"
    assert "minimum" not in json.dumps(report.engine_schema)
    assert {e.keyword for e in report.coverage if e.status == "validated"} >= {"minimum", "maximum"}


# A pattern xgrammar 0.2.8 refuses ("Group modifier flag is not supported yet") and guidance compiles.
XGRAMMAR_REFUSES = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^(?i:[a-c]{2})-[0-9]$"}},
    "required": ["code"],
}


def test_a_schema_the_configured_backend_cannot_compile_goes_to_the_other_one():
    report = compile_schema(XGRAMMAR_REFUSES, "xgrammar", other_backend=True)
    assert report.backend == "guidance" and report.fallback == "other_backend", report
    assert "xgrammar cannot compile this pattern" in report.fallback_reason
    assert report.engine_schema["properties"]["code"]["pattern"] == "^(?i:[a-c]{2})-[0-9]$"
    assert {(e.keyword, e.status) for e in report.coverage} >= {("pattern", "enforced")}
    assert report.validated_after == []
    # Without the plugin the engine cannot run guidance: the pattern is left to the check after.
    alone = compile_schema(XGRAMMAR_REFUSES, "xgrammar", other_backend=False)
    assert alone.backend == "xgrammar" and alone.fallback is None
    assert alone.validated_after == ["#/properties/code: pattern"]


def test_the_other_backend_is_chosen_only_when_it_compiles_the_full_schema():
    # Both refuse a lookahead: the configured backend keeps it, validated after.
    for backend in BACKENDS:
        report = compile_schema(REAL_WORLD["lookahead pattern"], backend, other_backend=True)
        assert report.backend == backend and report.fallback is None and report.fallback_reason
    # A keyword the rules table leaves to the check after is the backend's, not a compile failure.
    report = compile_schema(REAL_WORLD["multipleOf"], "xgrammar", other_backend=True)
    assert report.backend == "xgrammar" and report.fallback is None and report.fallback_reason is None
    # Both directions: a bound beyond guidance's number limit goes to xgrammar.
    big = {"type": "object", "properties": {"x": {"type": "number", "maximum": 1e300}}}
    report = compile_schema(big, "guidance", other_backend=True)
    assert report.backend == "xgrammar" and report.fallback == "other_backend", report


def test_the_default_follows_whether_the_engine_can_run_the_other_backend(monkeypatch):
    import docextract.vllm_plugin

    monkeypatch.setattr(docextract.vllm_plugin, "per_request_backends", lambda: True)
    assert compile_schema(XGRAMMAR_REFUSES, "xgrammar").backend == "guidance"
    monkeypatch.setattr(docextract.vllm_plugin, "per_request_backends", lambda: False)
    assert compile_schema(XGRAMMAR_REFUSES, "xgrammar").backend == "xgrammar"


def test_per_request_backends_needs_vllm_0_32_and_the_registered_plugin(monkeypatch):
    from docextract import vllm_plugin

    vllm_plugin.per_request_backends.cache_clear()
    monkeypatch.setattr(vllm_plugin, "_vllm_version", lambda: "0.33.0")
    assert not vllm_plugin.per_request_backends()
    vllm_plugin.per_request_backends.cache_clear()
    monkeypatch.setattr(vllm_plugin, "_vllm_version", lambda: "0.32.0")
    monkeypatch.setenv("VLLM_PLUGINS", "some_other_plugin")
    assert not vllm_plugin.per_request_backends()
    vllm_plugin.per_request_backends.cache_clear()
    monkeypatch.delenv("VLLM_PLUGINS")
    assert vllm_plugin.per_request_backends()  # this checkout is installed with its entry point
    vllm_plugin.per_request_backends.cache_clear()


def test_a_repeated_schema_going_to_the_other_backend_is_not_compiled_again(monkeypatch):
    import docextract.schema.apply_rules as apply_rules
    import docextract.schema.compiler as compiler

    calls = []
    real = compiler._compile_with_backend

    def counting(schema, backend):
        calls.append(backend)
        return real(schema, backend)

    for module in (compiler, apply_rules):  # the engine schema's compile, and each pattern's
        monkeypatch.setattr(module, "_compile_with_backend", counting)
    apply_rules.pattern_error.cache_clear()
    clear_cache()
    first = check_coverage(json.loads(json.dumps(XGRAMMAR_REFUSES)), "xgrammar", other_backend=True)
    assert first.backend == "guidance" and {"xgrammar", "guidance"} <= set(calls)
    compiled = len(calls)
    again = check_coverage(json.loads(json.dumps(XGRAMMAR_REFUSES)), "xgrammar", other_backend=True)
    assert again is first and len(calls) == compiled


def test_a_repeated_schema_is_not_compiled_again():
    clear_cache()
    schema = json.loads(json.dumps(REAL_WORLD["root oneOf of objects"]))
    started = time.perf_counter()
    first = check_coverage(schema, "xgrammar")
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = check_coverage(json.loads(json.dumps(schema)), "xgrammar")  # equal, not the same object
    again_s = time.perf_counter() - started
    assert again is first
    assert again_s < first_s


# A breaking output for each keyword the rules call validated: reported valid: false.
BREAKING = [
    ("if/then/else", '{"a":1}', "xgrammar"),
    ("minProperties", "{}", "xgrammar"),
    ("dependencies", '{"a":1}', "guidance"),
    ("uniqueItems", "[1,1]", "guidance"),
    ("multipleOf", '{"m":4}', "xgrammar"),
    ("not", '"s"', "xgrammar"),
    ("patternProperties beside properties", '{"a":1,"x_1":2}', "guidance"),
    ("root oneOf of objects", '{"a":1,"b":"x"}', "xgrammar"),
    ("maxProperties below required", '{"a":1}', "xgrammar"),
    ("integer bound beyond int64", '{"n":36893488147419103232}', "xgrammar"),
    ("lookahead pattern", '"abc"', "guidance"),
    ("format date", '"7967-11-31"', "xgrammar"),  # xgrammar's own output on the real engine
    ("multi-branch allOf", '{"a":1,"b":2}', "xgrammar"),
]


@pytest.mark.parametrize(("name", "text", "backend"), BREAKING)
def test_a_validated_keyword_breaks_validity(name, text, backend, one_backend):
    task = task_from_schema(REAL_WORLD[name], "x", backend=backend)
    assert task.validated_after, task.report()
    assert not validate_output(text, task).valid


def test_every_validated_rule_has_a_breaking_output():
    # Keywords validated for at least one backend and not covered above are listed here on purpose.
    covered = {
        "if",
        "then",
        "minProperties",
        "maxProperties",
        "dependentRequired",
        "uniqueItems",
        "multipleOf",
        "not",
        "patternProperties",
        "oneOf",
        "allOf",
    }
    untested = {
        "else",
        "dependentSchemas",
        "contains",
        "minContains",
        "maxContains",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "$dynamicRef",
        "$recursiveRef",
    }  # same mechanism
    validated = {r.keyword for r in RULES if "validated" in (r.xgrammar, r.guidance)}
    assert validated == covered | untested


def test_map_value_nulls_are_removed():
    schema = {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "required": ["a"],
        },
    }
    task = task_from_schema(schema, "x")
    outcome = validate_output('{"k":{"a":1,"b":null}}', task)
    assert outcome.valid and outcome.data == {"k": {"a": 1}}


def test_readme_rules_table_is_generated_from_the_rules():
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split(README_START, 1)[1].split(README_END, 1)[0]
    assert block.strip() == rules_markdown().strip(), "run: python -m docextract.schema.rules README.md"


def test_cli_schema_check(tmp_path, capsys):
    from docextract.cli.main import main

    good = tmp_path / "good.json"
    good.write_text(json.dumps(REAL_WORLD["multipleOf"]))
    assert main(["schema", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "multipleOf" in out and "validated" in out
    assert main(["schema", "check", str(good), "--structured-output-backend", "guidance", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["validated_after"] == []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"$ref": "https://example.com/x.json"}))
    assert main(["schema", "check", str(bad)]) == 1
    assert "refused" in capsys.readouterr().out
    assert main(["schema", "check", "invoice"]) == 0


def test_the_vllm_plugin_is_a_no_op_on_another_vllm(monkeypatch, caplog):
    vllm = pytest.importorskip("vllm")
    from vllm.sampling_params import SamplingParams
    from vllm.v1.structured_output import StructuredOutputManager

    from docextract import vllm_plugin

    monkeypatch.setattr(vllm, "__version__", "0.33.0")
    monkeypatch.setattr(vllm_plugin, "_patched", False)
    before = (StructuredOutputManager.grammar_init, SamplingParams._validate_structured_outputs)
    with caplog.at_level("WARNING", logger="docextract.vllm_plugin"):
        vllm_plugin.register()
    assert (StructuredOutputManager.grammar_init, SamplingParams._validate_structured_outputs) == before
    assert "not 0.32.x" in caplog.text
