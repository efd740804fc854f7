"""Evaluation definitions (issue 18): values read by content, untyped arrays as multisets, named scoring
profiles on one pair, and item matching that scales. Every figure is worked out by hand in the comments."""

from __future__ import annotations

import random

import pytest

from docextract.evaluation import EvalConfig, evaluate, matching
from docextract.evaluation.config import NumberRule
from docextract.evaluation.values import parse_number, string_date
from docextract.tasks import task_from_schema

approx = pytest.approx
NULLABLE = {"anyOf": [{"type": "string"}, {"type": "null"}]}


def field(report, path):
    return next(f for f in report.fields if f.path == path)


def counts(f):
    return (f.tp, f.fp, f.fn, f.tn, f.mismatches)


# --- numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "separator", "number"),
    [
        ("5,0", "auto", 5.0),  # one comma, not before three digits: a decimal comma (was 50)
        ("12,50", "auto", 12.5),
        ("0,500", "auto", 0.5),  # a leading 0 is never a thousands group
        ("1,234", "auto", 1234.0),  # ambiguous: '.' is the decimal mark
        ("1.234", "auto", 1.234),
        ("1.234,50", "auto", 1234.5),  # both marks: the last one is the decimal mark
        ("1,234,567", "auto", 1234567.0),  # a repeated mark groups thousands
        ("1.234.567", "auto", 1234567.0),
        ("(1,150.00)", "auto", -1150.0),  # an accounting negative
        ("1,150.00-", "auto", -1150.0),
        ("−42", "auto", -42.0),  # U+2212 MINUS SIGN
        ("1 234,56 €", "auto", 1234.56),
        ("USD 12.50", "auto", 12.5),
        ("$-5", "auto", -5.0),
        ("1,234", ",", 1.234),  # the locale setting decides what auto leaves to '.'
        ("1,234.50", ".", 1234.5),
        ("n/a", "auto", None),
        ("()", "auto", None),
    ],
)
def test_numbers_by_locale(text, separator, number):
    assert parse_number(text, NumberRule(decimal_separator=separator)) == (None if number is None else approx(number))


NUMBER_TASK = {"type": "object", "properties": {"total": {"type": "number"}}}


def test_decimal_comma_and_accounting_negative_in_a_report():
    task = task_from_schema(NUMBER_TASK, "Read.", name="n")
    # "5,0" vs 5: tp (it was 50 before); "(1,150.00)" vs -1150: tp; "5,0" vs 50: a mismatch.
    r = evaluate({"a": {"total": "5,0"}, "b": {"total": "(1,150.00)"}, "c": {"total": "5,0"}},
                 {"a": {"total": 5}, "b": {"total": -1150}, "c": {"total": 50}}, task)  # fmt: skip
    assert counts(field(r, "total")) == (2, 1, 1, 0, 1)


# --- dates in any string --------------------------------------------------------------------------------

NOTE_TASK = {"type": "object", "properties": {"note": {"type": "string"}}}


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-03-15", "2026-03-15"),
        ("03/15/2026", "2026-03-15"),  # the day is above 12: no ambiguity
        ("March 15, 2026", "2026-03-15"),
        ("15 Mar 2026", "2026-03-15"),
        ("15-Mar-2026", "2026-03-15"),
        ("15.03.2026", "2026-03-15"),
        ("5", None),  # dateutil would read these; they are no dates here
        ("Room 12", None),
        ("March", None),
    ],
)
def test_dates_recognised_in_strings(text, iso):
    from docextract.evaluation.config import DateRule

    assert string_date(text, DateRule()) == iso


def test_dates_in_three_formats_in_an_untyped_string_field():
    task = task_from_schema(NOTE_TASK, "Read.", name="d")
    truth = {k: {"note": "2026-03-15"} for k in "abc"}
    predictions = {"a": {"note": "03/15/2026"}, "b": {"note": "March 15, 2026"}, "c": {"note": "15 Mar 2026"}}
    # On (the default): three tps: P = R = 1. Off: three mismatches: P = R = 0.
    assert counts(field(evaluate(predictions, truth, task), "note")) == (3, 0, 0, 0, 0)
    off = field(evaluate(predictions, truth, task, EvalConfig(dates_in_strings=False)), "note")
    assert counts(off) == (0, 3, 3, 0, 3) and off.precision == 0.0
    # A date against a non-date is compared as text: a mismatch; text against text as before.
    r = evaluate({"x": {"note": "2026-03-15"}, "y": {"note": "ROOM 12"}}, {"x": {"note": "soon"}, "y": {"note": "room 12"}}, task)  # fmt: skip
    assert counts(field(r, "note")) == (1, 1, 1, 0, 1)


