"""The schema store (docextract.schema.store) and bundling (docextract.schema.bundle): references to
other documents resolved from local files, never fetched, and made into one self-contained schema
that both backends compile and that validates as the referencing documents mean it (checked against
jsonschema with a ``referencing.Registry`` of the same documents)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import referencing
import referencing.jsonschema

from docextract.config import ExtractionConfig
from docextract.errors import SchemaError
from docextract.schema.bundle import bundle
from docextract.schema.compiler import check_coverage
from docextract.schema.store import SchemaStore, load_store
from docextract.tasks import task_from_schema
from docextract.validate import validate_data

SITE = "https://schemas.example.com/"
BASE = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": SITE + "base.json",
    "definitions": {
        "path": {"type": "string", "minLength": 1, "maxLength": 8},
        "paths": {"type": "array", "items": {"$ref": "#/definitions/path"}, "maxItems": 3},
    },
}
# Draft 04, with an embedded id ("size") a sibling definition refers to by that id, as
# SchemaStore's base-04.json does.
LEGACY = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "id": SITE + "legacy.json",
    "definitions": {
        "size": {"id": "size", "type": "integer", "minimum": 0, "maximum": 10, "exclusiveMaximum": True},
        "sizes": {"type": "array", "items": {"$ref": "size"}, "maxItems": 2},
    },
}
# Two documents that refer to each other (a tree of alternating node kinds).
PING = {
    "$id": SITE + "ping.json",
    "type": "object",
    "properties": {"pong": {"$ref": "pong.json"}, "n": {"enum": [1, 2]}},
    "additionalProperties": False,
}
PONG = {
    "$id": SITE + "pong.json",
    "type": "object",
    "properties": {"ping": {"$ref": "ping.json#"}, "m": {"enum": ["a"]}},
    "additionalProperties": False,
}
NO_ID = {"type": "boolean"}  # found by its file name only


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    for name, doc in {"base.json": BASE, "legacy.json": LEGACY, "ping.json": PING, "pong.json": PONG}.items():
        (folder / name).write_text(json.dumps(doc))
    (folder / "nested").mkdir()
    (folder / "nested" / "flag.json").write_text(json.dumps(NO_ID))
    (folder / "broken.json").write_text("{not json")
    return str(folder)


def _registry() -> referencing.Registry:
    """The same documents, for jsonschema's own resolver: built apart from the bundler."""
    resources = [
        (
            doc.get("$id") or doc.get("id"),
            referencing.jsonschema.specification_with(doc["$schema"]) if "$schema" in doc else None,
            doc,
        )
        for doc in (BASE, LEGACY, PING, PONG)
    ]
    return referencing.Registry().with_resources(
        (uri, (spec or referencing.jsonschema.DRAFT202012).create_resource(doc)) for uri, spec, doc in resources
    )


def _agree(original, bundled, instances) -> None:
    """The bundled schema says valid exactly when jsonschema, resolving the originals, does."""
    reference = jsonschema.validators.validator_for(original)(original, registry=_registry())
    mine = jsonschema.validators.validator_for(bundled)(bundled)
    for instance in instances:
        assert mine.is_valid(instance) == reference.is_valid(instance), instance


def test_store_indexes_by_id_file_uri_and_unique_name(store_dir):
    store = SchemaStore.from_paths([store_dir])
    assert store.lookup(SITE + "base.json").contents == BASE
    assert store.lookup(SITE + "legacy.json").contents == LEGACY  # draft-04 "id"
    assert store.lookup("flag.json").contents == NO_ID and store.lookup("flag").contents == NO_ID
    assert store.lookup(SITE + "base").contents == BASE  # same folder of the same site, without .json
    assert store.lookup("https://elsewhere.example.org/base.json") is None  # not the stored base.json
    assert [s for s in store.skipped if "broken.json" in s]
    assert load_store([store_dir]) is load_store([store_dir])  # read once per process
    with pytest.raises(FileNotFoundError, match="neither a file nor a directory"):
        SchemaStore.from_paths([store_dir + "/missing"])


def test_relative_ref_resolves_against_the_referring_documents_id(store_dir):
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SITE + "app.json",
        "type": "object",
        "properties": {"out": {"$ref": "base.json#/definitions/path"}, "all": {"$ref": "base.json#/definitions/paths"}},
        "required": ["out"],
    }
    result = bundle(schema, load_store([store_dir]))
    assert result.documents == [SITE + "base.json"]
    assert json.dumps(result.schema).count('"$ref": "#/$defs/') == 3  # the inner #/definitions/path too
    assert "https://" not in json.dumps(result.schema).replace(SITE + "app.json", "")
    _agree(schema, result.schema, [{"out": "a"}, {"out": ""}, {"out": "a", "all": ["b", "c"]}, {"all": ["x" * 9]}, {}])
    # Without an $id of its own, a relative reference is found by file name.
    bare = {"type": "object", "properties": {"f": {"$ref": "flag.json"}, "p": {"$ref": "base.json#/definitions/path"}}}
    assert check_coverage(bare, "xgrammar", [store_dir]).accepted


