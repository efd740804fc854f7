"""The report as a picture: precision, recall and F1 per field, as a PNG.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``, rendered by
the Agg canvas), not ``pyplot``: no display, no global figure state, so it is
safe in a batch driver or a server thread.
"""

from __future__ import annotations

from pathlib import Path

from docextract.evaluation.report import EvalReport

__all__ = ["write_chart"]

_SERIES = (("precision", "#4c72b0"), ("recall", "#dd8452"), ("f1", "#55a868"))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def write_chart(report: EvalReport, path: str | Path) -> Path:
    """Draw one horizontal group of bars per field (undefined figures are left blank) and save it as PNG."""
    from matplotlib.figure import Figure

    fields = report.fields
    bar = 0.27
    fig = Figure(figsize=(9, 1.6 + 0.45 * max(len(fields), 1)), layout="constrained")
    ax = fig.add_subplot()
    positions = range(len(fields))
    for k, (name, color) in enumerate(_SERIES):
        values = [getattr(f, name) for f in fields]
        ax.barh(
            [p + (k - 1) * bar for p in positions],
            [float("nan") if v is None else v for v in values],
            height=bar,
            label=name,
            color=color,
        )
    for p, f in zip(positions, fields, strict=True):
        # A zero and an undefined figure both draw no bar: the label tells them apart.
        ax.text(1.01, p, f"F1 {f.f1:.2f}" if f.f1 is not None else "no values", va="center", fontsize="small")
    ax.set_yticks(list(positions), [f.path for f in fields])
    ax.invert_yaxis()  # schema order, top to bottom
    ax.set_xlim(0, 1.12)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xlabel("score")
    ax.grid(axis="x", alpha=0.3)
    if report.micro.f1 is not None:
        ax.axvline(report.micro.f1, color="black", linestyle="--", linewidth=1, label="micro F1")
    fig.legend(loc="outside lower center", ncols=4, fontsize="small")
    ax.set_title(
        f"{report.task}: micro F1 {_pct(report.micro.f1)}, macro F1 {_pct(report.macro.f1)}, "
        f"documents exact {_pct(report.documents.exact_match_rate)}, "
        f"schema-valid {_pct(report.validity.schema_valid_rate)} ({report.rows.total} rows)",
        fontsize="medium",
    )
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path
