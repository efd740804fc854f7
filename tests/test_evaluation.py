"""Evaluation (``docextract eval``): hand-made predictions and truths whose figures are worked out
here, by hand, in the comments; loading, the command line and the report files. No engine."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from docextract.cli.main import main
from docextract.evaluation import (
    EvalConfig,
    evaluate,
    evaluate_files,
    format_table,
    load_eval_config,
    load_outputs,
    load_truth,
    write_report,
)
from docextract.evaluation.comparators import field_rules
from docextract.evaluation.fields import array_paths, field_tree, leaf_fields
from docextract.evaluation.matching import best_pairs
from docextract.tasks import get_builtin_task, task_from_schema

approx = pytest.approx

PARTY = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "address": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    "required": ["name"],
    "additionalProperties": False,
}
SCHEMA = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "vendor": {"$ref": "#/$defs/Party"},
        "invoice_date": {"type": "string", "format": "date"},
        "total": {"type": "number"},
        "line_items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string"},
                    "quantity": {"type": "number"},
                    "amount": {"type": "number"},
                },
                "required": ["description", "quantity", "amount"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["invoice_number", "vendor", "invoice_date", "total", "line_items"],
    "additionalProperties": False,
    "$defs": {"Party": PARTY},
}
FIELDS = [
    "invoice_number",
    "vendor.name",
    "vendor.address",
    "invoice_date",
    "total",
    "line_items[].description",
    "line_items[].quantity",
    "line_items[].amount",
]


@pytest.fixture(scope="module")
def task():
    return task_from_schema(SCHEMA, "Read the invoice.", name="invoice_test")


def doc(number="INV-1", name="ACME", address=None, date="2024-03-05", total=10, items=()):
    out = {"invoice_number": number, "vendor": {"name": name}, "invoice_date": date, "total": total}
    if address is not None:
        out["vendor"]["address"] = address
    out["line_items"] = [{"description": d, "quantity": q, "amount": a} for d, q, a in items]
    return out


def field(report, path):
    return next(f for f in report.fields if f.path == path)


# --- the schema as fields ----------------------------------------------------------------------------


def test_fields_come_from_the_schema_refs_and_nullable_unions_included():
    tree = field_tree(SCHEMA)
    assert leaf_fields(tree) == {
        "invoice_number": "string",
        "vendor.name": "string",
        "vendor.address": "string",  # anyOf [string, null]: null is absence, the type is string
        "invoice_date": "date",
        "total": "number",
        "line_items[].description": "string",
        "line_items[].quantity": "number",
        "line_items[].amount": "number",
    }
    assert array_paths(tree) == ["line_items[]"]
    # The built-in tasks: Pydantic's $defs/$ref and anyOf-null, enums, integers, arrays of strings.
    invoice = leaf_fields(field_tree(get_builtin_task("invoice").json_schema))
    assert invoice["seller.tax_id"] == "string" and invoice["due_date"] == "date"
    assert invoice["line_items[].unit_price"] == "number"
    assert leaf_fields(field_tree(get_builtin_task("price_tag").json_schema))["unit"] == "string"
    animals = leaf_fields(field_tree(get_builtin_task("animals").json_schema))
    assert animals == {"location": "string", "activity": "string", "animals_seen": "integer", "animals[]": "string"}


# --- one dataset, every headline figure --------------------------------------------------------------

# d1: every value right once normalised; line items in the other order; the total written
#     "1,234.50"; the date day first. Not schema-valid (a string total, a non-ISO date).
# d2: an address the truth does not have (null there); one line item with a wrong amount and
#     one the truth does not have.
# d3: truth only (no prediction row). d4: a prediction that is not valid JSON. d5: prediction only.
TRUTH = {
    "d1": doc("INV-001", "ACME Corp", "1 Main St", "2024-03-05", 1234.5, [("Widget", 2, 1000), ("Gadget", 1, 234.5)]),
    "d2": json.dumps(doc("INV-002", "Globex", None, "2024-01-31", 99, [("Service", 1, 99)]) | {"vendor": {"name": "Globex", "address": None}}),
    "d3": doc("INV-003", "Initech", None, "2024-12-01", 10),
    "d4": doc("INV-004", "Umbrella", None, "2024-02-29", 5),
}  # fmt: skip
PREDICTIONS = {
    "d1": json.dumps(doc(" inv-001", "Acme  Corp", "1 Main St", "05/03/2024", "1,234.50", [("Gadget", 1, 234.5), ("Widget", 2, 1000)])),
    "d2": json.dumps(doc("INV-002", "Globex", "Springfield", "2024-01-31", 99.0, [("Service", 1, 98), ("Extra", 1, 1)])),
    "d4": '{"invoice_number": "INV-004", "vendor": {',
    "d5": json.dumps(doc("INV-005", "Hooli", None, "2024-05-01", 1)),
}  # fmt: skip


@pytest.fixture(scope="module")
def report(task):
    return evaluate(PREDICTIONS, TRUTH, task, EvalConfig(date={"dayfirst": True}))


def test_rows_on_either_side_are_counted(report):
    # d1, d2, d4 on both sides; d5 prediction only; d3 truth only.
    assert report.rows.model_dump() == {"total": 5, "both": 3, "only_predictions": 1, "only_truth": 1}


def test_validity_counts_every_row(report):
    # Predictions: d1, d2, d4, d5. JSON: d1, d2, d5 (d4 is cut). Schema: d2, d5 (d1 has a string
    # total and a day-first date). Denominator: all 5 rows, the missing d3 counted as invalid.
    v = report.validity
    assert (v.rows, v.predictions, v.null_outputs, v.json_valid, v.schema_valid) == (5, 4, 0, 3, 2)
    assert (v.json_valid_rate, v.schema_valid_rate) == (approx(3 / 5), approx(2 / 5))


def test_document_exact_match(report):
    # Scored: d1, d2, d3, d4 (the rows with truth). Exactly right: d1 only.
    docs = report.documents
    assert docs.model_dump(include={"evaluated", "exact_match", "exact_match_rate"}) == {
        "evaluated": 4,
        "exact_match": 1,
        "exact_match_rate": 0.25,
    }
    # Per document: d1 11 tp: P = R = F1 = accuracy = 1. d2: tp 6 (number, name, date, total, the
    # Service item's description and quantity), fp 5 (address, Service's amount, Extra's 3 fields),
    # fn 1 (Service's amount), 11 instances: P = 6/11, R = 6/7, F1 = 12/18, accuracy 6/11.
    # d3, d4: 4 fn and a tn (address) each: no precision, R = F1 = 0, accuracy = 1/5.
    assert docs.mean_precision == approx((1 + 6 / 11) / 2) and docs.mean_recall == approx((1 + 6 / 7) / 4)
    assert docs.mean_f1 == approx((1 + 2 / 3) / 4) and docs.mean_accuracy == approx((1 + 6 / 11 + 1 / 5 + 1 / 5) / 4)
    assert report.headline == "micro.f1" and report.headline_value == report.micro.f1


def test_per_field_counts_and_figures(report):
    # invoice_number, vendor.name, invoice_date, total: right in d1 (case, spaces, "1,234.50",
    # 05/03/2024 day first) and d2; d3 (missing) and d4 (invalid JSON) are false negatives.
    # P = 2/2, R = 2/4, F1 = 2*2/(2*2+0+2) = 2/3, accuracy = 2/4, mean score = 2/4.
    for path in ("invoice_number", "vendor.name", "invoice_date", "total"):
        f = field(report, path)
        assert (f.tp, f.fp, f.fn, f.tn, f.mismatches, f.instances) == (2, 0, 2, 0, 0, 4), path
        assert (f.precision, f.recall, f.f1, f.accuracy, f.mean_score) == (1.0, 0.5, approx(2 / 3), 0.5, 0.5)
    # vendor.address: d1 right; d2 predicted where the truth has null: a false positive; d3 and d4
    # have no address on either side: true negatives. P = 1/2, R = 1/1, F1 = 2/(2+1+0),
    # accuracy = (1 + 2)/4, mean score over the 2 instances with a value = 1/2.
    f = field(report, "vendor.address")
    assert (f.tp, f.fp, f.fn, f.tn, f.expected, f.predicted) == (1, 1, 0, 2, 1, 2)
    assert (f.precision, f.recall, f.f1, f.accuracy, f.mean_score) == (0.5, 1.0, approx(2 / 3), 0.75, 0.5)
    # line items: d1's two items are paired across the order; in d2, "Service" (98) pairs with the
    # truth's "Service" (99): similarity 2*2/(3+3) = 2/3 against 2*1/(3+3) = 1/3 for "Extra";
    # "Extra" is left over: a false positive in each of its three fields.
    # description, quantity: tp 2 (d1) + 1 (d2), fp 1. P = 3/4, R = 1, F1 = 6/7, accuracy = 3/4.
    for path in ("line_items[].description", "line_items[].quantity"):
        f = field(report, path)
        assert (f.tp, f.fp, f.fn, f.tn, f.instances) == (3, 1, 0, 0, 4), path
        assert (f.precision, f.recall, f.f1, f.accuracy) == (0.75, 1.0, approx(6 / 7), 0.75)
    # amount: tp 2 (d1); d2's 98 vs 99 is a mismatch (one fp and one fn); "Extra"'s 1 an fp.
    # P = 2/4, R = 2/3, F1 = 2*2/(4+2+1) = 4/7, accuracy = 2/4 (4 instances).
    f = field(report, "line_items[].amount")
    assert (f.tp, f.fp, f.fn, f.mismatches, f.instances) == (2, 2, 1, 1, 4)
    assert (f.precision, f.recall, f.f1, f.accuracy) == (0.5, approx(2 / 3), approx(4 / 7), 0.5)
    assert [f.path for f in report.fields] == FIELDS


def test_micro_and_macro_averages(report):
    # Micro, summed over the 8 fields: tp = 2+2+1+2+2+3+3+2 = 17, fp = 0+0+1+0+0+1+1+2 = 5,
    # fn = 2+2+0+2+2+0+0+1 = 9, tn = 2; 8 fields x 4 instances = 32.
    m = report.micro
    assert (m.tp, m.fp, m.fn, m.tn, m.instances, m.expected, m.predicted) == (17, 5, 9, 2, 32, 26, 22)
    assert m.precision == approx(17 / 22) and m.recall == approx(17 / 26)
    assert m.f1 == approx(34 / 48)  # 2*17 / (2*17 + 5 + 9)
    assert m.accuracy == approx(19 / 32) and m.mean_score == approx(17 / 30)  # 30 instances with a value
    # Macro: the plain mean over the 8 fields.
    # P: (1 + 1 + 1/2 + 1 + 1 + 3/4 + 3/4 + 1/2) / 8 = 6.5/8; R: (4 * 1/2 + 1 + 1 + 1 + 2/3) / 8 = 17/24;
    # F1: (5 * 2/3 + 2 * 6/7 + 4/7) / 8 = 118/168.
    assert report.macro.precision == approx(6.5 / 8)
    assert report.macro.recall == approx(17 / 24)
    assert report.macro.f1 == approx(118 / 168)


def test_array_items_matched_by_best_assignment(report):
    # d1: 2 predicted, 2 expected, both found (similarity 1); d2: 2 predicted, 1 expected, 1 found
    # (similarity 2/3 >= 0.5). P = 3/4, R = 3/3, F1 = 2*3/(4+3).
    (items,) = report.arrays
    assert (items.path, items.predicted_items, items.expected_items, items.found) == ("line_items[]", 4, 3, 3)
    assert (items.precision, items.recall, items.f1) == (0.75, 1.0, approx(6 / 7))


def test_worst_examples_say_why(report):
    amount = {(e.image_id, e.location, e.outcome, e.predicted, e.expected) for e in report.worst["line_items[].amount"]}
    assert amount == {
        ("d2", "line_items[t0,p0].amount", "mismatch", 98, 99),
        ("d2", "line_items[p1].amount", "fp", 1, None),
    }
    assert [(e.image_id, e.outcome) for e in report.worst["invoice_number"]] == [("d3", "fn"), ("d4", "fn")]
    assert "vendor.address" in report.worst and "invoice_date" in report.worst
    table = format_table(report)
    assert "micro" in table and "line_items[t0,p0].amount: 98 -> 99" in table


# --- comparators, one at a time -----------------------------------------------------------------------


def one(task, predicted, expected, **config):
    return evaluate({"x": predicted}, {"x": expected}, task, EvalConfig(**config))


def test_anls_threshold_and_score(task):
    anls = {"fields": {"vendor.name": {"mode": "anls"}, "vendor.address": {"mode": "anls"}}}
    # "kitten" -> "sitting": Levenshtein distance 3, longer length 7: NL = 3/7 < 0.5, ANLS = 4/7, a match.
    # "abcd" -> "abxy": distance 2 of 4: NL = 0.5, not below the threshold: 0, a mismatch.
    r = one(task, doc(name="kitten", address="abcd"), doc(name="sitting", address="abxy"), **anls)
    name, address = field(r, "vendor.name"), field(r, "vendor.address")
    assert (name.method, name.tp, name.mismatches, name.mean_score) == ("anls", 1, 0, approx(4 / 7))
    assert (address.tp, address.mismatches, address.mean_score) == (0, 1, 0.0)
    assert r.worst["vendor.name"][0].score == approx(4 / 7) and r.worst["vendor.name"][0].outcome == "tp"
    # With the threshold at 0.6, "abcd"/"abxy" passes: ANLS = 1 - 0.5.
    anls["fields"]["vendor.address"]["anls_threshold"] = 0.6
    r = one(task, doc(name="kitten", address="abcd"), doc(name="sitting", address="abxy"), **anls)
    assert field(r, "vendor.address").mean_score == 0.5 and field(r, "vendor.address").tp == 1
    # Exact (the default) folds case and whitespace only.
    r = one(task, doc(name="  Kitten\tCo "), doc(name="kitten co"))
    assert field(r, "vendor.name").tp == 1
    r = one(task, doc(name="Kitten Co"), doc(name="kitten co"), string={"case_sensitive": True})
    assert field(r, "vendor.name").mismatches == 1


@pytest.mark.parametrize(
    ("predicted", "expected", "config", "match"),
    [
        ("1,234.50", 1234.5, {}, True),  # thousands comma, decimal point (the default)
        ("$1 234.50", 1234.5, {}, True),  # currency symbol and a space grouping thousands
        ("1.234,50", 1234.5, {"decimal_separator": ","}, True),
        ("1.234,50", 1234.5, {}, True),  # auto (the default): both marks, the last one is the decimal mark
        ("1.234,50", 1234.5, {"decimal_separator": "."}, False),  # read as 1.2345 with a decimal point
        (10, 10.0, {}, True),
        (10.004, 10, {"abs_tol": 0.005}, True),
        (10.006, 10, {"abs_tol": 0.005}, False),
        (101, 100, {"rel_tol": 0.01}, True),  # |1| <= 0.01 * 101
        ("n/a", "N/A", {}, True),  # not numbers: compared as strings
        (True, 1, {}, False),  # a boolean is no number
    ],
)
def test_numbers_are_compared_as_numbers(task, predicted, expected, config, match):
    r = one(task, doc(total=predicted), doc(total=expected), number=config)
    assert field(r, "total").tp == int(match) and field(r, "total").mismatches == int(not match)


@pytest.mark.parametrize(
    ("predicted", "expected", "config", "match"),
    [
        ("March 5, 2024", "2024-03-05", {}, True),
        ("05/03/2024", "2024-03-05", {"dayfirst": True}, True),
        ("05/03/2024", "2024-03-05", {}, False),  # month first by default: 3 May
        ("05/03/2024", "2024-05-03", {}, True),
        ("05.03.2024", "2024-03-05", {"formats": ["%d.%m.%Y"]}, True),
        ("2024-03-05T23:00:00", "2024-03-05", {}, True),  # a date field compares the date only
        ("unreadable", "UNREADABLE", {}, True),  # not dates: compared as strings
    ],
)
def test_dates_are_compared_as_dates(task, predicted, expected, config, match):
    r = one(task, doc(date=predicted), doc(date=expected), date=config)
    assert field(r, "invoice_date").tp == int(match)


def test_null_absent_and_blank(task):
    absent = doc()  # no address at all
    null = doc() | {"vendor": {"name": "ACME", "address": None}}
    blank = doc(address="  ")
    for predicted, expected in ((absent, null), (null, absent), (blank, null)):
        f = field(one(task, predicted, expected), "vendor.address")
        assert (f.tp, f.fp, f.fn, f.tn) == (0, 0, 0, 1)
    f = field(one(task, doc(address="1 Road"), null), "vendor.address")
    assert (f.fp, f.fn) == (1, 0)  # predicted, the truth has none: a false positive
    f = field(one(task, null, doc(address="1 Road")), "vendor.address")
    assert (f.fp, f.fn) == (0, 1)  # the truth has one, none predicted: a false negative
    f = field(one(task, blank, null, blank_is_absent=False), "vendor.address")
    assert f.fp == 1


def test_items_below_the_match_threshold_are_paired_but_not_found(task):
    # "A"/1/5 vs "B"/1/6: only the quantity agrees: similarity 2*1/(3+3) = 1/3. Still the best pair
    # (the fields are scored against each other) but not a found item under 0.5.
    r = one(task, doc(items=[("A", 1, 5)]), doc(items=[("B", 1, 6)]))
    (items,) = r.arrays
    assert (items.predicted_items, items.expected_items, items.found) == (1, 1, 0)
    assert field(r, "line_items[].quantity").tp == 1 and field(r, "line_items[].amount").mismatches == 1
    r = one(task, doc(items=[("A", 1, 5)]), doc(items=[("B", 1, 6)]), item_match_threshold=0.3)
    assert r.arrays[0].found == 1


def test_arrays_of_strings_are_matched_as_sets():
    task = get_builtin_task("animals")
    truth = {"location": "zoo", "activity": "eating", "animals_seen": 2, "animals": ["dog", "cat"]}
    pred = {"location": "Zoo", "activity": "eating", "animals_seen": "2", "animals": ["Cat", "cow"]}
    r = evaluate({"x": pred}, {"x": truth}, task)
    f = field(r, "animals[]")  # "Cat" finds "cat"; "cow" is an fp, "dog" an fn
    assert (f.tp, f.fp, f.fn, f.mismatches) == (1, 1, 1, 0)
    assert field(r, "animals_seen").tp == 1  # "2" read as the integer 2
    assert r.arrays[0].model_dump() == {
        "path": "animals[]",
        "predicted_items": 2,
        "expected_items": 2,
        "found": 1,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
    }


def test_best_assignment_beats_greedy():
    # Greedy would take (0, 0) = 0.9 and be left with (1, 1) = 0.1: 1.0 in total;
    # the best assignment takes (0, 1) + (1, 0) = 0.8 + 0.8 = 1.6.
    assert sorted(best_pairs([[0.9, 0.8], [0.8, 0.1]])) == [(0, 1), (1, 0)]
    assert best_pairs([[0.0, 0.0]]) == [] and best_pairs([]) == []


def test_non_object_predictions_score_as_empty(task):
    r = evaluate({"a": "[1, 2]", "b": None}, {"a": doc(), "b": doc()}, task)
    # Both are scored as {}: 4 present truth values each (number, name, date, total): 8 fn.
    assert (r.micro.tp, r.micro.fn) == (0, 8)
    v = r.validity
    assert (v.predictions, v.null_outputs, v.json_valid, v.schema_valid) == (2, 1, 1, 0)


# --- configuration -----------------------------------------------------------------------------------


def test_eval_config_from_yaml_with_overrides(tmp_path, task):
    path = tmp_path / "eval.yaml"
    path.write_text("string: {mode: anls}\nnumber: {abs_tol: 0.5}\nfields:\n  total: {abs_tol: 0}\n")
    config = load_eval_config(path, worst_examples=2)
    rules = field_rules(leaf_fields(field_tree(SCHEMA)), config)
    assert rules["vendor.name"].rule.mode == "anls"
    assert rules["line_items[].amount"].rule.abs_tol == 0.5 and rules["total"].rule.abs_tol == 0
    assert config.worst_examples == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("strng: {mode: anls}\n", "strng"),
        ("string: {mode: fuzzy}\n", "string.mode"),
        ("fields:\n  totl: {abs_tol: 1}\n", "no field totl"),
        ("fields:\n  total: {mode: anls}\n", "fields.total (number)"),
    ],
)
def test_bad_eval_configs_are_named(tmp_path, task, content, message):
    path = tmp_path / "eval.yaml"
    path.write_text(content)
    with pytest.raises(Exception) as exc:
        evaluate({}, {"x": doc()}, task, load_eval_config(path))
    assert message in str(exc.value)


# --- loading -------------------------------------------------------------------------------------------

LABELR = pa.schema(
    [
        ("image_id", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("output", pa.string()),
        ("meta", pa.struct([("barcode", pa.string())])),
    ]
)


def write_labelr(path, outputs):
    rows = [
        {"image_id": i, "image": {"bytes": b"", "path": f"{i}.jpg"}, "output": o, "meta": {"barcode": i}}
        for i, o in outputs.items()
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=LABELR), path)


def test_load_parquet_labelr_layout_and_folders_of_parts(tmp_path):
    write_labelr(tmp_path / "truth.parquet", {"a": '{"x": 1}', "b": None})
    assert load_outputs(tmp_path / "truth.parquet") == {"a": '{"x": 1}', "b": None}
    assert load_truth(tmp_path / "truth.parquet") == {"a": {"x": 1}}  # a null truth is no truth
    parts = tmp_path / "out"
    parts.mkdir()
    write_labelr(parts / "part-r1-00000.parquet", {"a": "{}"})
    write_labelr(parts / "part-r1-00001.parquet", {"b": "{}"})
    (parts / ".part-r1-00002.parquet").write_bytes(b"hidden, half written")
    (parts / "config.json").write_text("{}")
    assert load_outputs(parts) == {"a": "{}", "b": "{}"}


def test_load_jsonl_strings_objects_and_extract_results(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = [
        {"image_id": "a", "output": '{"x": 1}'},
        {"image_id": "b", "output": {"x": 2}},
        {"id": "c.pdf#page=1", "data": {"x": 3}, "raw_text": '{"x":3}'},  # a `docextract extract` result
        {"id": "d.png", "data": None, "raw_text": '{"x":'},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert load_outputs(path) == {"a": '{"x": 1}', "b": {"x": 2}, "c.pdf#page=1": {"x": 3}, "d.png": '{"x":'}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"p.jsonl": '{"image_id": "a", "output": "{}"}\n{"image_id": "a", "output": "{}"}\n'}, "appears twice"),
        ({"p.jsonl": '{"name": "a"}\n'}, "no image_id and output"),
        ({"p.jsonl": "not json\n"}, "p.jsonl:1"),
        ({"p.csv": "image_id,output\n"}, "give a Parquet file"),
    ],
)
def test_bad_inputs_are_named(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(Exception) as exc:
        load_outputs(tmp_path / next(iter(files)))
    assert message in str(exc.value)


def test_a_truth_that_is_not_an_object_is_an_error(task):
    with pytest.raises(Exception, match="'t' is not valid JSON"):
        evaluate({}, {"t": "{oops"}, task)


# --- the report files and the command line --------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    """The dataset above as a labelr Parquet truth and JSON lines predictions, with the schema."""
    write_labelr(tmp_path / "truth.parquet", {k: v if isinstance(v, str) else json.dumps(v) for k, v in TRUTH.items()})
    with open(tmp_path / "pred.jsonl", "w") as fh:
        for image_id, output in PREDICTIONS.items():
            fh.write(json.dumps({"image_id": image_id, "output": output}) + "\n")
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "eval.yaml").write_text("date: {dayfirst: true}\n")
    return tmp_path


def test_report_files_are_written(files, task, report):
    from_files = evaluate_files(
        files / "pred.jsonl", files / "truth.parquet", task, EvalConfig(date={"dayfirst": True})
    )
    assert from_files.model_dump(exclude={"predictions", "truth"}) == report.model_dump(
        exclude={"predictions", "truth"}
    )
    json_path, png_path = write_report(from_files, files / "report")
    assert json.loads(json_path.read_text())["micro"]["tp"] == 17
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_command(files, capsys):
    argv = ["eval", str(files / "pred.jsonl"), str(files / "truth.parquet"), "--schema", str(files / "schema.json"),
            "--eval-config", str(files / "eval.yaml"), "--out", str(files / "out"), "--worst", "1"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "micro" in out and "vendor.address" in out and "eval.json" in err
    written = json.loads((files / "out" / "eval.json").read_text())
    assert (written["micro"]["tp"], written["micro"]["fp"], written["micro"]["fn"]) == (17, 5, 9)
    assert written["documents"]["exact_match"] == 1 and written["task"] == "schema"
    assert all(len(examples) == 1 for examples in written["worst"].values())
    assert (files / "out" / "eval.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_command_takes_the_task_from_a_labelr_config_json(files, capsys):
    (files / "config.json").write_text(json.dumps({"instructions": "Read it.", "json_schema": SCHEMA}))
    assert main(["eval", str(files / "pred.jsonl"), str(files / "truth.parquet")]) == 0
    # Without the config, d1's 05/03/2024 is 3 May: a mismatch, one more fp and one more fn.
    assert json.loads((files / "eval.json").read_text())["micro"]["fn"] == 10
    assert "task from" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "invoice", "--eval-config", "{tmp}/missing.yaml"], "cannot read config"),
        (["--schema", "{tmp}/schema.json", "--eval-config", "{tmp}/bad.yaml"], "no field nope"),
        ([], "give --task or --schema"),
        (["--task", "nope"], "unknown task"),
    ],
)
def test_eval_command_usage_errors_are_one_line(files, capsys, extra, message):
    (files / "bad.yaml").write_text("fields:\n  nope: {mode: anls}\n")
    argv = ["eval", str(files / "pred.jsonl"), str(files / "truth.parquet")]
    assert main([*argv, *(a.replace("{tmp}", str(files)) for a in extra)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert main(["eval", str(files / "missing.jsonl"), str(files / "truth.parquet"), "--task", "invoice"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_batch_truth_options_fail_before_ray_starts(tmp_path, capsys):
    from batch.run import main as batch_main

    base = ["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--task", "price_tag"]
    assert batch_main([*base, "--eval-config", "e.yaml"]) == 2
    assert "needs truth" in capsys.readouterr().err
    assert batch_main([*base, "--truth", str(tmp_path / "truth.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
