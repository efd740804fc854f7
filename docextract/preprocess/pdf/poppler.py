"""Render PDF pages with poppler: ``pdftoppm`` and ``pdfinfo`` as bounded subprocesses.

poppler runs directly rather than through pdf2image, which keeps all of
poppler's stderr in memory (more than a GB for some files). Each command runs
in its own process group under the document's deadline and the address-space
limit, and keeps at most 1 MiB of stdout and 36 KiB of stderr (head and tail).
Pages render from the CropBox (``-cropbox``; poppler defaults to the MediaBox),
and consecutive pages at the same dpi share one ``pdftoppm`` call.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from PIL import Image

from docextract.preprocess.pdf.common import (
    RenderedPage,
    RenderFailed,
    RenderRequest,
    check_page_size,
    kill_group,
    limit_resources,
    page_dpi,
    select_pages,
)

__all__ = ["render_poppler", "_run_bounded"]

_STDERR_HEAD = 32 * 1024
_STDERR_TAIL = 4 * 1024


def render_poppler(request: RenderRequest, deadline: float) -> Iterator[RenderedPage] | int:
    """The page count (``op == "count"``), or the pages one at a time (pdftoppm writes a run of
    pages to a temporary folder; each is read, deleted and handed over before the next is read)."""
    if shutil.which("pdftoppm") is None or shutil.which("pdfinfo") is None:
        raise RenderFailed("renderer_unavailable", "poppler is not installed (pdftoppm and pdfinfo not found)")
    if request.op == "count":
        with tempfile.TemporaryDirectory(prefix="docextract-pdf-") as tmp:
            count, _ = _pdfinfo(request, _input_path(request, tmp), deadline)
            return count
    return _poppler_pages(request, deadline)


def _input_path(request: RenderRequest, tmp: str) -> str:
    if request.path is not None:
        return request.path
    path = os.path.join(tmp, "input.pdf")
    with open(path, "wb") as f:
        f.write(request.data or b"")
    return path


def _pdfinfo(request: RenderRequest, path: str, deadline: float) -> tuple[int, str]:
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
        raise RenderFailed("no_pages", "the document has no pages")
    return count, info


def _poppler_pages(request: RenderRequest, deadline: float) -> Iterator[RenderedPage]:
    with tempfile.TemporaryDirectory(prefix="docextract-pdf-") as tmp:
        path = _input_path(request, tmp)
        count, info = _pdfinfo(request, path, deadline)
        selected = select_pages(count, request.pages, request.max_pages, request.done)
        sizes = {
            int(n): (float(w), float(h))
            for n, w, h in re.findall(r"^Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+)", info, re.M)
        }
        for first, last, dpi in _poppler_runs(selected, sizes, request, count):
            yield from _pdftoppm(path, first, last, dpi, tmp, deadline)


def _poppler_runs(
    selected: list[int], sizes: dict[int, tuple[float, float]], request: RenderRequest, count: int
) -> Iterator[tuple[int, int, float]]:
    """Consecutive pages with the same dpi, one pdftoppm call each."""
    run: list[Any] = []
    for number in selected:
        w, h = sizes.get(number, (612.0, 792.0))
        if not (w > 0 and h > 0):
            # pdfinfo's size of a page its page tree lists but cannot find (a loop, a dead link).
            raise RenderFailed(
                "corrupt_pdf", f"damaged page tree: page {number} of the {count} it lists cannot be found"
            )
        dpi = page_dpi(w, h, request.dpi, request.max_page_pixels)
        if run and number == run[1] + 1 and dpi == run[2]:
            run[1] = number
        else:
            if run:
                yield tuple(run)  # type: ignore[misc]
            run = [number, number, dpi]
    if run:
        yield tuple(run)  # type: ignore[misc]


def _pdftoppm(path: str, first: int, last: int, dpi: float, tmp: str, deadline: float) -> Iterator[RenderedPage]:
    root = os.path.join(tmp, f"p{first}")
    args = ["pdftoppm", "-r", f"{dpi:g}", "-cropbox", "-f", str(first), "-l", str(last), path, root]
    rc, _, err = _run_bounded(args, deadline)
    if rc != 0:
        raise _poppler_failure(rc, err)
    files = {int(m.group(1)): f for f in os.listdir(tmp) if (m := re.fullmatch(rf"p{first}-0*(\d+)\.ppm", f))}
    for number in range(first, last + 1):
        if number not in files:
            raise RenderFailed("corrupt_pdf", f"damaged page tree: page {number} could not be rendered")
        file = os.path.join(tmp, files.pop(number))
        with Image.open(file, formats=["PPM"]) as img:
            img.load()
            image = img.convert("RGB") if img.mode != "RGB" else img.copy()
        os.unlink(file)
        check_page_size(number, image.size, dpi)
        page = RenderedPage(number, image, "poppler")
        del image
        yield page
        del page  # hold no full-size page while the next is read


#: poppler's stderr lines -> the cause they mean, in words a user can act on. Its own lines
#: ("Command Line Error: Wrong page range given...") describe its command line, not the file.
_POPPLER_CAUSES = (
    ("Incorrect password", "encrypted_pdf", "encrypted: a password is needed to open it"),
    ("Invalid page count 0", "no_pages", "the document has no pages"),
    ("Wrong page range", "corrupt_pdf", "damaged page tree: the pages it lists cannot be found"),
    ("Couldn't find trailer", "corrupt_pdf", "not a PDF or corrupted (no trailer)"),
    ("Couldn't read xref", "corrupt_pdf", "not a PDF or corrupted (unreadable cross-reference table)"),
    ("May not be a PDF", "corrupt_pdf", "not a PDF (no PDF header)"),
)


def _poppler_failure(rc: int, stderr: bytes) -> RenderFailed:
    """Map a poppler exit to a failure. Exit codes do not separate a wrong
    password from a broken file (both 1), so the message has to; the message
    never quotes poppler's own text."""
    text = stderr.decode("utf-8", "replace")
    for needle, kind, reason in _POPPLER_CAUSES:
        if needle in text:
            return RenderFailed(kind, reason)
    if rc == 3:
        return RenderFailed("encrypted_pdf", "encrypted: permissions forbid rendering it")
    return RenderFailed("corrupt_pdf", f"not a PDF or corrupted (poppler exit status {rc})")


def _run_bounded(args: list[str], deadline: float) -> tuple[int, bytes, bytes]:
    """Run a command under the deadline and the memory limit, keeping at most
    1 MiB of stdout and the head and tail of stderr.

    Raises:
        RenderFailed: ``render_timeout`` when the deadline passes (the process
            group is killed).
    """
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    # prlimit from outside: a preexec_fn would not be safe in a threaded server.
    limit_resources(proc.pid, cpu_seconds=deadline - time.monotonic())
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
        kill_group(proc)
        raise RenderFailed("render_timeout", "rendering took longer than the time limit") from None
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    err = bytes(err_head) if len(err_head) < _STDERR_HEAD else bytes(err_head) + b"\n...\n" + err_tail
    return rc, bytes(out), err
