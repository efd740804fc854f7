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
one of the two. pdfium is the default because it is faster. From
``bench/bench_pdf_render.py`` (20 letter pages, median of 5, 2-core CPU shared
with other jobs; seconds per document, pdfium vs poppler):

    seconds per document        72 dpi          150 dpi
    vector (shapes and text)    0.15 vs 0.29    0.46 vs 0.97
    raster (200-dpi JPEG scans) 0.74 vs 0.99    1.11 vs 1.78

pdfium is 1.3-2.1x faster (``bench/results/pdf_render.json``). Running it in a
worker process costs up to 0.1 s per 20 vector pages over calling pypdfium2
in-process, and nothing on raster pages (the caller copies one page while the
worker renders the next): a small price for the limits above.

Linux and macOS only (pipes, ``select`` and ``resource``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from docextract.errors import InputError

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_MAX_PAGE_PIXELS",
    "PdfSource",
    "RENDER_MEMORY_LIMIT_BYTES",
    "RenderedPage",
    "Renderer",
    "count_pdf_pages",
    "render_pdf_pages",
]

Renderer = Literal["auto", "pdfium", "poppler"]
PdfSource = str | os.PathLike | bytes

#: Address-space limit of a rendering process: well above a 50 MP page
#: (150 MB of RGB) plus the renderer's own caches, well below the machine.
RENDER_MEMORY_LIMIT_BYTES = 2 * 1024**3
#: Pages that would render larger than this are rendered at a lower dpi.
DEFAULT_MAX_PAGE_PIXELS = 50_000_000

# The PDF spec's smallest page is 3 x 3 units; anything smaller is a broken page.
_MIN_PAGE_POINTS = 3
_STDERR_HEAD = 32 * 1024
_STDERR_TAIL = 4 * 1024
_WORKER_START_TIMEOUT_S = 30.0
# Recycling bounds whatever pdfium leaks across documents.
_WORKER_MAX_REQUESTS = 500
# Rendering is CPU-bound: more renders at once than cores only adds memory.
_MAX_CONCURRENT_RENDERS = max(2, os.cpu_count() or 2)
_render_slots = threading.BoundedSemaphore(_MAX_CONCURRENT_RENDERS)
# Kinds after which "auto" tries the other renderer: the file's fault, not the request's.
_FALLBACK_KINDS = frozenset({"corrupt_pdf", "no_pages", "renderer_unavailable"})

# pdfium's FPDF_ERR_* load error codes.
_PDFIUM_LOAD_ERRORS = {
    1: ("corrupt_pdf", "unknown pdfium error"),
    2: ("corrupt_pdf", "file not found or could not be opened"),
    3: ("corrupt_pdf", "not a PDF or corrupted"),
    4: ("encrypted_pdf", "encrypted: a password is needed to open it"),
    5: ("encrypted_pdf", "encrypted with an unsupported security scheme"),
    6: ("corrupt_pdf", "page not found or content error"),
}


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


class _RenderFailed(Exception):
    """A renderer's failure, before "auto" decides whether to try the other."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class _Request:
    op: Literal["count", "render"]
    path: str | None
    data: bytes | None
    pages: list[int] | None
    dpi: float
    max_pages: int | None
    max_page_pixels: int | None


# --- public API -------------------------------------------------------------


def render_pdf_pages(
    source: PdfSource,
    *,
    dpi: int = 150,
    pages: Sequence[int] | None = None,
    max_pages: int | None = 50,
    renderer: Renderer = "auto",
    timeout_s: float = 60,
    max_page_pixels: int | None = DEFAULT_MAX_PAGE_PIXELS,
    name: str | None = None,
) -> list[RenderedPage]:
    """Render the pages of a PDF to RGB images.

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
            poppler if pdfium cannot read the file).
        timeout_s: Wall-clock limit for the whole document, both renderers
            included; starting the pdfium worker process is not counted.
        max_page_pixels: Pages larger than this at ``dpi`` render at a lower dpi.
        name: How the document is named in error messages.

    Returns:
        The rendered pages.

    Raises:
        InputError: ``empty_file``, ``not_found``, ``corrupt_pdf``,
            ``no_pages``, ``encrypted_pdf``, ``invalid_pages``,
            ``too_many_pages``, ``render_timeout`` or ``renderer_unavailable``.
    """
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    name, path, data = _resolve_source(source, name)
    request = _Request(
        "render", path, data, sorted(set(pages)) if pages is not None else None, float(dpi), max_pages, max_page_pixels
    )
    result = _run_with_fallback(request, renderer, timeout_s, name)
    assert isinstance(result, list)
    return result


def count_pdf_pages(
    source: PdfSource,
    *,
    renderer: Renderer = "auto",
    timeout_s: float = 30,
    name: str | None = None,
) -> int:
    """Count the pages of a PDF.

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
    name, path, data = _resolve_source(source, name)
    request = _Request("count", path, data, None, 72.0, None, None)
    result = _run_with_fallback(request, renderer, timeout_s, name)
    assert isinstance(result, int)
    return result