# --- untyped arrays are multisets ---------------------------------------------------------------------

LISTS = {
    "type": "object",
    "properties": {
        "tags": {"type": "array"},  # no items
        "rows": {"type": "array", "items": {"type": "object"}},  # items without properties
        "extra": {},  # no type at all
    },
}


def test_a_reordered_untyped_list_still_pairs():
    task = task_from_schema(LISTS, "Read.", name="l")
    predicted = {"tags": ["b", "a", "c"], "rows": [{"k": 2}, {"k": 1}], "extra": [2, [1, 0]]}
    expected = {"tags": ["a", "b", "c"], "rows": [{"k": 1}, {"k": 2}], "extra": [[0, 1], 2]}
    r = evaluate({"x": predicted}, {"x": expected}, task)
    # tags[]: each item pairs with its equal: 3 tp; rows[]: 2 tp; extra: one json value, equal as a multiset.
    assert counts(field(r, "tags[]")) == (3, 0, 0, 0, 0)
    assert counts(field(r, "rows[]")) == (2, 0, 0, 0, 0)
    assert counts(field(r, "extra")) == (1, 0, 0, 0, 0)
    # Order matters where the config says so: b/a and a/b are mismatches, c/c a tp; extra [2, [1, 0]]
    # against [[0, 1], 2] in order is one mismatch.
    ordered = evaluate({"x": predicted}, {"x": expected}, task, EvalConfig(ordered_arrays=["tags", "extra"]))
    assert counts(field(ordered, "tags[]")) == (1, 2, 2, 0, 2)
    assert counts(field(ordered, "extra")) == (0, 1, 1, 0, 1)
    with pytest.raises(Exception, match="no array nope"):
        evaluate({}, {"x": expected}, task, EvalConfig(ordered_arrays=["nope"]))


# --- named profiles, one pair ------------------------------------------------------------------------

PROFILE_TASK = {
    "type": "object",
    "properties": {
        "invoice_no": {"type": "string"},
        "status": {"type": "string", "enum": ["paid", "unpaid"]},
        "total": {"type": "number"},
        "note": NULLABLE,
        "po": NULLABLE,
        "ref": NULLABLE,
        "memo": NULLABLE,
    },
}
TRUTH = {"invoice_no": "INV-1", "status": "paid", "total": 1150, "note": None, "po": None, "ref": "R-9", "memo": None}
# A case change, an enum value in the wrong case, a number as a string, an explicit null (note), an
# omitted null (po), an omitted value (ref) and a hallucinated value (memo).
PREDICTED = {"invoice_no": "inv-1", "status": "Paid", "total": "1,150.00", "note": None, "memo": "see p. 2"}


@pytest.mark.parametrize(
    ("profile", "outcomes", "figures"),
    [
        # default: invoice_no, status, total tp (read by content); note, po tn; ref fn; memo fp.
        # tp 3, fp 1, fn 1, tn 2: P = R = F1 = 3/4, accuracy = (3 + 2)/7.
        ("default", (3, 1, 1, 2, 0), (0.75, 0.75, 0.75, 5 / 7)),
        # strict: invoice_no a mismatch (case), status and total mismatches (the schema rejects
        # "Paid" and a string total); note, po tn; ref fn; memo fp. tp 0, fp 4, fn 4: all 0, accuracy 2/7.
        ("strict", (0, 4, 4, 2, 3), (0.0, 0.0, 0.0, 2 / 7)),
        # extractbench: invoice_no tp (case folded); status, total mismatches (schema-invalid);
        # note (explicit null) and po (omitted = null) are credited tps; ref (omitted) and memo
        # (hallucinated) are mismatches. tp 3, mismatches 4: P = R = F1 = accuracy = 3/7.
        ("extractbench", (3, 4, 4, 0, 4), (3 / 7, 3 / 7, 3 / 7, 3 / 7)),
    ],
)
def test_each_profile_on_the_same_pair(profile, outcomes, figures):
    task = task_from_schema(PROFILE_TASK, "Read.", name="p")
    r = evaluate({"x": PREDICTED}, {"x": TRUTH}, task, EvalConfig(profile=profile))
    m = r.micro
    assert (m.tp, m.fp, m.fn, m.tn, m.mismatches) == outcomes
    assert (m.precision, m.recall, m.f1, m.accuracy) == tuple(approx(v) for v in figures)
    assert r.definition.startswith(f"profile {profile}:") and r.config.profile == profile
    if profile == "extractbench":  # its headline: the per-document average (one document here)
        assert r.headline == "documents.mean_accuracy" and r.headline_value == approx(3 / 7)
    else:
        assert r.headline == "micro.f1" and r.headline_value == approx(figures[2])


