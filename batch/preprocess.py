"""CPU stage: a unit of work -> model-ready pages, in Ray tasks, never raising for a bad row.

The same code as every front door (:func:`docextract.preprocess.documents.load_document`:
type sniffing, size and pixel limits, EXIF rotation, RGB, resize to the
pixel budget, sandboxed PDF rendering) runs here, on CPU workers, so the
engine actors only generate. Pages travel to the actors as raw RGB pixels
(:data:`~batch.rows.PIXELS_TYPE`): exactly the pixels the model would see in
process, with no encoding here and no decoding in the engine's host process,
whose CPU time per page bounds how fast one engine can be fed. Only a job that
stores images (``--include-images``) also gets a PNG of the first page
(``compress_level=1``: deflate effort buys little for bytes that live seconds).

Pages leave this stage at the size the model's image processor would resize
them to (:func:`model_ready`, for a family that says it:
:attr:`~docextract.models.families.ModelFamily.input_size`), so the processor
in the engine's host process finds nothing to resize: pages are resampled here,
on CPU workers, not there (a page above the pixel budget is resampled twice here,
to the budget and then the few pixels to the model's size). Measured on a 1-megapixel page (Qwen2-VL's
processor, one thread): 16 ms for a 1024 px PIL image, 12 ms for the same as an
array, 7 ms for an array at its model size (1008 px).

A row that cannot be loaded comes out with ``error``/``error_kind`` and no
images; the actor passes it through, so it still becomes exactly one output
row. Warnings (``blank_page``, ``upscaled``) travel in ``warnings``; a row
whose pages are all blank under ``blank_pages="skip"`` becomes a
``blank_page`` error row, with its warnings, and never reaches the engine.

The work runs at the lowest CPU priority (nice 19, on its own thread: the
worker process keeps its priority for whatever Ray gives it next; Ray starts
every worker at nice 15, and the engine actor asks for the normal priority:
:func:`docextract.host_threads.normal_priority`). Where cores are shared, the
engine wins: its model load at the start of a job (when the
first pages are rendered) and its host process while it generates. Pages are
ready long before an engine needs them, so they lose nothing by waiting.

A per-page row renders only its own page (the file is read by path, one page
at a time), and :mod:`batch.pipeline` gives this stage small batches, so a
task's memory is a few pages whatever the length of the document.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa

__all__ = ["at_low_priority", "encode_png", "model_ready", "pixels", "preprocess_rows"]

T = TypeVar("T")
#: Niceness of the CPU stage's work: the lowest priority (0 is normal; Ray's workers run at 15).
_NICE = 19


def encode_png(image: Any) -> bytes:
    """One page as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def pixels(image: Any) -> dict[str, Any]:
    """One page as a :data:`~batch.rows.PIXELS_TYPE` value."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return {"width": image.width, "height": image.height, "rgb": image.tobytes()}


def model_ready(image: Any, family: Any, options: Any) -> Any:
    """``image`` at the size ``family``'s image processor turns it into under ``options``' pixel
    budget (bicubic, as Qwen-VL's processor); as it is where that size is not known or already met."""
    from PIL import Image

    from docextract.models.families import model_input_size

    size = model_input_size(family, image.size, options.min_pixels, options.max_pixels) if family else None
    if size is None or size == image.size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC)


def _load(row: dict[str, Any], options: Any) -> tuple[list[Any], list[Any], str | None]:
    """The pages to send (PIL images), every page's warnings, and the error when none is sent."""
    from docextract.preprocess.documents import load_document
    from docextract.preprocess.pages import blank_skip_message, result_id

    source = row["path"] if row["path"] is not None else row["data"]
    pages = row["pages"] or None
    document = load_document(source, name=row["source"], pages=pages, options=options)
    images = [page.image for page in document.pages if page.send]
    warnings = [w for page in document.pages for w in page.warnings]
    skipped = None
    if not images:
        numbers = [page.page_number for page in document.pages] if document.paged else []
        skipped = blank_skip_message(result_id(row["source"], numbers))
    return images, warnings, skipped


def preprocess_rows(batch: pa.Table, *, options: Any, preview: bool = False, family: Any = None) -> pa.Table:
    """Ray task: decode, rotate, resize and render each row; errors become columns.
    ``preview``: also the first page as PNG (for ``--include-images``). ``family``: the model's
    :class:`~docextract.models.families.ModelFamily`, whose input size pages are brought to."""
    return at_low_priority(_preprocess_rows, batch, options, preview, family)


def at_low_priority(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` on a thread of its own at nice 19 (Linux sets niceness per thread;
    elsewhere it runs at the caller's priority). Exceptions propagate."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(_NICE, os.getpriority(os.PRIO_PROCESS, tid)))
        except (AttributeError, OSError):
            pass
        try:
            outcome["value"] = work(*args)
        except BaseException as exc:  # re-raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="docextract-preprocess")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _preprocess_rows(batch: pa.Table, options: Any, preview: bool, family: Any) -> pa.Table:
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
                    images = [model_ready(image, family, options) for image in images]
                    ready["images"] = [pixels(image) for image in images]
                    if preview:
                        ready["preview"] = encode_png(images[0])
                else:
                    ready.update(error=skipped, error_kind="blank_page")
            except Exception as exc:  # a bad row must not fail the task: it becomes an error row
                ready.update(error_fields(exc))
            ready["preprocess_s"] = time.perf_counter() - started
        out.append(ready)
    return table(out, READY_SCHEMA)