def test_absolute_id_ref_and_pointer_into_a_draft04_document(store_dir):
    schema = {
        "type": "object",
        "properties": {"sizes": {"$ref": SITE + "legacy.json#/definitions/sizes"}},
        "required": ["sizes"],
    }
    result = bundle(schema, load_store([store_dir]))
    assert result.documents == [SITE + "legacy.json"]
    # Drafts differ: everything reads as 2020-12, the draft-04 boolean exclusiveMaximum as a number.
    assert result.schema["$schema"].endswith("2020-12/schema")
    size = next(v for k, v in result.schema["$defs"].items() if k.endswith("size"))
    assert size["exclusiveMaximum"] == 10 and "maximum" not in size and "id" not in size
    # Not compared with jsonschema's own resolver here: it reads a pointer into a draft-04 document
    # with the referring schema's draft (it changes dialect only where the target declares
    # "$schema"), so it takes "exclusiveMaximum": true for a bound of 1.
    validator = jsonschema.Draft202012Validator(result.schema)
    assert [validator.is_valid({"sizes": s}) for s in ([0, 9], [10], [-1], [1, 2, 3])] == [True, False, False, False]


def test_cycle_across_two_documents_ends_in_references_to_the_copies(store_dir):
    schema = {"$ref": SITE + "ping.json"}
    result = bundle(schema, load_store([store_dir]))
    assert sorted(result.documents) == [SITE + "ping.json", SITE + "pong.json"]
    assert sorted(result.schema["$defs"]) == ["ping", "pong"]
    deep = {"n": 1, "pong": {"m": "a", "ping": {"n": 2, "pong": {}}}}
    _agree(schema, result.schema, [deep, {"pong": {"ping": {"n": 3}}}, {"pong": {"x": 1}}])
    for backend in ("xgrammar", "guidance"):
        report = check_coverage(schema, backend, [store_dir])
        assert report.accepted and report.fallback is None, report.refused_reason


@pytest.mark.parametrize(
    ("ref", "store", "message"),
    [
        ("https://other.example.org/x.json", True, "the schema store has no document for it"),
        ("http://169.254.169.254/latest/meta-data", False, "no schema_store is configured"),
        (SITE + "base.json#/definitions/nothing", True, "points to nothing in the document it names"),
        (SITE + "base.json#an-anchor", True, "names an anchor ('#an-anchor') that is not defined there"),
    ],
)
def test_unresolvable_ref_is_refused_with_how_to_fix_it(store_dir, ref, store, message):
    schema = {"type": "object", "properties": {"a": {"$ref": ref}}}
    report = check_coverage(schema, "xgrammar", [store_dir] if store else None)
    assert not report.accepted and message in report.refused_reason
    assert report.refused_reason.startswith("#/properties/a: ")
    assert store_dir not in report.refused_reason  # the server's paths never reach a client
    if "has no document" in message or "no schema_store" in message:
        assert "Add the document to the schema store" in report.refused_reason
        assert "bundle it into the schema under $defs" in report.refused_reason
    with pytest.raises(SchemaError, match="never fetched|points to nothing|anchor"):
        task_from_schema(schema, "x", schema_store=[store_dir] if store else None)


def test_task_holds_the_self_contained_schema_and_validates_against_it(store_dir):
    schema = {"$id": SITE + "t.json", "type": "object", "properties": {"p": {"$ref": "base.json#/definitions/path"}}}
    task = task_from_schema(schema, "x", schema_store=[store_dir])
    assert task.report().bundled == [SITE + "base.json"]
    assert "base.json" not in json.dumps({k: v for k, v in task.json_schema.items() if k != "$id"})
    assert validate_data({"p": "ok"}, task).valid
    assert not validate_data({"p": "much too long"}, task).valid
    # Another backend's report needs no store: the task's schema is self-contained.
    assert task.report("guidance").accepted


def test_schema_store_is_a_config_option_and_a_repeatable_flag(store_dir):
    import argparse

    from docextract.cli.options import add_config_arguments, config_overrides

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ExtractionConfig)
    args = parser.parse_args(["--schema-store", store_dir, "--schema-store", "/x.json"])
    assert config_overrides(args) == {"schema_store": [store_dir, "/x.json"]}
    assert ExtractionConfig.model_validate(config_overrides(args)).schema_store == [store_dir, "/x.json"]