def test_profile_settings_can_be_overridden_and_nulls_named_on_their_own():
    task = task_from_schema(PROFILE_TASK, "Read.", name="p")
    # strict with case folding back on: invoice_no becomes a tp again (tp 1, mismatches 2).
    r = evaluate({"x": PREDICTED}, {"x": TRUTH}, task, EvalConfig(profile="strict", string={"case_sensitive": False}))
    assert (r.micro.tp, r.micro.mismatches) == (1, 2)
    # The default profile with the benchmark's null definition only: the 3 content reads stay tps,
    # note and po become tps, ref and memo mismatches: tp 5, mismatches 2, P = R = 5/7.
    r = evaluate({"x": PREDICTED}, {"x": TRUTH}, task, EvalConfig(nulls="value"))
    assert (r.micro.tp, r.micro.mismatches, r.micro.tn) == (5, 2, 0) and r.micro.precision == approx(5 / 7)
    assert "null is a value" in r.definition
    # A document without a usable prediction credits no null: its values are fns, its nulls tns.
    r = evaluate({"x": "{not json"}, {"x": TRUTH}, task, EvalConfig(profile="extractbench"))
    assert (r.micro.tp, r.micro.fn, r.micro.tn) == (0, 4, 3)


# --- matching that scales ---------------------------------------------------------------------------

ITEMS = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"description": {"type": "string"}, "quantity": {"type": "number"}, "amount": {"type": "number"}},
            },
        }
    },
}  # fmt: skip


def long_table(rows: int, seed: int = 1):
    rng = random.Random(seed)
    truth = [{"description": f"row {k}", "quantity": 1 + k % 3, "amount": round(rng.uniform(1, 999), 2)} for k in range(rows)]  # fmt: skip
    predicted = [dict(t) for t in truth]
    for k in range(0, rows, 10):
        predicted[k]["amount"] += 1000  # every 10th amount misread
    predicted.reverse()
    return {"items": predicted}, {"items": truth}


@pytest.mark.parametrize("dense_cells", [matching.DENSE_CELLS, 100, 0])
def test_long_tables_match_like_the_optimal_assignment(monkeypatch, dense_cells):
    # 600 rows in reverse order, every 10th amount misread: each row pairs with its own (similarity
    # 1, or 2/3 for the misread ones): found 600; amount tp 540, mismatches 60; description and
    # quantity 600 tp. The same with the exact pass + dense remainder (100 cells: the 60 x 60
    # misread rows are too many, so they are blocked on their descriptions) and with blocking only.
    monkeypatch.setattr(matching, "DENSE_CELLS", dense_cells)
    task = task_from_schema(ITEMS, "Read.", name="t")
    predicted, truth = long_table(600)
    r = evaluate({"x": predicted}, {"x": truth}, task)
    assert (r.arrays[0].found, r.arrays[0].predicted_items, r.arrays[0].expected_items) == (600, 600, 600)
    assert counts(field(r, "items[].amount")) == (540, 60, 60, 0, 60)
    assert counts(field(r, "items[].description")) == (600, 0, 0, 0, 0)
    assert counts(field(r, "items[].quantity")) == (600, 0, 0, 0, 0)


def test_exact_pairs_first_then_best_assignment(monkeypatch):
    # 3 x 3 > DENSE_CELLS = 4 forces the long path. Item keys: p0 = e2 exactly; the rest by similarity.
    sims = {(0, 2): 1.0, (1, 0): 0.9, (1, 1): 0.2, (2, 0): 0.8, (2, 1): 0.7}

    def block(rows, cols):
        import numpy as np

        return np.array([[sims.get((i, j), 0.0) for j in cols] for i in rows])

    monkeypatch.setattr(matching, "DENSE_CELLS", 4)
    keys_p, keys_e = ["x", "y", "z"], ["u", "v", "x"]
    pairs = matching.match_items(3, 3, block, lambda p, i: (keys_p if p else keys_e)[i])
    # p0 pairs with e2 first (equal keys); the left-over 2 x 2 = 4 cells is assigned optimally: (1, 1) + (2, 0) = 1.0 < (1, 0) + (2, 1) = 1.6.
    assert sorted(pairs) == [(0, 2, 1.0), (1, 0, 0.9), (2, 1, 0.7)]
