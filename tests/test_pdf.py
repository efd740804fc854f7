"""docextract.preprocess.pdf.api on real renderers: pypdfium2 and poppler (pdftoppm), no mocks
except where a test says so, next to the real test of the same path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from docfactory import PdfPageSpec, make_pdf, raster_page, slow_page, vector_page, zero_page_pdf

import docextract.preprocess.pdf.api as pdf_module
import docextract.preprocess.pdf.pdfium as pdf_pdfium
import docextract.preprocess.pdf.poppler as pdf_poppler
from docextract.errors import InputError
from docextract.preprocess.pdf.api import count_pdf_pages, render_pdf_pages
from serve.errors import status_for

RENDERERS = [
    "pdfium",
    pytest.param(
        "poppler", marks=pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
    ),
]
SIZES = [(612, 792), (300, 400), (595, 842)]  # letter, small, A4


@pytest.fixture(scope="module")
def three_pages() -> bytes:
    return make_pdf([vector_page(w, h, shapes=10) for w, h in SIZES])


@pytest.fixture(scope="module")
def slow_pdf() -> bytes:
    # Over a minute for either renderer at 72 dpi on a 2-core CPU (20,000 curves: 11 s pdfium, 36 s poppler).
    return make_pdf([slow_page(100_000)])


def _kind(excinfo: pytest.ExceptionInfo[InputError]) -> str:
    return excinfo.value.kind


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("dpi", [72, 100])
def test_renders_every_page_at_dpi(three_pages, renderer, dpi):
    pages = render_pdf_pages(three_pages, dpi=dpi, renderer=renderer)
    assert [p.page_number for p in pages] == [1, 2, 3]
    for page, (w, h) in zip(pages, SIZES, strict=False):
        assert page.renderer == renderer
        assert page.image.mode == "RGB"
        expected = (w * dpi / 72, h * dpi / 72)
        assert all(abs(got - want) <= 1.5 for got, want in zip(page.image.size, expected, strict=False)), (
            page.image.size,
            expected,
        )
        # The page has blue shapes on white: something was drawn.
        colors = page.image.getcolors(maxcolors=1 << 20) or []
        assert len(colors) > 2


@pytest.mark.parametrize("renderer", RENDERERS)
def test_raster_page(renderer):
    data = make_pdf([raster_page(300, 200, dpi=100)])
    (page,) = render_pdf_pages(data, dpi=72, renderer=renderer)
    assert page.image.size == (300, 200)
    # The JPEG's dark rectangle is drawn where it was painted.
    assert sum(page.image.getpixel((80, 40))) < 300


@pytest.mark.parametrize("renderer", RENDERERS)
def test_page_selection(three_pages, renderer, tmp_path):
    path = tmp_path / "three.pdf"
    path.write_bytes(three_pages)
    pages = render_pdf_pages(path, dpi=36, pages=[3, 1, 3], renderer=renderer)
    assert [p.page_number for p in pages] == [1, 3]
    assert pages[1].image.size == (298, 421)  # A4 at 36 dpi: page 3, not page 2


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("selection", [[0], [4], [], [1, 99]])
def test_pages_out_of_range(three_pages, renderer, selection):
    with pytest.raises(InputError) as err:
        render_pdf_pages(three_pages, pages=selection, renderer=renderer, name="three.pdf")
    assert _kind(err) == "invalid_pages"
    assert str(err.value).startswith("three.pdf: ")


@pytest.mark.parametrize("renderer", RENDERERS)
def test_too_many_pages(three_pages, renderer):
    with pytest.raises(InputError) as err:
        render_pdf_pages(three_pages, max_pages=2, renderer=renderer)
    assert _kind(err) == "too_many_pages"
    assert "select" in str(err.value)
    # A selection within the limit is the way out.
    assert len(render_pdf_pages(three_pages, dpi=36, max_pages=2, pages=[2, 3], renderer=renderer)) == 2
    with pytest.raises(InputError) as err:
        render_pdf_pages(three_pages, max_pages=2, pages=[1, 2, 3], renderer=renderer)
    assert _kind(err) == "too_many_pages"


@pytest.mark.parametrize("renderer", RENDERERS + ["auto"])
def test_truncated_pdf(three_pages, renderer):
    with pytest.raises(InputError) as err:
        render_pdf_pages(three_pages[: len(three_pages) // 2], renderer=renderer, name="cut.pdf")
    assert _kind(err) == "corrupt_pdf"
    # One message for the cause, whichever renderers were tried.
    assert str(err.value) == "cut.pdf: truncated: the file ends before its end-of-file marker"


@pytest.mark.parametrize("renderer", RENDERERS + ["auto"])
def test_empty_file(renderer, tmp_path):
    with pytest.raises(InputError) as err:
        render_pdf_pages(b"", renderer=renderer)
    assert _kind(err) == "empty_file"
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(InputError) as err:
        render_pdf_pages(tmp_path / "empty.pdf", renderer=renderer)
    assert _kind(err) == "empty_file"


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as err:
        render_pdf_pages(tmp_path / "nope.pdf")
    assert _kind(err) == "not_found"


@pytest.mark.parametrize("renderer", RENDERERS + ["auto"])
def test_user_password_is_encrypted_pdf(renderer):
    data = make_pdf([vector_page()], user_password="secret")
    with pytest.raises(InputError) as err:
        render_pdf_pages(data, renderer=renderer)
    assert _kind(err) == "encrypted_pdf"
    assert "password" in str(err.value)
    # No fallback for a password: poppler is not asked.
    assert "poppler:" not in str(err.value)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_owner_password_only_renders(renderer):
    data = make_pdf([vector_page(200, 100, shapes=3, text=False)], owner_password="owner")
    (page,) = render_pdf_pages(data, dpi=72, renderer=renderer)
    assert page.image.size == (200, 100)
    assert len(page.image.getcolors(maxcolors=1 << 16) or []) > 1


@pytest.mark.parametrize("renderer", RENDERERS)
def test_zero_pages(renderer):
    # pdfium reports a zero-page document as "Success", or with the stale code of
    # the file before: so the (reused) worker first sees a password error.
    with pytest.raises(InputError):
        render_pdf_pages(make_pdf([vector_page()], user_password="x"), renderer=renderer)
    with pytest.raises(InputError) as err:
        render_pdf_pages(zero_page_pdf(), renderer=renderer)
    assert _kind(err) == "no_pages"


@pytest.mark.parametrize("renderer", RENDERERS)
def test_tiny_page_is_not_a_real_page(renderer):
    with pytest.raises(InputError) as err:
        render_pdf_pages(make_pdf([PdfPageSpec(1, 1)]), dpi=72, renderer=renderer)
    assert _kind(err) == "corrupt_pdf"
    assert "not a real page" in str(err.value)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_both_renderers_render_the_cropbox(renderer):
    page = vector_page(612, 792, shapes=5, text=False)
    page = PdfPageSpec(page.width, page.height, page.content, extra=b"/CropBox [0 0 300 200]")
    (rendered,) = render_pdf_pages(make_pdf([page]), dpi=72, renderer=renderer)
    assert rendered.image.size == (300, 200)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_oversized_page_renders_at_lower_dpi(renderer):
    # 200 x 200 inches: 900 MP at 150 dpi.
    data = make_pdf([vector_page(14400, 14400, shapes=5, text=False)])
    (page,) = render_pdf_pages(data, dpi=150, max_page_pixels=1_000_000, renderer=renderer)
    w, h = page.image.size
    assert w * h <= 1_000_000 * 1.01
    assert w == h and w > 950


@pytest.mark.parametrize("renderer", RENDERERS)
def test_timeout_kills_the_renderer(slow_pdf, renderer):
    started = time.monotonic()
    with pytest.raises(InputError) as err:
        render_pdf_pages(slow_pdf, dpi=72, timeout_s=0.5, renderer=renderer)
    elapsed = time.monotonic() - started
    assert _kind(err) == "render_timeout"
    assert "0.5 s" in str(err.value)
    assert elapsed < 4, elapsed
    # The next document gets a working renderer.
    assert len(render_pdf_pages(make_pdf([vector_page(100, 100, shapes=1)]), renderer=renderer)) == 1


def test_timeout_in_auto_mode_does_not_fall_back(slow_pdf):
    with pytest.raises(InputError) as err:
        render_pdf_pages(slow_pdf, dpi=72, timeout_s=0.5, renderer="auto")
    assert _kind(err) == "render_timeout"
    assert "poppler" not in str(err.value)


def test_auto_falls_back_to_poppler(three_pages, monkeypatch):
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils not installed")

    # pdfium failing on a file poppler reads: stand in for the ~4% of real files
    # where that happens (the real failure path is test_truncated_pdf[auto]).
    def pdfium_fails(request, deadline):
        raise pdf_module.RenderFailed("corrupt_pdf", "not a PDF or corrupted")

    monkeypatch.setitem(pdf_module._ENGINES, "pdfium", pdfium_fails)
    pages = render_pdf_pages(three_pages, dpi=36, renderer="auto")
    assert [p.renderer for p in pages] == ["poppler"] * 3


@pytest.mark.parametrize("renderer", RENDERERS + ["auto"])
def test_count_pages(three_pages, renderer):
    assert count_pdf_pages(three_pages, renderer=renderer) == 3
    with pytest.raises(InputError) as err:
        count_pdf_pages(make_pdf([vector_page()], user_password="pw"), renderer=renderer)
    assert _kind(err) == "encrypted_pdf"


def test_dead_idle_worker_is_replaced(three_pages):
    render_pdf_pages(three_pages, dpi=36, renderer="pdfium")
    with pdf_pdfium._idle_lock:
        workers = list(pdf_pdfium._idle_workers)
    assert workers
    for worker in workers:
        worker.proc.kill()
        worker.proc.wait()
    assert len(render_pdf_pages(three_pages, dpi=36, renderer="pdfium")) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_share_workers(three_pages):
    render_pdf_pages(three_pages, dpi=36, renderer="pdfium")
    with pdf_pdfium._idle_lock:
        workers = list(pdf_pdfium._idle_workers)
    assert workers
    pid = os.fork()
    if pid == 0:  # the child renders with a worker of its own, then exits
        ok = not pdf_pdfium._idle_workers and len(render_pdf_pages(three_pages, dpi=36, renderer="pdfium")) == 3
        pdf_pdfium._close_idle_workers()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert all(worker.alive() for worker in workers)
    assert len(render_pdf_pages(three_pages, dpi=36, renderer="pdfium")) == 3


def test_concurrent_renders(three_pages):
    results: list[int] = []
    errors: list[BaseException] = []

    def render() -> None:
        try:
            results.append(len(render_pdf_pages(three_pages, dpi=50, renderer="pdfium")))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=render) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and results == [3, 3, 3, 3]


def test_waiting_for_a_render_slot_counts_against_the_limit(three_pages, monkeypatch):
    monkeypatch.setattr(pdf_module, "_render_slots", threading.BoundedSemaphore(1))
    pdf_module._render_slots.acquire()  # every slot busy
    started = time.monotonic()
    with pytest.raises(InputError) as err:
        render_pdf_pages(three_pages, timeout_s=0.3)
    assert _kind(err) == "renderer_busy" and status_for(err.value) == 503
    assert time.monotonic() - started < 2


def test_stderr_is_bounded():
    # 50 MB of warnings, as poppler writes for some broken files.
    noisy = [sys.executable, "-c", "import sys\nfor _ in range(50): sys.stderr.write('Syntax Error: x' * 70_000)"]
    rc, _, err = pdf_poppler._run_bounded(noisy, time.monotonic() + 60)
    assert rc == 0
    assert len(err) < 64 * 1024


def test_bad_arguments():
    with pytest.raises(ValueError):
        render_pdf_pages(b"%PDF-", renderer="ghostscript")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        render_pdf_pages(b"%PDF-", dpi=0)


def _is_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # a zombie nobody reaps (PID 1 in a container) is gone too


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_worker_dies_with_a_crashed_parent(slow_pdf, tmp_path):
    # A caller killed mid-render (OOM killer, SIGKILL) cannot kill its worker;
    # the worker must notice and exit rather than render a hostile file forever.
    (tmp_path / "slow.pdf").write_bytes(slow_pdf)
    script = textwrap.dedent(
        f"""
        import os, sys, threading, time
        sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parents[1])]!r}
        import docextract.preprocess.pdf.api as p
        import docextract.preprocess.pdf.pdfium as p_pdfium
        from docfactory import make_pdf, vector_page
        p.render_pdf_pages(make_pdf([vector_page(100, 100, shapes=1)]), renderer="pdfium")
        print(p_pdfium._idle_workers[0].proc.pid, flush=True)
        threading.Thread(target=p.render_pdf_pages, args=({str(tmp_path / "slow.pdf")!r},),
                         kwargs=dict(renderer="pdfium", timeout_s=600), daemon=True).start()
        time.sleep(0.5)
        os._exit(0)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    worker_pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not _is_gone(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _is_gone(worker_pid)