# --- shared checks ----------------------------------------------------------


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


def _select_pages(count: int, pages: list[int] | None, max_pages: int | None) -> list[int]:
    """The 1-based pages to render."""
    if pages is None:
        if max_pages is not None and count > max_pages:
            raise _RenderFailed(
                "too_many_pages",
                f"has {count} pages, more than the limit of {max_pages}; select at most {max_pages} pages to render",
            )
        return list(range(1, count + 1))
    if not pages:
        raise _RenderFailed("invalid_pages", "no pages selected")
    bad = [p for p in pages if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= count]
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        plural = "s" if count != 1 else ""
        raise _RenderFailed("invalid_pages", f"page {shown} out of range: the document has {count} page{plural}")
    if max_pages is not None and len(pages) > max_pages:
        raise _RenderFailed("too_many_pages", f"{len(pages)} pages selected, more than the limit of {max_pages}")
    return pages


def _page_dpi(width_pt: float, height_pt: float, dpi: float, max_page_pixels: int | None) -> float:
    """``dpi``, lowered so that the page fits ``max_page_pixels``."""
    if not (width_pt > 0 and height_pt > 0):  # also catches NaN
        raise _RenderFailed("corrupt_pdf", f"page has no size ({width_pt} x {height_pt} pt)")
    pixels = (width_pt * dpi / 72) * (height_pt * dpi / 72)
    if max_page_pixels is None or pixels <= max_page_pixels:
        return dpi
    # A little under the exact factor: renderers round each side up.
    return dpi * math.sqrt(max_page_pixels / pixels) * 0.999


def _check_page_size(number: int, size: tuple[int, int], dpi: float) -> None:
    min_px = max(2, int(_MIN_PAGE_POINTS * dpi / 72))
    if min(size) < min_px:
        raise _RenderFailed("corrupt_pdf", f"page {number} rendered as {size[0]}x{size[1]} pixels: not a real page")


# --- orchestration ----------------------------------------------------------


def _run_with_fallback(request: _Request, renderer: Renderer, timeout_s: float, name: str) -> list[RenderedPage] | int:
    order = {"auto": ("pdfium", "poppler"), "pdfium": ("pdfium",), "poppler": ("poppler",)}.get(renderer)
    if order is None:
        raise ValueError(f"renderer must be 'auto', 'pdfium' or 'poppler', got {renderer!r}")
    deadline = time.monotonic() + timeout_s
    # Waiting for a free slot counts against the document's time limit.
    if not _render_slots.acquire(timeout=timeout_s):
        raise InputError(
            f"{name}: no renderer became free within {timeout_s:g} s "
            f"({_MAX_CONCURRENT_RENDERS} documents are being rendered)",
            kind="render_timeout",
            http_status=503,
        )
    failures: list[tuple[str, _RenderFailed]] = []
    try:
        for engine in order:
            try:
                return _ENGINES[engine](request, deadline)
            except _RenderFailed as exc:
                failures.append((engine, exc))
                if exc.kind not in _FALLBACK_KINDS:
                    break
    finally:
        _render_slots.release()
    for _, failure in failures:
        if failure.kind == "render_timeout":
            failure.reason = f"rendering took longer than the limit of {timeout_s:g} s"
    # The most specific failure wins: a refusal (password, pages, time) over "cannot read".
    kind = next((f.kind for _, f in reversed(failures) if f.kind not in _FALLBACK_KINDS), failures[0][1].kind)
    if len(failures) == 1:
        message = f"{name}: {failures[0][1].reason}"
    else:
        message = f"{name}: cannot render: " + "; ".join(f"{e}: {f.reason}" for e, f in failures)
    http_status = 503 if kind == "renderer_unavailable" else None
    raise InputError(message, kind=kind, http_status=http_status)


