"""The coverage report for people (a table, ``docextract schema check``) and for programs
(JSON, ``POST /v1/schema/check``): two renderings of one
:class:`~docextract.schema.compiler.SchemaReport`."""

from __future__ import annotations

from typing import Any

from docextract.schema.compiler import SchemaReport

__all__ = ["report_json", "report_table"]


def report_json(report: SchemaReport) -> dict[str, Any]:
    """The report as the JSON ``POST /v1/schema/check`` answers."""
    return {
        "backend": report.backend,
        "accepted": report.accepted,
        "refused_reason": report.refused_reason,
        "draft": report.draft,
        "fallback": report.fallback,
        "fallback_reason": report.fallback_reason,
        "bundled": report.bundled,
        "counts": report.counts(),
        "validated_after": report.validated_after,
        "coverage": [entry.model_dump() for entry in report.coverage],
        "engine_schema": report.engine_schema,
    }


def report_table(report: SchemaReport, *, show_enforced: bool = False) -> str:
    """A plain-text table: path, keyword, status, why; enforced rows only counted unless asked."""
    rows = [e for e in report.coverage if show_enforced or e.status != "enforced"]
    head = ("path", "keyword", "status", "why")
    cells = [(e.path, e.keyword, e.status, e.reason) for e in rows]
    widths = [max([len(head[i])] + [len(c[i]) for c in cells]) for i in range(3)]
    lines = [f"backend: {report.backend}" + (f" (draft {report.draft})" if report.draft else "")]
    if cells:
        lines.append("  ".join(h.ljust(w) for h, w in zip(head[:3], widths, strict=True)) + "  " + head[3])
        lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 3)
        lines.extend("  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells)
    counts = report.counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in ("enforced", "validated", "annotation", "refused") if counts[s])
    lines.append("")
    if report.accepted:
        note = {
            None: "",
            "other_backend": f"; the configured backend cannot compile it ({report.fallback_reason})",
        }.get(report.fallback, f"; fallback: {report.fallback} engine schema")
        lines.append(f"accepted: {summary or 'no constraining keyword'}{note}")
        if report.bundled:
            lines.append(f"bundled from the schema store under $defs: {', '.join(report.bundled)}")
        if any(e.status == "validated" for e in report.coverage):
            lines.append("validated keywords are checked after generation; a breaking output is reported valid: false")
    else:
        lines.append(f"refused: {report.refused_reason}")
    return "\n".join(lines)
