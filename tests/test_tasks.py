"""Tasks: built-ins, user tasks from files and Pydantic models, and clear errors."""

from __future__ import annotations

import json
import sys
import textwrap

import jsonschema
import pytest

from docextract.errors import SchemaError, TaskError
from docextract.tasks import builtin_task_names, get_builtin_task, load_task, task_from_schema, task_slug

EXAMPLES = {
    "image_card": {"quality": "okay", "description": "A red square.", "question": "Why red?"},
    "animals": {"location": "a farm", "activity": "grazing", "animals_seen": 2, "animals": ["cow", "sheep"]},
    "price_tag": {
        "product_name": "Bananas",
        "price": 1.99,
        "currency": "EUR",
        "unit_price": 1.99,
        "unit": "KILOGRAM",
        "is_discounted": False,
    },
    "invoice": {
        "invoice_number": "INV-1",
        "invoice_date": "2026-03-14",
        "due_date": None,
        "seller": {"name": "Acme", "address": "1 Main St", "tax_id": "FR1"},
        "buyer": {"name": "Bob", "address": None, "tax_id": None},
        "line_items": [{"description": "Widget", "quantity": 2, "unit_price": 3.5, "amount": 7.0}],
        "subtotal": 7.0,
        "tax": 1.4,
        "total": 8.4,
        "currency": "EUR",
    },
}


def test_builtin_tasks_are_listed():
    assert set(builtin_task_names()) >= {"image_card", "invoice", "price_tag", "animals"}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_builtin_task_schema_accepts_a_real_example_and_its_model_agrees(name):
    task = get_builtin_task(name)
    assert task.instructions and task.version and task.pydantic_model is not None
    jsonschema.validate(EXAMPLES[name], task.json_schema)
    jsonschema.validate(EXAMPLES[name], task.engine_schema)
    task.pydantic_model.model_validate(EXAMPLES[name])
    assert task.labelr_config() == {"instructions": task.instructions, "json_schema": task.json_schema}


def test_invoice_schema_rejects_wrong_shapes():
    task = get_builtin_task("invoice")
    bad = dict(EXAMPLES["invoice"], currency="euro")
    assert not jsonschema.Draft202012Validator(task.json_schema).is_valid(bad)


def test_builtin_tasks_compile_for_guidance_too():
    for name in builtin_task_names():
        assert get_builtin_task(name, backend="guidance").name == name


def test_labelr_config_json(tmp_path):
    cfg = {"instructions": "Read the tag.", "json_schema": {"type": "object", "properties": {"p": {"type": "number"}}}}
    path = tmp_path / "price-tags" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    task = load_task(str(path))
    assert task.name == "price-tags"
    assert task.instructions == "Read the tag."
    assert task.json_schema == cfg["json_schema"]
    assert task.engine_schema["required"] == ["p"]


def test_bare_schema_file_with_and_without_instructions(tmp_path):
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps({"type": "object", "properties": {"total": {"type": "number"}}}))
    assert load_task(str(path), instructions="Read the receipt.").instructions == "Read the receipt."
    generic = load_task(str(path))
    assert generic.name == "receipt" and "JSON object" in generic.instructions


def test_names_from_users_text_become_valid_task_names(tmp_path):
    assert task_slug("Invoice (v2) / EU") == "Invoice_v2_EU"
    assert task_slug("--ünïcode--") == "n_code"
    assert task_slug("!!!") == "custom" and task_slug("", default="response") == "response"
    assert task_slug("x" * 100) == "x" * 64 and len(task_slug("y" * 100, max_length=None)) == 100
    path = tmp_path / "_my receipt.json"  # a file name that is not a task name as it stands
    path.write_text(json.dumps({"type": "object", "properties": {"total": {"type": "number"}}}))
    assert load_task(str(path)).name == "my_receipt"


def test_pydantic_model_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(
        textwrap.dedent(
            '''
            from pydantic import BaseModel, Field
            INSTRUCTIONS = "Find the plate."
            class Plate(BaseModel):
                """A licence plate."""
                number: str = Field(max_length=12)
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    task = load_task("my_tasks:Plate")
    assert task.name == "plate" and task.instructions == "Find the plate."
    assert task.description == "A licence plate."
    assert task.json_schema["properties"]["number"]["maxLength"] == 12
    sys.modules.pop("my_tasks", None)


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        ("no_such_task", TaskError, "unknown task 'no_such_task'"),
        ("missing.json", TaskError, "no such task file"),
        ("nosuchmodule_xyz:Model", TaskError, "cannot import module"),
        ("json:NoSuchClass", TaskError, "has no attribute"),
    ],
)
def test_bad_task_references(ref, error, message):
    with pytest.raises(error, match=message):
        load_task(ref)


def test_invalid_json_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"type": "object", ')
    with pytest.raises(SchemaError, match="not valid JSON"):
        load_task(str(path))


def test_labelr_config_missing_schema(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"instructions": "x", "json_schema": None}))
    with pytest.raises(SchemaError):
        load_task(str(path))


def test_task_names_and_instructions_are_checked():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(TaskError, match="invalid task name"):
        task_from_schema(schema, "x", name="bad name!")
    with pytest.raises(TaskError, match="instructions"):
        from docextract.tasks import TaskSpec

        TaskSpec.create(name="t", instructions="  ", json_schema=schema)


def test_fingerprint_changes_with_the_schema():
    a = task_from_schema({"type": "object", "properties": {"a": {"type": "string"}}}, "x")
    b = task_from_schema({"type": "object", "properties": {"b": {"type": "string"}}}, "x")
    assert a.fingerprint != b.fingerprint