def _render_pdfium(request: _Request, deadline: float) -> list[RenderedPage] | int:
    started = time.monotonic()
    worker = _checkout_worker()
    # Starting a worker is this process's overhead, not the document's time.
    deadline += time.monotonic() - started
    try:
        return _pdfium_exchange(worker, request, deadline)
    finally:
        _checkin_worker(worker)


def _pdfium_exchange(worker: _PdfiumWorker, request: _Request, deadline: float) -> list[RenderedPage] | int:
    header = {
        "op": request.op,
        "path": request.path,
        "pages": request.pages,
        "dpi": request.dpi,
        "max_pages": request.max_pages,
        "max_page_pixels": request.max_page_pixels,
    }
    # Until the worker's last reply for this request is read, the pipe is
    # mid-conversation: whatever ends the exchange early must kill the worker.
    in_sync = False
    try:
        worker.send(header, request.data or b"")
        rendered: list[RenderedPage] = []
        while True:
            reply, payload = worker.receive(deadline)
            if reply["type"] == "count" and request.op == "count":
                in_sync = True
                return int(reply["count"])
            if reply["type"] == "page":
                size = (int(reply["width"]), int(reply["height"]))
                _check_page_size(int(reply["number"]), size, float(reply["dpi"]))
                image = Image.frombytes("RGB", size, payload, "raw", "RGB", int(reply["stride"]))
                rendered.append(RenderedPage(int(reply["number"]), image, "pdfium"))
            elif reply["type"] == "done":
                in_sync = True
                return rendered
            elif reply["type"] == "error":
                in_sync = True
                raise _RenderFailed(reply["kind"], reply["message"])
    except TimeoutError:
        raise _RenderFailed("render_timeout", "rendering took longer than the time limit") from None
    except (EOFError, OSError, ValueError) as exc:
        # The worker died mid-document: a crash in pdfium or the memory limit.
        raise _RenderFailed("corrupt_pdf", f"pdfium crashed on this file ({type(exc).__name__})") from None
    finally:
        if not in_sync:
            worker.kill()


def _render_poppler(request: _Request, deadline: float) -> list[RenderedPage] | int:
    if shutil.which("pdftoppm") is None or shutil.which("pdfinfo") is None:
        raise _RenderFailed("renderer_unavailable", "poppler is not installed (pdftoppm and pdfinfo not found)")
    with tempfile.TemporaryDirectory(prefix="docextract-pdf-") as tmp:
        path = request.path
        if path is None:
            path = os.path.join(tmp, "input.pdf")
            with open(path, "wb") as f:
                f.write(request.data or b"")
        if request.op == "count":
            last = 1
        elif request.pages:
            last = max(request.pages)
        else:
            last = request.max_pages + 1 if request.max_pages is not None else 1_000_000
        # -l bounds the per-page size lines pdfinfo prints for a long document.
        rc, out, err = _run_bounded(["pdfinfo", "-f", "1", "-l", str(last), path], deadline)
        if rc != 0:
            raise _poppler_failure(rc, err)
        info = out.decode("utf-8", "replace")
        match = re.search(r"^Pages:\s+(\d+)", info, re.M)
        count = int(match.group(1)) if match else 0
        if count < 1:
            raise _RenderFailed("no_pages", "the document has no pages")
        if request.op == "count":
            return count
        selected = _select_pages(count, request.pages, request.max_pages)
        sizes = {
            int(n): (float(w), float(h))
            for n, w, h in re.findall(r"^Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+)", info, re.M)
        }
        rendered = []
        for first, last, dpi in _poppler_runs(selected, sizes, request):
            rendered += _pdftoppm(path, first, last, dpi, tmp, deadline)
        return rendered


