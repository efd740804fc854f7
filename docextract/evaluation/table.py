"""The report as text for a terminal: rows and validity, one line per field, arrays, worst examples."""

from __future__ import annotations

import json
from typing import Any

from docextract.evaluation.report import EvalReport

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


def format_table(report: EvalReport) -> str:
    """Every headline figure, per-field figures and the worst examples, as lines of text."""
    rows, validity, docs = report.rows, report.validity, report.documents
    lines = [
        f"task {report.task}: {rows.total} rows ({rows.both} with both sides, {rows.only_predictions} "
        f"without truth, {rows.only_truth} without prediction)",
        f"valid JSON {_part(validity.json_valid, validity.rows)}; schema-valid "
        f"{_part(validity.schema_valid, validity.rows)}; documents exactly right {_part(docs.exact_match, docs.evaluated)}",
        "",
    ]
    header = ["field", "type", "method", "truth", "pred", "tp", "fp", "fn", "precision", "recall", "f1", "accuracy", "score"]  # fmt: skip
    body = [
        [f.path, f.type, f.method, str(f.expected), str(f.predicted), str(f.tp), str(f.fp), str(f.fn),
         _rate(f.precision), _rate(f.recall), _rate(f.f1), _rate(f.accuracy), _rate(f.mean_score)]
        for f in report.fields
    ]  # fmt: skip
    micro, macro = report.micro, report.macro
    body.append(["micro", "", "", str(micro.expected), str(micro.predicted), str(micro.tp), str(micro.fp),
                 str(micro.fn), _rate(micro.precision), _rate(micro.recall), _rate(micro.f1),
                 _rate(micro.accuracy), _rate(micro.mean_score)])  # fmt: skip
    body.append(["macro", "", "", "", "", "", "", "", _rate(macro.precision), _rate(macro.recall),
                 _rate(macro.f1), _rate(macro.accuracy), _rate(macro.mean_score)])  # fmt: skip
    lines.extend(_columns(header, body, text=3))
    if report.arrays:
        lines.append("")
        items = [
            [a.path, str(a.expected_items), str(a.predicted_items), str(a.found), _rate(a.precision), _rate(a.recall), _rate(a.f1)]
            for a in report.arrays
        ]  # fmt: skip
        lines.extend(_columns(["items", "truth", "pred", "found", "precision", "recall", "f1"], items))
    if report.worst:
        lines += ["", "worst examples (score, outcome, where, predicted -> expected):"]
        for path, examples in report.worst.items():
            lines.append(f"  {path}")
            for e in examples:
                lines.append(
                    f"    {e.score:.2f} {e.outcome:<8} {e.image_id} {e.location}: "
                    f"{_value(e.predicted)} -> {_value(e.expected)}"
                )
    return "\n".join(lines)
