"""The deterministic merge of a long document's chunk results (pure, hand-made chunks, exact outputs)."""

from __future__ import annotations

from docextract.merge import ChunkOutput, merge_chunks, prompt_sources
from docextract.results import FieldConflict
from docextract.tasks import task_from_schema
from docextract.validate import validate_data

A = [1, 2, 3, 4]
B = [4, 5, 6, 7]
C = [7, 8]

INVOICE = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "supplier": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "address": {"type": ["string", "null"]}},
        },
        "line_items": {
            "type": "array",
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {"description": {"type": "string"}, "amount": {"type": "number"}},
                "required": ["description", "amount"],
            },
        },
        "total": {"type": "number"},
    },
    "required": ["invoice_number", "line_items", "total"],
}


def item(description, amount):
    return {"description": description, "amount": amount}


def test_line_items_across_a_page_break_are_read_once_on_the_shared_page():
    first = ChunkOutput(A, {"line_items": [item("bolts", 4), item("nuts", 2), item("washers", 1)]})
    second = ChunkOutput(B, {"line_items": [item("washers", 1), item("screws", 3)]})
    merged = merge_chunks([first, second], INVOICE)
    assert merged.data == {"line_items": [item("bolts", 4), item("nuts", 2), item("washers", 1), item("screws", 3)]}
    assert merged.sources == {
        "line_items[0].description": A,
        "line_items[0].amount": A,
        "line_items[1].description": A,
        "line_items[1].amount": A,
        "line_items[2].description": [4],  # read by both chunks: on the page they share
        "line_items[2].amount": [4],
        "line_items[3].description": B,
        "line_items[3].amount": B,
    }
    assert merged.conflicts == []


def test_equal_items_away_from_the_overlap_are_two_items():
    first = ChunkOutput(A, {"line_items": [item("bolts", 4), item("nuts", 2)]})
    second = ChunkOutput(B, {"line_items": [item("screws", 3), item("bolts", 4)]})
    assert merge_chunks([first, second], INVOICE).data["line_items"] == [
        item("bolts", 4),
        item("nuts", 2),
        item("screws", 3),
        item("bolts", 4),
    ]
    # Chunks that share no page produce no overlap duplicates, even when their items meet.
    apart = merge_chunks([ChunkOutput([1, 2], {"tags": ["a"]}), ChunkOutput([3, 4], {"tags": ["a"]})])
    assert apart.data == {"tags": ["a", "a"]}


def test_a_total_that_differs_comes_from_the_most_confident_chunk_and_is_a_conflict():
    first = ChunkOutput(A, {"invoice_number": "INV-7", "total": 100}, confidence={"invoice_number": 0.9, "total": 0.4})
    second = ChunkOutput(
        B, {"invoice_number": "INV-7", "total": 120}, confidence={"invoice_number": 0.8, "total": 0.95}
    )
    third = ChunkOutput(C, {"invoice_number": "INV-7 ", "total": None}, confidence={"invoice_number": 0.7})
    merged = merge_chunks([first, second, third], INVOICE)
    assert merged.data == {"invoice_number": "INV-7", "total": 120}
    assert merged.conflicts == [FieldConflict(path="total", values=[100, 120], pages=[A, B], chosen=120)]
    assert merged.sources == {"invoice_number": [1, 2, 3, 4, 5, 6, 7, 8], "total": B}
    assert merged.confidence == {"invoice_number": 0.9, "total": 0.95}


def test_without_scores_the_earliest_chunk_wins_a_disagreement():
    merged = merge_chunks([ChunkOutput(A, {"total": 100}), ChunkOutput(B, {"total": 120})], INVOICE)
    assert merged.data == {"total": 100}
    assert merged.conflicts == [FieldConflict(path="total", values=[100, 120], pages=[A, B], chosen=100)]


def test_a_nested_object_is_merged_field_by_field():
    first = ChunkOutput(A, {"supplier": {"name": "ACME", "address": None}}, confidence={"supplier.name": 0.6})
    second = ChunkOutput(
        B,
        {"supplier": {"name": "ACME", "address": "1 Road"}},
        confidence={"supplier.name": 0.7, "supplier.address": 0.5},
    )
    merged = merge_chunks([first, second], INVOICE)
    assert merged.data == {"supplier": {"name": "ACME", "address": "1 Road"}}
    assert merged.sources == {"supplier.name": [1, 2, 3, 4, 5, 6, 7], "supplier.address": B}
    assert merged.confidence == {"supplier.name": 0.7, "supplier.address": 0.5}
    assert merged.conflicts == []


def test_max_items_exceeded_after_concatenation_is_reported_invalid_not_cut():
    first = ChunkOutput(
        A, {"invoice_number": "X", "total": 1, "line_items": [item("a", 1), item("b", 2), item("c", 3)]}
    )
    second = ChunkOutput(
        B, {"invoice_number": "X", "total": 1, "line_items": [item("c", 3), item("d", 4), item("e", 5)]}
    )
    merged = merge_chunks([first, second], INVOICE)
    assert [i["description"] for i in merged.data["line_items"]] == ["a", "b", "c", "d", "e"]
    outcome = validate_data(merged.data, task_from_schema(INVOICE, "x"))
    assert not outcome.valid
    assert [e.path for e in outcome.errors] == ["line_items"]
    assert outcome.errors[0].message.endswith("'amount': 5}] is too long")


def test_unique_items_drops_every_repeat_and_failed_chunks_take_no_part():
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "uniqueItems": True, "items": {"type": "string"}}},
    }
    merged = merge_chunks(
        [
            ChunkOutput([1, 2], {"tags": ["x", "y"]}),
            ChunkOutput([2, 3], None),
            ChunkOutput([3, 4], {"tags": ["z", "x"]}),
        ],
        schema,
    )
    assert merged.data == {"tags": ["x", "y", "z"]}
    assert merged.sources == {"tags[0]": [1, 2], "tags[1]": [1, 2], "tags[2]": [3, 4]}


def test_a_ref_and_a_nullable_array_are_read_through():
    schema = {
        "type": "object",
        "$defs": {
            "Tags": {"anyOf": [{"type": "array", "uniqueItems": True, "items": {"type": "string"}}, {"type": "null"}]}
        },
        "properties": {"tags": {"$ref": "#/$defs/Tags"}},
    }
    merged = merge_chunks([ChunkOutput([1], {"tags": ["x"]}), ChunkOutput([2], {"tags": ["x", None]})], schema)
    assert merged.data == {"tags": ["x", None]}
    assert merged.sources == {"tags[0]": [1]}


def test_one_prompt_grounds_every_value_on_all_its_pages():
    data = {"total": 3, "supplier": {"name": "ACME", "address": None}, "line_items": [item("a", 1)]}
    assert prompt_sources(data, [3, 1, 2]) == {
        "total": [1, 2, 3],
        "supplier.name": [1, 2, 3],
        "line_items[0].description": [1, 2, 3],
        "line_items[0].amount": [1, 2, 3],
    }