def _poppler_runs(
    selected: list[int], sizes: dict[int, tuple[float, float]], request: _Request
) -> Iterator[tuple[int, int, float]]:
    """Consecutive pages with the same dpi, one pdftoppm call each."""
    run: list[Any] = []
    for number in selected:
        w, h = sizes.get(number, (612.0, 792.0))
        dpi = _page_dpi(w, h, request.dpi, request.max_page_pixels)
        if run and number == run[1] + 1 and dpi == run[2]:
            run[1] = number
        else:
            if run:
                yield tuple(run)  # type: ignore[misc]
            run = [number, number, dpi]
    if run:
        yield tuple(run)  # type: ignore[misc]


def _pdftoppm(path: str, first: int, last: int, dpi: float, tmp: str, deadline: float) -> list[RenderedPage]:
    root = os.path.join(tmp, f"p{first}")
    args = ["pdftoppm", "-r", f"{dpi:g}", "-cropbox", "-f", str(first), "-l", str(last), path, root]
    rc, _, err = _run_bounded(args, deadline)
    if rc != 0:
        raise _poppler_failure(rc, err)
    files = {int(m.group(1)): f for f in os.listdir(tmp) if (m := re.fullmatch(rf"p{first}-0*(\d+)\.ppm", f))}
    pages = []
    for number in range(first, last + 1):
        if number not in files:
            raise _RenderFailed("corrupt_pdf", f"page {number} could not be rendered")
        file = os.path.join(tmp, files[number])
        with Image.open(file, formats=["PPM"]) as img:
            img.load()
            image = img.convert("RGB") if img.mode != "RGB" else img.copy()
        os.unlink(file)  # keeps the temp dir at one page at a time
        _check_page_size(number, image.size, dpi)
        pages.append(RenderedPage(number, image, "poppler"))
    return pages


def _poppler_failure(rc: int, stderr: bytes) -> _RenderFailed:
    """Map a poppler exit to a failure. Exit codes do not separate a wrong
    password from a broken file (both 1), so the message has to."""
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    if any("Incorrect password" in line for line in lines):
        return _RenderFailed("encrypted_pdf", "encrypted: a password is needed to open it")
    if any("Invalid page count 0" in line for line in lines):
        return _RenderFailed("no_pages", "the document has no pages")
    if rc == 3:
        return _RenderFailed("encrypted_pdf", "encrypted: permissions forbid rendering it")
    detail = lines[-1] if lines else f"exit status {rc}"
    return _RenderFailed("corrupt_pdf", f"not a PDF or corrupted ({detail[:200]})")


def _limit_resources(pid: int = 0, cpu_seconds: float | None = None) -> None:
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


def _run_bounded(args: list[str], deadline: float) -> tuple[int, bytes, bytes]:
    """Run a command under the deadline and the memory limit, keeping at most
    1 MiB of stdout and the head and tail of stderr.

    Raises:
        _RenderFailed: ``render_timeout`` when the deadline passes (the process
            group is killed).
    """
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    # prlimit from outside: a preexec_fn would not be safe in a threaded server.
    _limit_resources(proc.pid, cpu_seconds=deadline - time.monotonic())
    out, err_head, err_tail = bytearray(), bytearray(), b""
    streams = {proc.stdout.fileno(): "out", proc.stderr.fileno(): "err"}  # type: ignore[union-attr]
    try:
        while streams:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select(list(streams), [], [], remaining)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    del streams[fd]
                elif streams[fd] == "out":
                    out += chunk[: max(0, 1024**2 - len(out))]
                else:
                    err_head += chunk[: max(0, _STDERR_HEAD - len(err_head))]
                    err_tail = (err_tail + chunk)[-_STDERR_TAIL:]
        rc = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except (TimeoutError, subprocess.TimeoutExpired):
        _kill_group(proc)
        raise _RenderFailed("render_timeout", "rendering took longer than the time limit") from None
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    err = bytes(err_head) if len(err_head) < _STDERR_HEAD else bytes(err_head) + b"\n...\n" + err_tail
    return rc, bytes(out), err


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()


