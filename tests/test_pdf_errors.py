"""Files declared as PDFs that are not, or are damaged (issue 14): every door fails within 5 s
with one error kind and one message per cause (not a PDF, no header, truncated, encrypted, no
pages, damaged page tree), whichever renderer was tried, and never in a renderer's own words."""

from __future__ import annotations

import io
import os
import random
import shutil
import time

import pytest
from docfactory import make_pdf, page_tree_loop_pdf, vector_page, zero_page_pdf
from PIL import Image

from docextract.config import PreprocessOptions
from docextract.errors import InputError
from docextract.preprocess.documents import count_document_pages, load_document
from docextract.preprocess.pdf import pdfium
from docextract.preprocess.pdf.api import count_pdf_pages, render_pdf_pages
from docextract.preprocess.pdf.common import NO_HEADER, NOT_A_PDF, TRUNCATED
from serve.errors import status_for

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
SMALL = PreprocessOptions(max_pixels=40_000, pdf_dpi=72)
#: What a renderer says in its own words; none of it may reach a message.
RENDERER_WORDS = ("Command Line", "Syntax Error", "Failed to load", "PDFium", "pdftoppm", "pdfinfo", "Error:")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (50, 50), "red").save(buf, format="PNG")
    return buf.getvalue()


def _sprinkled(size: int, token: bytes, seed: int = 0) -> bytes:
    """``size`` bytes of noise with ``token`` (``%d``: a running object number) every few KB."""
    rnd, parts, total, number = random.Random(seed), [], 0, 1
    while total < size:
        parts += [rnd.randbytes(rnd.randint(500, 4000)), token % number]
        total += len(parts[-2]) + len(parts[-1])
        number += 1
    return b"".join(parts)[:size]


GARBAGE = {
    "random bytes": (lambda: os.urandom(4 * 1024**2), NOT_A_PDF),
    "50 MB of random bytes": (lambda: os.urandom(50 * 1024**2 - 4096), NOT_A_PDF),
    "text": (lambda: b"Dear customer, your invoice is attached.\n" * 2000, NOT_A_PDF),
    "html": (lambda: b"<!DOCTYPE html><html><body>Not found</body></html>", NOT_A_PDF),
    "truncated header": (lambda: b"%PD", NOT_A_PDF),
    "a zip": (lambda: b"PK\x03\x04" + os.urandom(5000), NOT_A_PDF),
    "obj keywords, no header": (
        lambda: b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + os.urandom(200_000) + b"2 0 obj /Page",
        NO_HEADER,
    ),
    "header then noise": (lambda: b"%PDF-1.4\n" + os.urandom(1024**2), TRUNCATED),
    # pdfium scans such a file for many seconds: its open limit gives it up, poppler fails fast.
    "50 MB of stray streams": (
        lambda: b"%PDF-1.4\n" + _sprinkled(50 * 1024**2 - 4096, b"\n%d 0 obj\n<< /Length 99999 >>\nstream\n"),
        TRUNCATED,
    ),
}
DOORS = {
    "bytes named .pdf": lambda data, path: load_document(data, name="scan.pdf", options=SMALL),
    "declared application/pdf": lambda data, path: load_document(
        data, name="scan.pdf", media_type="application/pdf", options=SMALL
    ),
    "a .pdf path": lambda data, path: load_document(path, name="scan.pdf", options=SMALL),
    "batch page count": lambda data, path: count_document_pages(path, name="scan.pdf", options=SMALL),
    "render_pdf_pages": lambda data, path: render_pdf_pages(data, dpi=72, name="scan.pdf"),
    "count_pdf_pages": lambda data, path: count_pdf_pages(path, name="scan.pdf"),
}


@needs_poppler
@pytest.mark.parametrize("what", list(GARBAGE))
def test_no_pdf_fails_within_5_s_at_every_door_with_one_message(what, tmp_path):
    make, message = GARBAGE[what]
    data = make()
    path = tmp_path / "scan.pdf"
    path.write_bytes(data)
    for door, call in DOORS.items():
        started = time.monotonic()
        with pytest.raises(InputError) as caught:
            call(data, path)
        elapsed = time.monotonic() - started
        err = caught.value
        assert elapsed < 5, (door, elapsed)
        assert (err.kind, err.message) == ("corrupt_pdf", f"scan.pdf: {message}"), door
        assert status_for(err) == 422


def test_a_png_named_pdf_is_read_as_the_image_it_is(tmp_path):
    (tmp_path / "photo.pdf").write_bytes(_png())
    assert load_document(_png(), name="photo.pdf", options=SMALL).kind == "image"
    assert load_document(tmp_path / "photo.pdf", options=SMALL).kind == "image"
    assert count_document_pages(str(tmp_path / "photo.pdf"), name="photo.pdf", options=SMALL) is None
    # Handed to the PDF renderers themselves, it is no PDF.
    err = pytest.raises(InputError, render_pdf_pages, _png(), name="photo.pdf").value
    assert (err.kind, err.message) == ("corrupt_pdf", f"photo.pdf: {NOT_A_PDF}")


def test_pdfium_that_cannot_open_a_file_in_time_hands_it_to_poppler(monkeypatch):
    monkeypatch.setattr(pdfium, "OPEN_LIMIT_S", 0.0)
    err = pytest.raises(InputError, render_pdf_pages, make_pdf([vector_page()]), renderer="pdfium").value
    assert (err.kind, err.message) == ("corrupt_pdf", "document.pdf: damaged: pdfium could not open it within 0 s")
    if shutil.which("pdftoppm") is not None:
        (page,) = render_pdf_pages(make_pdf([vector_page()]), dpi=36, renderer="auto")
        assert page.renderer == "poppler"


_DATA = make_pdf([vector_page()] * 3)
CAUSES = {
    "encrypted": (
        make_pdf([vector_page()], user_password="secret"),
        "encrypted_pdf",
        "encrypted: a password is needed to open it",
    ),
    "no pages": (zero_page_pdf(), "no_pages", "the document has no pages"),
    "page tree loop": (
        page_tree_loop_pdf(),
        "corrupt_pdf",
        "damaged page tree: page 1 of the 2 it lists cannot be found",
    ),
    "truncated": (_DATA[: len(_DATA) // 2], "corrupt_pdf", TRUNCATED),
    "not a PDF": (b"just some text", "corrupt_pdf", NOT_A_PDF),
}


@pytest.mark.parametrize("renderer", ["pdfium", pytest.param("poppler", marks=needs_poppler), "auto"])
@pytest.mark.parametrize("cause", list(CAUSES))
def test_one_message_per_cause_whichever_renderer(cause, renderer):
    data, kind, message = CAUSES[cause]
    started = time.monotonic()
    err = pytest.raises(InputError, render_pdf_pages, data, dpi=72, renderer=renderer, name="doc.pdf").value
    assert time.monotonic() - started < 5
    assert (err.kind, err.message) == (kind, f"doc.pdf: {message}")
    assert not any(words in err.message for words in RENDERER_WORDS), err.message
    assert status_for(err) == 422
