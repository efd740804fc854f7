"""The report as text for a terminal: rows and validity, one line per field, arrays, worst examples."""

from __future__ import annotations

import json
from typing import Any

from docextract.evaluation.report import Calibration, EvalReport, Example, Figures, Totals

__all__ = ["format_table"]

_VALUE_WIDTH = 40


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _part(count: int, total: int) -> str:
    return f"{count}/{total}" + (f" ({100 * count / total:.1f}%)" if total else "")


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


def _columns(header: list[str], rows: list[list[str]], *, text: int = 1) -> list[str]:
    """Left-align the first ``text`` columns, right-align the figures."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(w) if i < text else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]


def _figures(f: Figures) -> list[str]:
    return [_rate(f.precision), _rate(f.recall), _rate(f.f1), _rate(f.accuracy), _rate(f.mean_score)]


def _totals(t: Totals) -> list[str]:
    return [str(t.expected), str(t.predicted), str(t.tp), str(t.fp), str(t.fn), *_figures(t)]


def format_table(report: EvalReport) -> str:
    """Every headline figure, per-field figures and the worst examples, as lines of text."""
    rows, validity, docs = report.rows, report.validity, report.documents
    lines = [
        f"task {report.task}: {rows.total} rows ({rows.both} with both sides, {rows.only_predictions} "
        f"without truth, {rows.only_truth} without prediction)",
        f"valid JSON {_part(validity.json_valid, validity.rows)}; schema-valid "
        f"{_part(validity.schema_valid, validity.rows)}; documents exactly right {_part(docs.exact_match, docs.evaluated)}",
        f"{report.definition}; {report.headline} = {_rate(report.headline_value)}; per document: "
        f"precision {_rate(docs.mean_precision)}, recall {_rate(docs.mean_recall)}, f1 {_rate(docs.mean_f1)}, "
        f"accuracy {_rate(docs.mean_accuracy)}",
        "",
    ]
    header = ["field", "type", "method", "truth", "pred", "tp", "fp", "fn", "precision", "recall", "f1", "accuracy", "score"]  # fmt: skip
    body = [[f.path, f.type, f.method, *_totals(f)] for f in report.fields]
    body.append(["micro", "", "", *_totals(report.micro)])
    body.append(["macro", "", "", "", "", "", "", "", *_figures(report.macro)])
    lines.extend(_columns(header, body, text=3))
    if report.arrays:
        lines.append("")
        items = [
            [a.path, str(a.expected_items), str(a.predicted_items), str(a.found), _rate(a.precision), _rate(a.recall), _rate(a.f1)]
            for a in report.arrays
        ]  # fmt: skip
        lines.extend(_columns(["items", "truth", "pred", "found", "precision", "recall", "f1"], items))
    if report.calibration is not None:
        lines.extend(_calibration(report.calibration))
    if report.worst:
        lines += ["", "worst examples (score, outcome, where, predicted -> expected, confidence):"]
        for path, examples in report.worst.items():
            lines.append(f"  {path}")
            lines.extend(_example(e) for e in examples)
    return "\n".join(lines)


def _example(e: Example) -> str:
    confidence = "" if e.confidence is None else f"  (confidence {e.confidence:.3f})"
    return f"    {e.score:.2f} {e.outcome:<8} {e.image_id} {e.location}: {_value(e.predicted)} -> {_value(e.expected)}{confidence}"


def _calibration(c: Calibration) -> list[str]:
    lines = [
        "",
        f"calibration: {c.instances} values with a confidence, accuracy {_rate(c.accuracy)}, "
        f"mean confidence {_rate(c.mean_confidence)}, expected calibration error {_rate(c.ece)}",
    ]
    rows = [
        [f"[{b.lower:.2f}, {b.upper:.2f}{']' if b.upper >= 1 else ')'}", str(b.count), _rate(b.mean_confidence), _rate(b.accuracy)]
        for b in c.bins
        if b.count
    ]  # fmt: skip
    lines.extend(_columns(["confidence", "values", "mean", "accuracy"], rows))
    if c.confident_errors:
        lines.append("most confident errors:")
        lines.extend(_example(e) for e in c.confident_errors)
    return lines