_ENGINES = {"pdfium": _render_pdfium, "poppler": _render_poppler}


# --- the pdfium worker process ----------------------------------------------
# Frames on the pipes: struct ">IQ" (header length, payload length), a JSON
# header, then the payload (the PDF's bytes, or one page's pixels).

_FRAME = struct.Struct(">IQ")


def _read_exact(fd: int, n: int, deadline: float | None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        read = os.readv(fd, [view[got:]])
        if not read:
            raise EOFError
        got += read
    return buf


def _write_frame(fd: int, header: dict[str, Any], payload: Any = b"") -> None:
    """Write one frame; ``payload`` is any buffer (a page's pixels are sent
    from pdfium's bitmap without a copy)."""
    head = json.dumps(header).encode()
    body = memoryview(payload).cast("B")
    for part in (memoryview(_FRAME.pack(len(head), len(body)) + head), body):
        while part:
            part = part[os.write(fd, part) :]


def _read_frame(fd: int, deadline: float | None) -> tuple[dict[str, Any], bytearray]:
    head_len, payload_len = _FRAME.unpack(_read_exact(fd, _FRAME.size, deadline))
    header = json.loads(_read_exact(fd, head_len, deadline))
    return header, _read_exact(fd, payload_len, deadline)


def _widen_pipe(fd: int) -> None:
    # A page is megabytes; Linux's default 64 KiB pipe makes that hundreds of
    # wake-ups. 1 MiB is the most an unprivileged process may ask for.
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


class _PdfiumWorker:
    """One pdfium process, started with ``python -c`` rather than
    multiprocessing, so a caller's ``__main__`` is never re-imported."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from docextract.pdf import _pdfium_worker_main; _pdfium_worker_main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise _RenderFailed("renderer_unavailable", f"cannot start the pdfium worker ({exc})") from None
        self.requests = 0
        _widen_pipe(self.proc.stdout.fileno())  # type: ignore[union-attr]
        try:
            header, _ = _read_frame(self.proc.stdout.fileno(), time.monotonic() + _WORKER_START_TIMEOUT_S)  # type: ignore[union-attr]
        except (TimeoutError, EOFError, OSError, ValueError):
            self.kill()
            raise _RenderFailed("renderer_unavailable", "the pdfium worker process did not start") from None
        if header.get("type") != "ready":
            self.kill()
            raise _RenderFailed(
                "renderer_unavailable", f"the pdfium worker cannot run: {header.get('message', header)}"
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, header: dict[str, Any], payload: bytes) -> None:
        self.requests += 1
        _write_frame(self.proc.stdin.fileno(), header, payload)  # type: ignore[union-attr]

    def receive(self, deadline: float) -> tuple[dict[str, Any], bytearray]:
        return _read_frame(self.proc.stdout.fileno(), deadline)  # type: ignore[union-attr]

    def kill(self) -> None:
        if self.alive():
            _kill_group(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]

    def close(self) -> None:
        # EOF on stdin makes the worker exit on its own.
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


_idle_workers: list[_PdfiumWorker] = []
_idle_lock = threading.Lock()


def _checkout_worker() -> _PdfiumWorker:
    with _idle_lock:
        while _idle_workers:
            worker = _idle_workers.pop()
            if worker.alive():
                return worker
    return _PdfiumWorker()


def _checkin_worker(worker: _PdfiumWorker) -> None:
    if worker.alive() and worker.requests < _WORKER_MAX_REQUESTS:
        with _idle_lock:
            if len(_idle_workers) < _MAX_CONCURRENT_RENDERS:
                _idle_workers.append(worker)
                return
    worker.close()


def _forget_workers_after_fork() -> None:
    # A forked child shares its parent's pipes to the workers; using them, or
    # killing the workers at exit, would break the parent. It starts its own.
    global _idle_lock, _render_slots
    _idle_workers.clear()
    _idle_lock = threading.Lock()
    _render_slots = threading.BoundedSemaphore(_MAX_CONCURRENT_RENDERS)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


@atexit.register
def _close_idle_workers() -> None:
    with _idle_lock:
        workers, _idle_workers[:] = list(_idle_workers), []
    for worker in workers:
        worker.close()


def _pdfium_worker_main() -> None:
    """Entry point of the worker process: serve requests until stdin closes."""
    # Replies go to a private copy of stdout; fd 1 itself goes to /dev/null so
    # that nothing pdfium or Python prints can corrupt a frame.
    reply_fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    _limit_resources()
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        import pypdfium2 as pdfium
        import pypdfium2.raw as pdfium_c
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        _write_frame(reply_fd, {"type": "error", "message": f"cannot import pypdfium2: {exc}"})
        return
    _write_frame(reply_fd, {"type": "ready"})
    while True:
        try:
            header, payload = _read_frame(0, None)
        except (EOFError, OSError):
            return
        try:
            for reply, pixels in _pdfium_job(pdfium, pdfium_c, header, payload):
                _write_frame(reply_fd, reply, pixels)
        except _RenderFailed as exc:
            _write_frame(reply_fd, {"type": "error", "kind": exc.kind, "message": exc.reason})
        except MemoryError:
            _write_frame(reply_fd, {"type": "error", "kind": "corrupt_pdf", "message": "rendering ran out of memory"})
        except Exception as exc:  # noqa: BLE001 - any pdfium failure is this file's fault
            _write_frame(reply_fd, {"type": "error", "kind": "corrupt_pdf", "message": f"pdfium failed: {exc}"})


def _exit_when_orphaned(parent_pid: int) -> None:
    # The parent kills a worker that overruns, unless the parent itself died
    # (SIGKILL, OOM killer): then nobody would stop a hung render. pdfium
    # calls release the GIL, so this thread runs even during one.
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _pdfium_job(
    pdfium: Any, pdfium_c: Any, req: dict[str, Any], data: bytearray
) -> Iterator[tuple[dict[str, Any], Any]]:
    if req["path"] is not None:
        raw = pdfium_c.FPDF_LoadDocument(os.fsencode(req["path"]) + b"\0", None)
    else:
        pdf_bytes = bytes(data)  # ctypes wants bytes; must outlive the document, as it does
        raw = pdfium_c.FPDF_LoadMemDocument64(pdf_bytes, len(pdf_bytes), None)
    if not raw:
        # Only after a failed load does FPDF_GetLastError describe this document.
        kind, reason = _PDFIUM_LOAD_ERRORS.get(pdfium_c.FPDF_GetLastError(), ("corrupt_pdf", "cannot be opened"))
        raise _RenderFailed(kind, reason)
    doc = pdfium.PdfDocument(raw)
    try:
        count = len(doc)
        if count < 1:
            raise _RenderFailed("no_pages", "the document has no pages")
        yield {"type": "count", "count": count}, b""
        if req["op"] == "count":
            return
        for number in _select_pages(count, req["pages"], req["max_pages"]):
            page = doc[number - 1]
            try:
                width_pt, height_pt = page.get_size()
                dpi = _page_dpi(width_pt, height_pt, req["dpi"], req["max_page_pixels"])
                # pypdfium2 rounds each side up, and 792 * (150 / 72) is 1650.0000000000002:
                # nudge the scale down so exact sizes stay exact, as with poppler.
                bitmap = page.render(scale=dpi / 72 * (1 - 1e-9), rev_byteorder=True, may_draw_forms=False)
                if bitmap.mode != "RGB":
                    raise _RenderFailed("corrupt_pdf", f"page {number} rendered as {bitmap.mode}, not RGB")
                _check_page_size(number, (bitmap.width, bitmap.height), dpi)
                reply = {
                    "type": "page",
                    "number": number,
                    "width": bitmap.width,
                    "height": bitmap.height,
                    "stride": bitmap.stride,
                    "dpi": dpi,
                }
                yield reply, bitmap.buffer
                bitmap.close()
            finally:
                page.close()
        yield {"type": "done"}, b""
    finally:
        doc.close()
