"""Validation after generation: truncation, bad JSON and schema violations are reported per field."""

from __future__ import annotations

import json

from docextract.tasks import get_builtin_task, task_from_schema
from docextract.validate import field_path, validate_output


def test_field_path():
    assert field_path(["line_items", 2, "amount"]) == "line_items[2].amount"
    assert field_path([]) == ""


def test_valid_output_is_parsed_and_restored():
    task = task_from_schema(
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}, "x"
    )
    outcome = validate_output('{"a":"hi","b":null}', task)
    assert outcome.valid and outcome.errors == []
    assert outcome.data == {"a": "hi"}


def test_truncated_output_is_invalid_even_if_it_parses():
    task = get_builtin_task("image_card")
    text = json.dumps({"quality": "good", "description": "x", "question": "y"})
    outcome = validate_output(text, task, finish_reason="length")
    assert not outcome.valid
    assert "max_tokens" in outcome.errors[0].message


def test_broken_json():
    outcome = validate_output('{"quality": "go', get_builtin_task("image_card"))
    assert not outcome.valid and outcome.data is None
    assert "not valid JSON" in outcome.errors[0].message


def test_schema_violations_name_the_field():
    task = get_builtin_task("invoice")
    data = {
        "invoice_number": "1",
        "invoice_date": "14/03/2026",
        "due_date": None,
        "seller": {"name": None, "address": None, "tax_id": None},
        "buyer": {"name": None, "address": None, "tax_id": None},
        "line_items": [{"description": "x", "quantity": "two", "unit_price": None, "amount": None}],
        "subtotal": None,
        "tax": None,
        "total": None,
        "currency": "EUR",
    }
    outcome = validate_output(json.dumps(data), task)
    assert not outcome.valid
    paths = {e.path for e in outcome.errors}
    assert "line_items[0].quantity" in paths
    assert "invoice_date" in paths  # 'date' format is checked, not only the type


def test_field_errors_read_as_one_line_each():
    task = task_from_schema({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}, "x")
    outcome = validate_output('{"n": -1}', task, finish_reason="length")
    assert [e.describe() for e in outcome.errors] == [
        "(root): output cut off by max_tokens; raise max_tokens or bound the schema",
        "n: -1 is less than the minimum of 0",
    ]
