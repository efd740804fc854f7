"""What :mod:`docextract.preprocess.pdf.api` and both of its renderers share.

The request and failure types, the page selection and the page size checks
live here rather than in :mod:`docextract.preprocess.pdf.api` because the renderers need
them and :mod:`docextract.preprocess.pdf.api` imports the renderers: one module below all
three keeps the imports one-way. The pdfium worker process imports this module
and :mod:`docextract.preprocess.pdf.pdfium` only.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from typing import Literal

from PIL import Image

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = [
    "RENDER_MEMORY_LIMIT_BYTES",
    "RenderedPage",
    "MAX_CONCURRENT_RENDERS",
    "RenderFailed",
    "RenderRequest",
    "NOT_A_PDF",
    "NO_HEADER",
    "PDF_SCAN_BYTES",
    "TRUNCATED",
    "check_page_size",
    "corrupt_cause",
    "holds_pdf",
    "kill_group",
    "limit_resources",
    "page_dpi",
    "select_pages",
]

#: Address-space limit of a rendering process: well above a 50 MP page
#: (150 MB of RGB) plus the renderer's own caches, well below the machine.
RENDER_MEMORY_LIMIT_BYTES = 2 * 1024**3

# The PDF spec's smallest page is 3 x 3 units; anything smaller is a broken page.
MIN_PAGE_POINTS = 3
# Rendering is CPU-bound: more renders at once than cores only adds memory.
MAX_CONCURRENT_RENDERS = max(2, os.cpu_count() or 2)


#: The one message for a file that holds nothing of a PDF, however it was declared.
NOT_A_PDF = "not a PDF: no PDF header and no PDF objects in the file"
#: The one message for a header-less file with PDF objects that no renderer can read.
NO_HEADER = "not a readable PDF: no PDF header, and the PDF objects in it cannot be read"
#: The one message for a PDF that cannot be read and ends before its end-of-file marker.
TRUNCATED = "truncated: the file ends before its end-of-file marker"
#: How much of a file :func:`holds_pdf` scans for PDF objects.
PDF_SCAN_BYTES = 8 * 1024**2

# A header-less PDF still has numbered objects ("12 0 obj") and a catalog or pages (or object
# streams holding them); a file without both is no PDF, whatever it is called.
_PDF_OBJECT = re.compile(rb"\d+\s+\d+\s+obj\b")
_PDF_STRUCTURE = (b"/Page", b"/Catalog", b"/Root", b"/ObjStm")
# A renderer's "cannot parse it" says nothing the cause does not say better.
_GENERIC = "not a PDF or corrupted"


@dataclass(frozen=True)
class RenderedPage:
    """One rendered page.

    Attributes:
        page_number: 1-based number of the page in the document.
        image: The page as an RGB image.
        renderer: ``"pdfium"`` or ``"poppler"``.
    """

    page_number: int
    image: Image.Image
    renderer: str
    #: One uniform colour in every renderer tried (see :func:`~docextract.preprocess.pdf.api.iter_pdf_pages`).
    blank: bool = False


class RenderFailed(Exception):
    """A renderer's failure, before "auto" decides whether to try the other."""

    def __init__(self, kind: str, reason: str, *, count: int | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        #: The page count the renderer read, for ``too_many_pages`` (checked before it is believed).
        self.count = count


@dataclass(frozen=True)
class RenderRequest:
    op: Literal["count", "render"]
    path: str | None
    data: bytes | None
    pages: list[int] | None
    dpi: float
    max_pages: int | None
    max_page_pixels: int | None
    #: Pages another renderer already returned: selected and counted against the limit, not rendered.
    done: tuple[int, ...] = ()


# --- shared checks ----------------------------------------------------------


def holds_pdf(head: bytes) -> bool:
    """Whether a file's first bytes (up to :data:`PDF_SCAN_BYTES`) show a PDF: a ``%PDF-`` header
    in the first KiB (where readers look for it), or numbered objects and a PDF structure."""
    if b"%PDF-" in head[:1024]:
        return True
    scan = head[:PDF_SCAN_BYTES]
    return _PDF_OBJECT.search(scan) is not None and any(token in scan for token in _PDF_STRUCTURE)


def corrupt_cause(reasons: list[str], head: bytes, tail: bytes) -> str:
    """One message for a file every renderer tried found unreadable (``corrupt_pdf``), by cause:
    not a PDF, no header, truncated, a damaged page tree, a damaged page, or else damaged. ``reasons`` are
    the renderers' own (already in words of ours, never their command-line text)."""
    if not holds_pdf(head):
        return NOT_A_PDF
    if b"%PDF-" not in head[:1024]:
        return NO_HEADER
    if b"%%EOF" not in tail:
        return TRUNCATED
    for prefix in ("damaged page tree", "damaged page", "damaged"):
        found = next((r for r in reasons if r.startswith(prefix)), None)
        if found is not None:
            return found
    specific = next((r for r in reasons if r != _GENERIC), reasons[0] if reasons else _GENERIC)
    if specific.startswith(_GENERIC):
        detail = specific[len(_GENERIC) :].strip(" ()")
        return "damaged: cannot be read" + (f" ({detail})" if detail else "")
    return f"damaged: {specific}"


def select_pages(count: int, pages: list[int] | None, max_pages: int | None, done: tuple[int, ...] = ()) -> list[int]:
    """The 1-based pages to render, less those ``done``."""
    selected = _select(count, pages, max_pages)
    return [p for p in selected if p not in done] if done else selected


def _select(count: int, pages: list[int] | None, max_pages: int | None) -> list[int]:
    if pages is None:
        if max_pages is not None and count > max_pages:
            raise RenderFailed(
                "too_many_pages",
                f"has {count} pages, more than the limit of {max_pages}; select at most {max_pages} pages to render",
                count=count,
            )
        return list(range(1, count + 1))
    if not pages:
        raise RenderFailed("invalid_pages", "no pages selected")
    bad = [p for p in pages if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= count]
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        plural = "s" if count != 1 else ""
        raise RenderFailed("invalid_pages", f"page {shown} out of range: the document has {count} page{plural}")
    if max_pages is not None and len(pages) > max_pages:
        raise RenderFailed("too_many_pages", f"{len(pages)} pages selected, more than the limit of {max_pages}")
    return pages


def page_dpi(width_pt: float, height_pt: float, dpi: float, max_page_pixels: int | None) -> float:
    """``dpi``, lowered so that the page fits ``max_page_pixels``."""
    if not (width_pt > 0 and height_pt > 0):  # also catches NaN
        raise RenderFailed("corrupt_pdf", f"damaged page: it has no size ({width_pt:g} x {height_pt:g} pt)")
    pixels = (width_pt * dpi / 72) * (height_pt * dpi / 72)
    if max_page_pixels is None or pixels <= max_page_pixels:
        return dpi
    # A little under the exact factor: renderers round each side up.
    return dpi * math.sqrt(max_page_pixels / pixels) * 0.999


def check_page_size(number: int, size: tuple[int, int], dpi: float) -> None:
    min_px = max(2, int(MIN_PAGE_POINTS * dpi / 72))
    if min(size) < min_px:
        raise RenderFailed(
            "corrupt_pdf", f"damaged page: page {number} rendered as {size[0]}x{size[1]} pixels, not a real page"
        )


# --- rendering processes ----------------------------------------------------


def limit_resources(pid: int = 0, cpu_seconds: float | None = None) -> None:
    """Cap the address space of process ``pid`` (0: this one) and, optionally,
    its CPU time: a backstop that kills a hung poppler even if this process
    dies before it can."""
    if resource is None:
        return
    limits = [(resource.RLIMIT_AS, RENDER_MEMORY_LIMIT_BYTES)]
    if cpu_seconds is not None:
        limits.append((resource.RLIMIT_CPU, math.ceil(cpu_seconds) + 1))
    for which, value in limits:
        if value is None:
            continue
        try:
            if pid:
                resource.prlimit(pid, which, (value, value))
            else:
                resource.setrlimit(which, (value, value))
        except (AttributeError, ValueError, OSError):  # macOS has no prlimit; the child may be gone
            pass


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()
