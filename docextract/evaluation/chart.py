"""The report as a picture: precision, recall and F1 per field, as a PNG; beside it, when the
predictions carry confidence, the reliability plot (accuracy against mean confidence per bin, the
diagonal being perfect calibration, with each bin's share of the values).

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
    height = 1.6 + 0.45 * max(len(fields), 1)
    if report.calibration is None:
        fig = Figure(figsize=(9, height), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = Figure(figsize=(14, max(height, 4.5)), layout="constrained")
        ax, reliability = fig.subplots(1, 2, width_ratios=[3, 2])
        _reliability(reliability, report)
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
    handles, labels = ax.get_legend_handles_labels()  # the field chart only: the reliability plot has its own
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize="small")
    ax.set_title(
        f"{report.task}: micro F1 {_pct(report.micro.f1)}, macro F1 {_pct(report.macro.f1)}, "
        f"documents exact {_pct(report.documents.exact_match_rate)}, "
        f"schema-valid {_pct(report.validity.schema_valid_rate)} ({report.rows.total} rows)",
        fontsize="medium",
    )
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path


def _reliability(ax, report: EvalReport) -> None:
    """Accuracy per confidence bin (bars at the bins) and the diagonal of perfect calibration."""
    calibration = report.calibration
    bins = [b for b in calibration.bins if b.count]
    width = calibration.bins[0].upper - calibration.bins[0].lower
    ax.bar([b.lower for b in bins], [b.accuracy for b in bins], width=width, align="edge", color="#4c72b0",
           edgecolor="white", label="accuracy")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label="perfect calibration")
    ax.plot(
        [b.mean_confidence for b in bins], [b.accuracy for b in bins], "o", color="#dd8452", label="mean confidence"
    )
    for b in bins:
        ax.text(b.lower + width / 2, 0.02, str(b.count), ha="center", fontsize="x-small", color="white")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(f"reliability: {calibration.instances} values, ECE {_pct(calibration.ece)}", fontsize="medium")
