"""The engine schema makes optional fields producible; restore_optional maps output back."""

from __future__ import annotations

import jsonschema

from docextract.schema.transform import engine_schema, restore_optional

USER_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "nickname": {"type": "string", "maxLength": 20},
        "age": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "address": {"$ref": "#/$defs/Address"},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "maxItems": 3},
    },
    "required": ["name"],
    "$defs": {
        "Address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
        "Tag": {
            "type": "object",
            "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
            "required": ["label"],
        },
    },
}


def test_every_property_becomes_required_and_optional_ones_nullable():
    out = engine_schema(USER_SCHEMA)
    assert out["required"] == ["name", "nickname", "age", "address", "tags"]
    assert out["properties"]["name"] == {"type": "string", "maxLength": 20}
    assert out["properties"]["nickname"] == {"anyOf": [{"type": "string", "maxLength": 20}, {"type": "null"}]}
    # Already nullable: left alone.
    assert out["properties"]["age"] == USER_SCHEMA["properties"]["age"]
    assert out["properties"]["address"] == {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]}
    assert out["$defs"]["Address"]["required"] == ["city", "zip"]
    assert out["$defs"]["Tag"]["properties"]["score"]["anyOf"][1] == {"type": "null"}
    assert out["additionalProperties"] is False
    # The user's schema is not modified.
    assert USER_SCHEMA["required"] == ["name"]
    jsonschema.Draft202012Validator.check_schema(out)


def test_explicit_additional_properties_is_kept():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True}
    assert engine_schema(schema)["additionalProperties"] is True


def test_restore_drops_nulls_the_user_schema_does_not_allow():
    generated = {
        "name": "Ada",
        "nickname": None,
        "age": None,
        "address": {"city": "Paris", "zip": None},
        "tags": [{"label": "x", "score": None}, {"label": "y", "score": 2.5}],
    }
    restored = restore_optional(generated, USER_SCHEMA)
    assert restored == {
        "name": "Ada",
        "age": None,  # null is allowed there: kept
        "address": {"city": "Paris"},
        "tags": [{"label": "x"}, {"label": "y", "score": 2.5}],
    }
    jsonschema.validate(restored, USER_SCHEMA)
    # A generated object that conforms to the engine schema conforms to the user's after restore.
    jsonschema.validate(generated, engine_schema(USER_SCHEMA))


def test_restore_keeps_a_required_null_so_validation_reports_it():
    restored = restore_optional({"name": None}, USER_SCHEMA)
    assert restored == {"name": None}
    assert not jsonschema.Draft202012Validator(USER_SCHEMA).is_valid(restored)
