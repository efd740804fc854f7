"""CPU stage: a unit of work -> model-ready pages, in Ray tasks, never raising for a bad row.

The same code as every front door (:func:`docextract.preprocess.documents.load_document`:
type sniffing, size and pixel limits, EXIF rotation, RGB, resize to the
pixel budget, sandboxed PDF rendering) runs here, on CPU workers, so the
engine actors only generate. Pages travel to the actors as PNG bytes:
lossless, so the model sees exactly the pixels it would see in process, and
compact in the object store. ``compress_level=1`` because the bytes live for
seconds: deflate effort buys little there.

A row that cannot be loaded comes out with ``error``/``error_kind`` and no
images; the actor passes it through, so it still becomes exactly one output
row. Warnings (``blank_page``, ``upscaled``) travel in ``warnings``; a row
whose pages are all blank under ``blank_pages="skip"`` becomes a
``blank_page`` error row, with its warnings, and never reaches the engine.

A per-page row renders only its own page (the file is read by path, one page
at a time), and :mod:`batch.pipeline` gives this stage small batches, so a
task's memory is a few pages whatever the length of the document.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pyarrow as pa

__all__ = ["encode_png", "preprocess_rows"]


def encode_png(image: Any) -> bytes:
    """One page as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _load(row: dict[str, Any], options: Any) -> tuple[list[bytes], list[Any], str | None]:
    """PNG bytes of the pages to send, every page's warnings, and the error when none is sent."""
    from docextract.preprocess.documents import load_document
    from docextract.preprocess.pages import blank_skip_message, result_id

    source = row["path"] if row["path"] is not None else row["data"]
    pages = row["pages"] or None
    document = load_document(source, name=row["source"], pages=pages, options=options)
    images = [encode_png(page.image) for page in document.pages if page.send]
    warnings = [w for page in document.pages for w in page.warnings]
    skipped = None
    if not images:
        numbers = [page.page_number for page in document.pages] if document.paged else []
        skipped = blank_skip_message(result_id(row["source"], numbers))
    return images, warnings, skipped


def preprocess_rows(batch: pa.Table, *, options: Any) -> pa.Table:
    """Ray task: decode, rotate, resize and render each row; errors become columns."""
    from batch.rows import READY_SCHEMA, error_fields, table, warning_values

    out = []
    for row in batch.to_pylist():
        ready = {k: row[k] for k in ("id", "source", "pages", "meta", "error", "error_kind")}
        if row["error"] is None:
            started = time.perf_counter()
            try:
                images, warnings, skipped = _load(row, options)
                ready["warnings"] = warning_values(warnings)
                if skipped is None:
                    ready["images"] = images
                else:
                    ready.update(error=skipped, error_kind="blank_page")
            except Exception as exc:  # a bad row must not fail the task: it becomes an error row
                ready.update(error_fields(exc))
            ready["preprocess_s"] = time.perf_counter() - started
        out.append(ready)
    return table(out, READY_SCHEMA)
