"""Schema checks at task-load time: invalid schemas and unsupported features fail early and clearly."""

from __future__ import annotations

import pytest

from docextract.errors import SchemaError
from docextract.schema.check import check_schema, find_unsupported_features


def obj(**props):
    return {"type": "object", "properties": props, "required": list(props)}


UNSUPPORTED_XGRAMMAR = [
    obj(a={"type": "number", "multipleOf": 2}),
    obj(a={"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
    obj(a={"type": "array", "contains": {"type": "integer"}}),
    obj(a={"type": "string", "format": "credit-card"}),
    obj(a={"type": "string", "pattern": "^a+$", "maxLength": 3}),
    obj(a={"type": "object", "propertyNames": {"pattern": "^x"}, "properties": {"x": {"type": "string"}}}),
    obj(a={"type": "object", "patternProperties": {"^a": {}, "^b": {}}}),
    obj(a={"allOf": [{"type": "string"}, {"enum": ["yes", "no"]}]}),
]
SUPPORTED = [
    obj(a={"type": "string", "maxLength": 5}),
    obj(a={"type": "integer", "minimum": 1, "maximum": 5}),
    obj(a={"type": "string", "format": "date"}),
    obj(a={"type": "array", "items": {"type": "string"}, "maxItems": 3}),
    obj(a={"anyOf": [{"type": "string"}, {"type": "null"}]}),
    obj(a={"type": "object", "patternProperties": {"^a": {"type": "string"}}}),
]


@pytest.mark.parametrize("schema", UNSUPPORTED_XGRAMMAR)
def test_xgrammar_unsupported_features_are_named(schema):
    problems = find_unsupported_features(schema, "xgrammar")
    assert problems and all(p.startswith("#/properties/a") for p in problems)
    with pytest.raises(SchemaError, match="xgrammar backend cannot enforce"):
        check_schema(schema, "xgrammar")


@pytest.mark.parametrize("schema", SUPPORTED)
def test_supported_schemas_pass(schema):
    assert find_unsupported_features(schema, "xgrammar") == []
    check_schema(schema, "xgrammar")


@pytest.mark.parametrize("schema", UNSUPPORTED_XGRAMMAR + SUPPORTED)
def test_agrees_with_vllm_feature_checks(schema):
    # Our checker names paths; vLLM's says yes/no. They must agree, or we drifted from vLLM.
    pytest.importorskip("vllm")
    from vllm.v1.structured_output.backend_guidance import has_guidance_unsupported_json_features
    from vllm.v1.structured_output.backend_xgrammar import has_xgrammar_unsupported_json_features

    assert bool(find_unsupported_features(schema, "xgrammar")) == has_xgrammar_unsupported_json_features(schema)
    assert bool(find_unsupported_features(schema, "guidance")) == has_guidance_unsupported_json_features(schema)


def test_guidance_accepts_what_xgrammar_refuses():
    schema = obj(a={"type": "number", "multipleOf": 2})
    check_schema(schema, "guidance")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"type": "string"}, "root must describe a JSON object"),
        (obj(a={"type": "strin"}), "invalid JSON Schema at properties/a/type"),
        (obj(a={"type": "string", "maxLength": -1}), "invalid JSON Schema at properties/a/maxLength"),
        (obj(a={"$ref": "https://example.com/s.json"}), "only local references"),
        (obj(a={"$ref": "#/$defs/Missing"}), "cannot compile the schema"),
    ],
)
def test_invalid_schemas_fail_with_a_clear_message(schema, message):
    with pytest.raises(SchemaError, match=message):
        check_schema(schema, "xgrammar")


def test_too_deep_schema_is_refused():
    schema = inner = {"type": "object", "properties": {}}
    for _ in range(40):
        child = {"type": "object", "properties": {}}
        inner["properties"]["x"] = child
        inner = child
    with pytest.raises(SchemaError, match="nests deeper"):
        check_schema(schema)


def test_one_of_gives_a_warning_not_an_error():
    warnings = check_schema(obj(a={"oneOf": [{"type": "integer"}, {"type": "number"}]}), "xgrammar")
    assert any("oneOf" in w for w in warnings)


def test_unknown_backend():
    with pytest.raises(SchemaError, match="unknown structured-output backend"):
        find_unsupported_features(obj(a={"type": "string"}), "outlines")  # type: ignore[arg-type]
