"""Evaluation with per-field confidence (issue 16): accuracy per confidence bin, expected calibration
error, the worst examples with their confidence, read from JSON lines and batch Parquet parts. The
figures are worked out by hand in the comments."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from docextract.cli.main import main
from docextract.evaluation import EvalConfig, evaluate, evaluate_files, format_table, load_predictions, write_report
from docextract.tasks import task_from_schema

approx = pytest.approx
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
TRUTH = {k: {"a": "1", "b": "2"} for k in ("x1", "x2", "x3")}
PREDICTIONS = {"x1": {"a": "1", "b": "2"}, "x2": {"a": "1", "b": "9"}, "x3": {"a": "7", "b": "2"}}
CONFIDENCE = {"x1": {"a": 0.95, "b": 0.85}, "x2": {"a": 0.92, "b": 0.15}, "x3": {"a": 0.91, "b": 0.12}}


@pytest.fixture(scope="module")
def task():
    return task_from_schema(SCHEMA, "Read.", name="conf")


def test_bins_and_expected_calibration_error(task):
    r = evaluate(PREDICTIONS, TRUTH, task, confidence=CONFIDENCE)
    c = r.calibration
    # Bin [0.9, 1]: 0.95 (right), 0.92 (right), 0.91 (x3's a: wrong): mean 2.78/3, accuracy 2/3.
    # Bin [0.8, 0.9): 0.85 right: accuracy 1. Bin [0.1, 0.2): 0.15 (x2's b: wrong), 0.12 (right): 1/2.
    assert (c.instances, c.accuracy, c.mean_confidence) == (6, approx(4 / 6), approx(3.90 / 6))
    filled = [(b.lower, b.count, b.mean_confidence, b.accuracy) for b in c.bins if b.count]
    assert filled == [
        (0.1, 2, approx(0.135), 0.5),
        (0.8, 1, approx(0.85), 1.0),
        (0.9, 3, approx(2.78 / 3), approx(2 / 3)),
    ]
    assert len(c.bins) == 10 and sum(b.count for b in c.bins) == 6
    # ECE = 2/6 * |0.5 - 0.135| + 1/6 * |1 - 0.85| + 3/6 * |2/3 - 2.78/3| = 0.121667 + 0.025 + 0.13
    assert c.ece == approx(2 / 6 * 0.365 + 1 / 6 * 0.15 + 3 / 6 * (2.78 - 2) / 3)
    # The most confident errors first: x3's a (0.91), then x2's b (0.15).
    assert [(e.image_id, e.location, e.confidence) for e in c.confident_errors] == [
        ("x3", "a", 0.91),
        ("x2", "b", 0.15),
    ]
    # The worst examples carry their confidence too.
    assert [(e.image_id, e.confidence) for e in r.worst["a"]] == [("x3", 0.91)]
    table = format_table(r)
    assert "expected calibration error 0.277" in table and "(confidence 0.910)" in table


def test_confidence_joins_the_matched_items_and_two_bins(task):
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    tags = task_from_schema(schema, "Read.", name="tags")
    # Predicted ["b", "a"] against ["a"]: "a" (tags[1], 0.8) pairs with the truth's a: right; "b"
    # (tags[0], 0.3) is left over: an fp, wrong. Two bins: [0, 0.5) accuracy 0, [0.5, 1] accuracy 1.
    # ECE = 1/2 * |0 - 0.3| + 1/2 * |1 - 0.8| = 0.25. A path the confidence lacks is not counted.
    conf = {"x": json.dumps({"tags[0]": 0.3, "tags[1]": 0.8, "tags": 0.5})}  # a batch row's JSON string
    r = evaluate(
        {"x": {"tags": ["b", "a"]}}, {"x": {"tags": ["a"]}}, tags, EvalConfig(confidence_bins=2), confidence=conf
    )
    c = r.calibration
    assert [(b.count, b.accuracy) for b in c.bins] == [(1, 0.0), (1, 1.0)]
    assert c.ece == approx(0.25)


def test_nulls_count_when_they_have_a_confidence(task):
    # x1: a null where the truth has none (tn: right) with 0.6; b "2" right with 0.4. Bins of 2:
    # [0, 0.5): 0.4 right; [0.5, 1]: 0.6 right: ECE = 1/2 * 0.6 + 1/2 * 0.4 = 0.5.
    r = evaluate({"x1": {"a": None, "b": "2"}}, {"x1": {"b": "2"}}, task, EvalConfig(confidence_bins=2),
                 confidence={"x1": {"a": 0.6, "b": 0.4}})  # fmt: skip
    assert r.calibration.ece == approx(0.5) and r.calibration.accuracy == 1.0


def test_no_confidence_no_calibration(task):
    r = evaluate(PREDICTIONS, TRUTH, task)
    assert r.calibration is None and "calibration" not in format_table(r)


def write_files(tmp_path):
    """The predictions as a batch Parquet part (confidence as a JSON string) and as extract JSONL."""
    parts = tmp_path / "out"
    parts.mkdir()
    rows = [{"image_id": k, "output": json.dumps(v), "confidence": json.dumps(CONFIDENCE[k]),
             "min_confidence": min(CONFIDENCE[k].values())} for k, v in PREDICTIONS.items()]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), parts / "part-r1-00000.parquet")
    with open(tmp_path / "extract.jsonl", "w") as fh:
        for k, v in PREDICTIONS.items():  # `docextract extract` results: the confidence is an object
            fh.write(json.dumps({"id": k, "data": v, "confidence": CONFIDENCE[k], "min_confidence": 0.1}) + "\n")
    with open(tmp_path / "truth.jsonl", "w") as fh:
        for k, v in TRUTH.items():
            fh.write(json.dumps({"image_id": k, "output": v}) + "\n")
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    return parts


def test_confidence_is_read_from_batch_parts_and_extract_results(tmp_path, task):
    parts = write_files(tmp_path)
    outputs, confidence = load_predictions(parts)
    assert set(outputs) == set(confidence) == {"x1", "x2", "x3"} and json.loads(confidence["x2"])["b"] == 0.15
    for source in (parts, tmp_path / "extract.jsonl"):
        r = evaluate_files(source, tmp_path / "truth.jsonl", task)
        assert r.calibration.instances == 6 and r.calibration.ece == approx(0.2766667)
    json_path, png_path = write_report(r, tmp_path / "report")
    written = json.loads(json_path.read_text())
    assert written["calibration"]["bins"][9]["count"] == 3 and written["definition"].startswith("profile default")
    assert png_path.read_bytes()[:4] == b"\x89PNG"


def test_eval_command_lists_the_worst_examples_with_their_confidence(tmp_path, capsys):
    parts = write_files(tmp_path)
    argv = ["eval", str(parts), str(tmp_path / "truth.jsonl"), "--schema", str(tmp_path / "schema.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "most confident errors:" in out and 'x3 a: "7" -> "1"  (confidence 0.910)' in out
    assert json.loads((parts / "eval.json").read_text())["calibration"]["instances"] == 6
