"""Render PDF pages with pypdfium2 in reused worker processes.

pdfium runs out of process so that a hostile or broken file can hang or crash
it, or hit the address-space limit, without taking the caller along: the worker
is killed when the document's deadline passes and is replaced when it dies.
Caller and worker speak length-prefixed JSON + raw pixels over pipes (no
pickle, so a renderer compromised by a hostile file cannot run code in the
caller). The worker never initialises pdfium's form support, which can hang,
and maps pdfium's load errors by code, never by message: a zero-page document
reports "PDFium: Success", and the code is stale unless the load failed.

The worker process imports this module and :mod:`docextract.preprocess.pdf.common` only
(see :class:`_PdfiumWorker`); keep the entry point's module path in step with
where :func:`pdfium_worker_main` lives.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from docextract.preprocess.pdf.common import (
    MAX_CONCURRENT_RENDERS,
    RenderedPage,
    RenderFailed,
    RenderRequest,
    check_page_size,
    kill_group,
    limit_resources,
    page_dpi,
    select_pages,
)

__all__ = ["pdfium_worker_main", "render_pdfium"]

_WORKER_START_TIMEOUT_S = 30.0
# pdfium opens a real PDF, even one whose cross-reference table it must rebuild, in well under
# a second; garbage that only looks like one (tens of MB of stray "obj ... stream") keeps it
# scanning for many seconds. Past this it is given up as damaged (poppler is tried next under
# "auto"), so a file that is no PDF fails in seconds, not at the document's time limit.
OPEN_LIMIT_S = 2.0
# Recycling bounds whatever pdfium leaks across documents.
_WORKER_MAX_REQUESTS = 500

# pdfium's FPDF_ERR_* load error codes.
_PDFIUM_LOAD_ERRORS = {
    1: ("corrupt_pdf", "unknown pdfium error"),
    2: ("corrupt_pdf", "file not found or could not be opened"),
    3: ("corrupt_pdf", "not a PDF or corrupted"),
    4: ("encrypted_pdf", "encrypted: a password is needed to open it"),
    5: ("encrypted_pdf", "encrypted with an unsupported security scheme"),
    6: ("corrupt_pdf", "page not found or content error"),
}


def render_pdfium(request: RenderRequest, deadline: float) -> Iterator[RenderedPage] | int:
    """The page count (``op == "count"``), or the pages as they arrive from the worker: the
    caller holds one page while the worker renders the next, never the whole document."""
    if request.op == "count":
        session = _pdfium_session(request, deadline)
        try:
            count = next(session)
        finally:
            session.close()  # returns the worker now, not when the generator is collected
        assert isinstance(count, int)
        return count
    return _pdfium_session(request, deadline)  # type: ignore[return-value]


def _pdfium_session(request: RenderRequest, deadline: float) -> Iterator[RenderedPage | int]:
    started = time.monotonic()
    worker = _checkout_worker()
    # Starting a worker is this process's overhead, not the document's time.
    deadline += time.monotonic() - started
    try:
        yield from _pdfium_exchange(worker, request, deadline)
    finally:
        _checkin_worker(worker)


def _pdfium_exchange(worker: _PdfiumWorker, request: RenderRequest, deadline: float) -> Iterator[RenderedPage | int]:
    header = {
        "op": request.op,
        "path": request.path,
        "pages": request.pages,
        "done": list(request.done),
        "dpi": request.dpi,
        "max_pages": request.max_pages,
        "max_page_pixels": request.max_page_pixels,
    }
    # Until the worker's last reply for this request is read, the pipe is
    # mid-conversation: whatever ends the exchange early (an error, or a caller that
    # stops reading pages) must kill the worker.
    in_sync = opened = False
    try:
        worker.send(header, request.data or b"")
        open_by = min(deadline, time.monotonic() + OPEN_LIMIT_S)
        while True:
            reply, payload = worker.receive(deadline if opened else open_by)
            opened = True
            if reply["type"] == "count" and request.op == "count":
                in_sync = True
                yield int(reply["count"])
                return
            if reply["type"] == "page":
                size = (int(reply["width"]), int(reply["height"]))
                check_page_size(int(reply["number"]), size, float(reply["dpi"]))
                image = Image.frombytes("RGB", size, payload, "raw", "RGB", int(reply["stride"]))
                del payload
                page = RenderedPage(int(reply["number"]), image, "pdfium")
                del image
                yield page
                # The caller is done with this page: hold no reference while the next arrives.
                del page
            elif reply["type"] == "done":
                in_sync = True
                return
            elif reply["type"] == "error":
                in_sync = True
                raise RenderFailed(reply["kind"], reply["message"], count=reply.get("count"))
    except TimeoutError:
        if not opened and time.monotonic() < deadline:
            raise RenderFailed("corrupt_pdf", f"damaged: pdfium could not open it within {OPEN_LIMIT_S:g} s") from None
        raise RenderFailed("render_timeout", "rendering took longer than the time limit") from None
    except (EOFError, OSError, ValueError) as exc:
        # The worker died mid-document: a crash in pdfium or the memory limit.
        raise RenderFailed("corrupt_pdf", f"pdfium crashed on this file ({type(exc).__name__})") from None
    finally:
        if not in_sync:
            worker.kill()


# --- the worker process and its pipes ---------------------------------------
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
        # The directory that holds the docextract package (this file is docextract/preprocess/pdf/pdfium.py),
        # so the worker imports this copy even where docextract is not installed.
        package_root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from docextract.preprocess.pdf.pdfium import pdfium_worker_main; pdfium_worker_main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise RenderFailed("renderer_unavailable", f"cannot start the pdfium worker ({exc})") from None
        self.requests = 0
        _widen_pipe(self.proc.stdout.fileno())  # type: ignore[union-attr]
        try:
            header, _ = _read_frame(self.proc.stdout.fileno(), time.monotonic() + _WORKER_START_TIMEOUT_S)  # type: ignore[union-attr]
        except (TimeoutError, EOFError, OSError, ValueError):
            self.kill()
            raise RenderFailed("renderer_unavailable", "the pdfium worker process did not start") from None
        if header.get("type") != "ready":
            self.kill()
            raise RenderFailed(
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
            kill_group(self.proc)
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
            if len(_idle_workers) < MAX_CONCURRENT_RENDERS:
                _idle_workers.append(worker)
                return
    worker.close()


def _forget_workers_after_fork() -> None:
    # A forked child shares its parent's pipes to the workers; using them, or
    # killing the workers at exit, would break the parent. It starts its own.
    global _idle_lock
    _idle_workers.clear()
    _idle_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


@atexit.register
def _close_idle_workers() -> None:
    with _idle_lock:
        workers, _idle_workers[:] = list(_idle_workers), []
    for worker in workers:
        worker.close()


def pdfium_worker_main() -> None:
    """Entry point of the worker process: serve requests until stdin closes."""
    # Replies go to a private copy of stdout; fd 1 itself goes to /dev/null so
    # that nothing pdfium or Python prints can corrupt a frame.
    reply_fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    limit_resources()
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
        except RenderFailed as exc:
            _write_frame(reply_fd, {"type": "error", "kind": exc.kind, "message": exc.reason, "count": exc.count})
        except MemoryError:
            _write_frame(reply_fd, {"type": "error", "kind": "corrupt_pdf", "message": "rendering ran out of memory"})
        except Exception as exc:  # noqa: BLE001 - any pdfium failure is this file's fault
            # pdfium's own words ("Failed to load page") name no cause a user can act on.
            message = f"not a PDF or corrupted ({type(exc).__name__})"
            _write_frame(reply_fd, {"type": "error", "kind": "corrupt_pdf", "message": message})


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
        raise RenderFailed(kind, reason)
    doc = pdfium.PdfDocument(raw)
    try:
        count = len(doc)
        if count < 1:
            raise RenderFailed("no_pages", "the document has no pages")
        yield {"type": "count", "count": count}, b""
        if req["op"] == "count":
            return
        for number in select_pages(count, req["pages"], req["max_pages"], tuple(req.get("done") or ())):
            try:
                page = doc[number - 1]
            except pdfium.PdfiumError:
                # A page tree that loops or points nowhere: counted pages that cannot be found.
                raise RenderFailed(
                    "corrupt_pdf", f"damaged page tree: page {number} of the {count} it lists cannot be found"
                ) from None
            try:
                width_pt, height_pt = page.get_size()
                dpi = page_dpi(width_pt, height_pt, req["dpi"], req["max_page_pixels"])
                # pypdfium2 rounds each side up, and 792 * (150 / 72) is 1650.0000000000002:
                # nudge the scale down so exact sizes stay exact, as with poppler.
                bitmap = page.render(scale=dpi / 72 * (1 - 1e-9), rev_byteorder=True, may_draw_forms=False)
                if bitmap.mode != "RGB":
                    raise RenderFailed("corrupt_pdf", f"page {number} rendered as {bitmap.mode}, not RGB")
                check_page_size(number, (bitmap.width, bitmap.height), dpi)
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
