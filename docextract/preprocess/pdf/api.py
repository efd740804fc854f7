"""Render PDF pages to RGB images with pdfium or poppler, safely.

Real-world PDFs hang renderers, flood stderr and come back as junk pages, so a
render here:

* runs out of process under a wall-clock limit per document (``timeout_s``)
  and an address-space limit (:data:`RENDER_MEMORY_LIMIT_BYTES`); the process
  is killed when either is hit. pdfium runs in a reused worker process that
  speaks length-prefixed JSON + raw pixels over pipes (no pickle, so a
  renderer compromised by a hostile file cannot run code in the caller);
  poppler is ``pdftoppm``, run directly rather than through pdf2image, which
  keeps all of poppler's stderr in memory (more than a GB for some files);
* keeps at most 36 KiB of a renderer's stderr;
* renders the CropBox with both renderers (poppler defaults to the MediaBox);
* never initialises pdfium's form support, which can hang;
* checks that each page is a real page (at least 3 pt a side; poppler returns
  1x1 "pages" for broken page trees) and renders oversized pages (posters,
  forged MediaBoxes) at a lower dpi so no page exceeds ``max_page_pixels``;
* maps pdfium's load errors by code, never by message: a zero-page document
  reports "PDFium: Success", and the code is stale unless the load failed.

``renderer="auto"`` uses pdfium and falls back to poppler when pdfium fails
for a reason that is the file's, not the request's (not encryption, page
selection or the time limit): about 40 in 1,100 real-world PDFs render in only
one of the two. Pages stream: the caller gets each page as it is rendered
(:func:`iter_pdf_pages`), so it can scale one page down before the next
arrives; a failure after some pages hands the remaining pages to poppler.
A page of one uniform colour (pdfium renders some damaged files, and some
forms, as white pages without an error) is rendered again by the other
renderer under ``auto``; if it is still uniform it comes back marked
``blank``. A page count is believed only once its first and last pages
render (poppler counts 100 "pages" in some files that are no PDF at all). pdfium is the default because it is faster. From
``bench/bench_pdf_render.py`` (20 letter pages, median of 5, 2-core CPU shared
with other jobs; seconds per document, pdfium vs poppler):

    seconds per document        72 dpi          150 dpi
    vector (shapes and text)    0.15 vs 0.29    0.46 vs 0.97
    raster (200-dpi JPEG scans) 0.74 vs 0.99    1.11 vs 1.78

pdfium is 1.3-2.1x faster (``bench/results/pdf_render.json``). Running it in a
worker process costs up to 0.1 s per 20 vector pages over calling pypdfium2
in-process, and nothing on raster pages (the caller copies one page while the
worker renders the next): a small price for the limits above.

The pdfium worker process lives in :mod:`docextract.preprocess.pdf.pdfium`, the poppler
subprocesses in :mod:`docextract.preprocess.pdf.poppler`, and what they share with this
module (the request and page types, page selection, page size checks, the
resource limits) in :mod:`docextract.preprocess.pdf.common`, below all three.

Linux and macOS only (pipes, ``select`` and ``resource``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from docextract.config import DEFAULT_MAX_PAGE_PIXELS, PdfRenderer
from docextract.errors import InputError
from docextract.preprocess.images import is_uniform
from docextract.preprocess.pdf.common import (
    MAX_CONCURRENT_RENDERS,
    PDF_SCAN_BYTES,
    RENDER_MEMORY_LIMIT_BYTES,
    RenderedPage,
    RenderFailed,
    RenderRequest,
    corrupt_cause,
)
from docextract.preprocess.pdf.pdfium import render_pdfium
from docextract.preprocess.pdf.poppler import render_poppler

__all__ = [
    "PdfSource",
    "RENDER_MEMORY_LIMIT_BYTES",
    "RenderedPage",
    "count_pdf_pages",
    "iter_pdf_pages",
    "render_pdf_pages",
]

PdfSource = str | os.PathLike | bytes

# Renders in progress in this process, across threads (see MAX_CONCURRENT_RENDERS).
_render_slots = threading.BoundedSemaphore(MAX_CONCURRENT_RENDERS)
# Kinds after which "auto" tries the other renderer: the file's fault, not the request's.
_FALLBACK_KINDS = frozenset({"corrupt_pdf", "no_pages", "renderer_unavailable"})
_ENGINES = {"pdfium": render_pdfium, "poppler": render_poppler}
_ORDERS: dict[str, tuple[str, ...]] = {"auto": ("pdfium", "poppler"), "pdfium": ("pdfium",), "poppler": ("poppler",)}
# A page count is checked by rendering its first and last pages this small: cheap, and enough
# to tell pages that exist from a count read out of junk.
_PROBE_DPI = 72.0
_PROBE_PIXELS = 20_000


# --- public API -------------------------------------------------------------


def iter_pdf_pages(
    source: PdfSource,
    *,
    dpi: int = 150,
    pages: Sequence[int] | None = None,
    max_pages: int | None = 50,
    renderer: PdfRenderer = "auto",
    timeout_s: float = 60,
    max_page_pixels: int | None = DEFAULT_MAX_PAGE_PIXELS,
    name: str | None = None,
) -> Iterator[RenderedPage]:
    """Render the pages of a PDF to RGB images, one at a time.

    Arguments are checked now; rendering starts at the first ``next()``, and a
    render slot and the time limit are held until the iterator is exhausted or
    closed. Memory: one full-size page in this process at a time (plus the one
    the renderer is drawing), whatever the document's length.

    Args:
        source: A path or the file's bytes.
        dpi: Resolution; a page of W x H points renders to about
            ``W * dpi / 72`` x ``H * dpi / 72`` pixels.
        pages: 1-based page numbers to render; duplicates are dropped and pages
            come back in ascending order. None renders every page.
        max_pages: Most pages one call renders. A document with more pages and
            no ``pages`` selection is refused (``too_many_pages``) rather than
            silently cut short; the message says to select pages.
        renderer: ``"pdfium"``, ``"poppler"``, or ``"auto"`` (pdfium, then
            poppler if pdfium cannot read the file, or for a page pdfium renders blank).
        timeout_s: Wall-clock limit for the whole document, both renderers
            included; starting the pdfium worker process is not counted.
        max_page_pixels: Pages larger than this at ``dpi`` render at a lower dpi.
        name: How the document is named in error messages.

    Yields:
        The rendered pages; ``blank`` is set on a page of one uniform colour.

    Raises:
        InputError: ``empty_file``, ``not_found``, ``corrupt_pdf``,
            ``no_pages``, ``encrypted_pdf``, ``invalid_pages``,
            ``too_many_pages``, ``render_timeout``, ``renderer_busy`` or
            ``renderer_unavailable``.
    """
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    order = _order(renderer)
    name, path, data = _resolve_source(source, name)
    selection = sorted(set(pages)) if pages is not None else None
    request = RenderRequest("render", path, data, selection, float(dpi), max_pages, max_page_pixels)
    return _render(request, order, timeout_s, name)


def render_pdf_pages(source: PdfSource, **options: Any) -> list[RenderedPage]:
    """Every page of :func:`iter_pdf_pages` (same options) in a list: all of them full-size in
    memory at once, so callers that scale pages down should iterate instead."""
    return list(iter_pdf_pages(source, **options))


def count_pdf_pages(
    source: PdfSource,
    *,
    renderer: PdfRenderer = "auto",
    timeout_s: float = 30,
    name: str | None = None,
) -> int:
    """Count the pages of a PDF, and check the count: its first and last pages must render
    (tiny), or the count is junk read from a file that is no PDF or whose page tree is damaged.

    Args:
        source: A path or the file's bytes.
        renderer: Which library reads the file; ``"auto"`` as for
            :func:`render_pdf_pages`.
        timeout_s: Wall-clock limit.
        name: How the document is named in error messages.

    Returns:
        The number of pages (at least 1).

    Raises:
        InputError: As :func:`render_pdf_pages`, for the file's faults.
    """
    order = _order(renderer)
    name, path, data = _resolve_source(source, name)
    request = RenderRequest("count", path, data, None, _PROBE_DPI, None, None)
    deadline = time.monotonic() + timeout_s
    _take_slot(timeout_s, name)
    failures: list[tuple[str, RenderFailed]] = []
    try:
        for engine in order:
            try:
                count = _ENGINES[engine](request, deadline)
                assert isinstance(count, int)
                _check_pages_exist(engine, request, count, deadline)
                return count
            except RenderFailed as exc:
                failures.append((engine, exc))
                if exc.kind not in _FALLBACK_KINDS:
                    break
    finally:
        _render_slots.release()
    raise _failure(failures, request, timeout_s, name)


# --- the source -------------------------------------------------------------


def _order(renderer: str) -> tuple[str, ...]:
    order = _ORDERS.get(renderer)
    if order is None:
        raise ValueError(f"renderer must be 'auto', 'pdfium' or 'poppler', got {renderer!r}")
    return order


def _resolve_source(source: PdfSource, name: str | None) -> tuple[str, str | None, bytes | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or "document.pdf"
        if not data:
            raise InputError(f"{name}: empty file", kind="empty_file")
        return name, None, data
    path = os.fspath(source)
    name = name or path
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise InputError(f"{name}: no such file", kind="not_found") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read file ({exc.strerror})", kind="not_found") from None
    if size == 0:
        raise InputError(f"{name}: empty file", kind="empty_file")
    return name, os.path.abspath(path), None


def _head(request: RenderRequest, n: int = PDF_SCAN_BYTES) -> bytes:
    if request.data is not None:
        return request.data[:n]
    try:
        with open(request.path or "", "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _tail(request: RenderRequest, n: int = 1024) -> bytes:
    if request.data is not None:
        return request.data[-n:]
    try:
        with open(request.path or "", "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - n))
            return f.read()
    except OSError:
        return b""


# --- orchestration ----------------------------------------------------------


def _take_slot(timeout_s: float, name: str) -> None:
    # Waiting for a free slot counts against the document's time limit.
    if not _render_slots.acquire(timeout=timeout_s):
        raise InputError(
            f"{name}: no renderer became free within {timeout_s:g} s "
            f"({MAX_CONCURRENT_RENDERS} documents are being rendered)",
            kind="renderer_busy",
        )


def _render(request: RenderRequest, order: tuple[str, ...], timeout_s: float, name: str) -> Iterator[RenderedPage]:
    deadline = time.monotonic() + timeout_s
    _take_slot(timeout_s, name)
    failures: list[tuple[str, RenderFailed]] = []
    done: list[int] = []
    try:
        for engine in order:
            others = [e for e in order if e != engine]
            try:
                for page in _ENGINES[engine](dataclasses.replace(request, done=tuple(done)), deadline):
                    if is_uniform(page.image):
                        page = _second_opinion(page, request, others, deadline)
                    done.append(page.page_number)
                    yield page
                    del page  # hold no full-size page while the next is rendered
                return
            except RenderFailed as exc:
                if exc.kind == "too_many_pages" and exc.count and not request.pages:
                    # Believe a long count only if its pages exist: junk can read as 100 pages.
                    try:
                        _check_pages_exist(engine, request, exc.count, deadline)
                    except RenderFailed as damaged:
                        exc = damaged
                failures.append((engine, exc))
                if exc.kind not in _FALLBACK_KINDS:
                    break
    finally:
        _render_slots.release()
    raise _failure(failures, request, timeout_s, name)


def _second_opinion(page: RenderedPage, request: RenderRequest, others: list[str], deadline: float) -> RenderedPage:
    """A page of one colour, rendered again by the other renderer(s): their page if it shows
    something, else the page marked ``blank``. Their failures keep the blank page."""
    for engine in others:
        again = dataclasses.replace(request, pages=[page.page_number], max_pages=None, done=())
        try:
            for other in _ENGINES[engine](again, deadline):
                if not is_uniform(other.image):
                    return other
        except RenderFailed:
            continue
    return dataclasses.replace(page, blank=True)


def _check_pages_exist(engine: str, request: RenderRequest, count: int, deadline: float) -> None:
    """Render the first and last of ``count`` pages, tiny; raise ``corrupt_pdf`` if they do not render."""
    probe = RenderRequest("render", request.path, request.data, sorted({1, count}), _PROBE_DPI, None, _PROBE_PIXELS)
    try:
        for _ in _ENGINES[engine](probe, deadline):
            pass
    except RenderFailed as exc:
        if exc.kind != "corrupt_pdf":
            raise
        raise RenderFailed(
            "corrupt_pdf", f"damaged page tree: it lists {count} pages, but they cannot be rendered"
        ) from None


def _failure(failures: list[tuple[str, RenderFailed]], request: RenderRequest, timeout_s: float, name: str) -> InputError:
    """One error for the whole document: the most specific kind, one cause first."""
    for _, failure in failures:
        if failure.kind == "render_timeout":
            failure.reason = f"rendering took longer than the limit of {timeout_s:g} s"
    # The most specific failure wins: a refusal (password, pages, time) over "cannot read".
    kind = next((f.kind for _, f in reversed(failures) if f.kind not in _FALLBACK_KINDS), failures[0][1].kind)
    if kind == "corrupt_pdf":
        # One message per cause, whichever renderers were tried and however each put it.
        reasons = [f.reason for _, f in failures if f.kind == kind]
        return InputError(f"{name}: {corrupt_cause(reasons, _head(request), _tail(request))}", kind=kind)
    reason = next(f.reason for _, f in failures if f.kind == kind)
    return InputError(f"{name}: {reason}", kind=kind)


def _reset_render_slots_after_fork() -> None:
    # Slots held by the parent's other threads are never released in a forked
    # child, where only the forking thread runs. (pdf_pdfium forgets its workers.)
    global _render_slots
    _render_slots = threading.BoundedSemaphore(MAX_CONCURRENT_RENDERS)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_render_slots_after_fork)
