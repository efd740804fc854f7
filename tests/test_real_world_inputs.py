"""Real-world documents (issue 14): blank pages, tiny images, headerless and garbage "PDFs",
damaged page trees, bogus page counts, long documents and multi-frame TIFFs, each made in
code (:mod:`docfactory`) and checked for its exact warning or error kind, on the real
renderers (pdfium and poppler)."""

from __future__ import annotations

import io
import json
import os
import shutil
import time

import pyarrow as pa
import pytest
from docfactory import (
    PdfPageSpec,
    blank_page,
    headerless_pdf,
    image_bytes,
    make_pdf,
    multi_frame_tiff,
    page_tree_loop_pdf,
    vector_page,
    widget_only_pdf,
)
from PIL import Image

from batch.inputs import expand_files
from batch.preprocess import preprocess_rows
from batch.rows import WORK_SCHEMA, table
from docextract.config import DEFAULT_MIN_PIXELS, MIN_IMAGE_SIDE, PreprocessOptions
from docextract.errors import InputError
from docextract.preprocess.documents import load_document, load_model_page
from docextract.preprocess.pages import prompt_groups
from docextract.preprocess.pdf import poppler
from docextract.preprocess.pdf.api import count_pdf_pages, iter_pdf_pages, render_pdf_pages
from serve.errors import status_for

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
SMALL = PreprocessOptions(max_pixels=40_000, pdf_dpi=72)
#: A file that holds a page tree claiming 100 pages and no page at all.
BOGUS_COUNT = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 100 >>\nendobj\n"
    b"3 0 obj\n<< /Type /Pages /Parent 2 0 R /Count 100 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)


def drawn(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    """An image with something on it (``image_bytes`` is one solid colour: a blank page)."""
    img = Image.new("RGB", size, (250, 250, 250))
    img.paste((0, 0, 0), (0, 0, max(1, size[0] // 2), max(1, size[1] // 2)))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _kinds(page) -> list[str]:
    return [w.kind for w in page.warnings]


def _error(fn, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as err:
        fn(*args, **kwargs)
    return err.value


# --- blank pages --------------------------------------------------------------------------------


@needs_poppler
def test_page_pdfium_renders_blank_is_rendered_again_by_poppler():
    data = widget_only_pdf()  # a form field's appearance only: pdfium (no form support) draws nothing
    (alone,) = render_pdf_pages(data, dpi=72, renderer="pdfium")
    assert alone.blank
    (page,) = render_pdf_pages(data, dpi=72, renderer="auto")
    assert (page.renderer, page.blank) == ("poppler", False)
    doc = load_document(data, name="form.pdf", options=SMALL)
    assert _kinds(doc.pages[0]) == []


def test_blank_page_in_every_renderer_carries_blank_page():
    data = make_pdf([vector_page(200, 200, shapes=3), blank_page(200, 200)])
    doc = load_document(data, name="two.pdf", options=SMALL)
    assert [_kinds(p) for p in doc.pages] == [[], ["blank_page"]]
    warning = doc.pages[1].warnings[0]
    assert warning.page == 2 and warning.message.startswith("two.pdf page 2 is blank")
    assert all(p.send for p in doc.pages)  # blank_pages=send (the default): still sent


def test_blank_pages_skip_setting():
    data = make_pdf([vector_page(200, 200, shapes=3), blank_page(200, 200)])
    skip = PreprocessOptions(max_pixels=40_000, pdf_dpi=72, blank_pages="skip")
    doc = load_document(data, name="two.pdf", options=skip)
    assert [p.send for p in doc.pages] == [True, False]
    per_page = prompt_groups(doc, "per_page")
    assert [(g.id, len(g.sent), [w.kind for w in g.warnings]) for g in per_page] == [
        ("two.pdf#page=1", 1, []),
        ("two.pdf#page=2", 0, ["blank_page"]),
    ]
    (whole,) = prompt_groups(doc, "document")
    assert (whole.id, whole.sent_pages, [w.kind for w in whole.warnings]) == ("two.pdf#pages=1-2", [1], ["blank_page"])


def test_all_white_image_is_blank():
    doc = load_document(image_bytes((300, 200), color=(255, 255, 255)), name="white.png", options=SMALL)
    assert _kinds(doc.pages[0]) == ["blank_page"] and doc.pages[0].warnings[0].page is None


# --- tiny images and pages ------------------------------------------------------------------------


def test_tiny_pdf_page_is_upscaled_with_a_warning():
    tiny = PdfPageSpec(8, 8, b"0 0 0 rg 0 0 4 4 re f")  # 8 x 8 pt: 8 x 8 pixels at 72 dpi
    doc = load_document(make_pdf([tiny]), name="tiny.pdf", options=SMALL)
    (page,) = doc.pages
    assert _kinds(page) == ["upscaled"]
    assert page.image.width * page.image.height >= DEFAULT_MIN_PIXELS
    assert "8x8 pixels, scaled up to 56x56" in page.warnings[0].message


def test_tiny_tiff_is_upscaled_and_smaller_than_the_floor_is_refused():
    page = load_model_page(drawn((16, 16), fmt="TIFF"), name="fax.tif", options=SMALL)
    assert _kinds(page) == ["upscaled"] and page.image.size == (56, 56)
    err = _error(load_document, image_bytes((MIN_IMAGE_SIDE - 1, 40)), name="dot.png", options=SMALL)
    assert err.kind == "too_small" and status_for(err) == 422
    assert err.message.startswith("dot.png: 7x40 pixels is too small")
    err = _error(load_document, make_pdf([PdfPageSpec(4, 4, b"")]), name="speck.pdf", options=SMALL)
    assert err.kind == "too_small" and "speck.pdf page 1" in err.message


def test_min_pixels_default_yields_to_a_smaller_budget():
    assert PreprocessOptions(max_pixels=1000).min_pixels == 1000
    assert PreprocessOptions(min_pixels=None).min_pixels is None
    page = load_model_page(drawn((16, 16)), name="x.png", options=PreprocessOptions(min_pixels=None))
    assert _kinds(page) == [] and page.image.size == (16, 16)


# --- type detection, one clear message per cause ---------------------------------------------------


@needs_poppler
def test_headerless_pdf_renders_when_name_or_type_says_pdf():
    data = headerless_pdf([vector_page(200, 200, shapes=3)])
    assert not data.lstrip().startswith(b"%PDF")
    by_name = load_document(data, name="mail.pdf", options=SMALL)
    by_type = load_document(data, name="upload", media_type="application/pdf", options=SMALL)
    for doc in (by_name, by_type):
        assert doc.kind == "pdf" and len(doc.pages) == 1 and _kinds(doc.pages[0]) == []
    assert _error(load_document, data, name="upload").kind == "unsupported_type"


@pytest.mark.parametrize("declared", [{"name": "scan.pdf"}, {"name": "upload", "media_type": "application/pdf"}])
def test_garbage_declared_as_pdf_fails_fast(declared):
    garbage = os.urandom(4 * 1024**2)  # 4 MB of noise, no "%PDF"
    started = time.monotonic()
    err = _error(load_document, garbage, options=SMALL, **declared)
    assert time.monotonic() - started < 5
    assert err.kind == "corrupt_pdf" and "not a PDF" in err.message


@pytest.mark.parametrize("renderer", ["pdfium", pytest.param("poppler", marks=needs_poppler), "auto"])
def test_bogus_page_count_is_corrupt_not_too_many_pages(renderer):
    err = _error(render_pdf_pages, BOGUS_COUNT, renderer=renderer, max_pages=50, name="junk.pdf")
    assert err.kind == "corrupt_pdf"
    assert err.message == "junk.pdf: damaged page tree: it lists 100 pages, but they cannot be rendered"
    assert _error(count_pdf_pages, BOGUS_COUNT, renderer=renderer).kind == "corrupt_pdf"


@pytest.mark.parametrize("renderer", ["pdfium", pytest.param("poppler", marks=needs_poppler), "auto"])
def test_page_tree_loop_is_corrupt_with_a_clear_message(renderer):
    err = _error(render_pdf_pages, page_tree_loop_pdf(), renderer=renderer, name="loop.pdf")
    assert err.kind == "corrupt_pdf"
    assert "Failed to load page" not in err.message and "pdfium failed" not in err.message
    if renderer != "poppler":
        assert "damaged page tree" in err.message


@needs_poppler
def test_truncated_pdf_says_truncated():
    data = make_pdf([vector_page()] * 3)
    err = _error(render_pdf_pages, data[: len(data) // 2], renderer="auto", name="cut.pdf")
    assert err.kind == "corrupt_pdf"
    assert err.message.startswith("cut.pdf: truncated: the file ends before its end-of-file marker")


def test_poppler_command_line_text_never_reaches_a_message():
    for stderr, kind in [
        (b"Command Line Error: Wrong page range given: the first page (3) can not be after the last page (2).", "corrupt_pdf"),
        (b"Syntax Error: Couldn't find trailer dictionary\nSyntax Error: Couldn't read xref table", "corrupt_pdf"),
        (b"Command Line Error: Incorrect password", "encrypted_pdf"),
        (b"Internal Error: something odd at offset 1234", "corrupt_pdf"),
    ]:
        failure = poppler._poppler_failure(1, stderr)
        assert failure.kind == kind
        assert "Command Line" not in failure.reason and "Error:" not in failure.reason, failure.reason


# --- long documents: pages stream --------------------------------------------------------------------


def test_pages_stream_one_at_a_time():
    data = make_pdf([vector_page(200, 200, shapes=2)] * 5)
    pages = iter_pdf_pages(data, dpi=72, renderer="pdfium")
    first = next(pages)
    assert first.page_number == 1
    assert [p.page_number for p in pages] == [2, 3, 4, 5]
    # A consumer that stops early leaves the renderer usable.
    partial = iter_pdf_pages(data, dpi=72, renderer="pdfium")
    next(partial)
    partial.close()
    assert len(render_pdf_pages(data, dpi=72, renderer="pdfium")) == 5


def test_long_pdf_expands_to_one_row_per_page_in_batch(tmp_path):
    pages = 300
    (tmp_path / "long.pdf").write_bytes(make_pdf([vector_page(72, 72, shapes=1, text=False)] * pages))
    item = {"source": "long.pdf", "path": str(tmp_path / "long.pdf"), "meta": json.dumps({"path": "long.pdf"})}
    options = PreprocessOptions(pdf_dpi=72)  # pdf_max_pages stays 50
    rows = expand_files(pa.Table.from_pylist([item]), mode="per_page", pages=None, options=options, done=frozenset())
    ids = rows.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == pages
    assert ids == [f"long.pdf#page={n}" for n in range(1, pages + 1)]
    assert rows.column("pages").to_pylist()[41] == [42] and not any(rows.column("error").to_pylist())
    # Each row renders only its own page.
    ready = preprocess_rows(rows.slice(290, 4), options=options).to_pylist()
    assert [(r["id"], len(r["images"]), r["error"]) for r in ready] == [
        (f"long.pdf#page={n}", 1, None) for n in range(291, 295)
    ]
    # Whole-document mode keeps the page limit.
    [row] = expand_files(pa.Table.from_pylist([item]), mode="document", pages=None, options=options, done=frozenset()).to_pylist()
    assert row["error_kind"] == "too_many_pages"


# --- multi-frame TIFF: a document like a PDF -----------------------------------------------------------


@pytest.fixture(scope="module")
def three_frames() -> bytes:
    return multi_frame_tiff([(200, 100), (120, 160), (90, 90)])


def test_multi_frame_tiff_is_a_paged_document(three_frames):
    doc = load_document(three_frames, name="fax.tif", options=SMALL)
    assert (doc.kind, doc.paged, [p.page_number for p in doc.pages]) == ("tiff", True, [1, 2, 3])
    assert [p.image.size for p in doc.pages] == [(200, 100), (120, 160), (90, 90)]
    assert [g.id for g in prompt_groups(doc, "per_page")] == ["fax.tif#page=1", "fax.tif#page=2", "fax.tif#page=3"]
    (whole,) = prompt_groups(doc, "document")
    assert (whole.id, whole.sent_pages) == ("fax.tif#pages=1-3", [1, 2, 3])
    # Page selection and limits, as for a PDF.
    assert [p.page_number for p in load_document(three_frames, pages=[3, 2], options=SMALL).pages] == [2, 3]
    assert load_document(three_frames, pages=[2], options=SMALL).pages[0].image.size == (120, 160)
    assert _error(load_document, three_frames, pages=[4], options=SMALL).kind == "invalid_pages"
    limited = PreprocessOptions(pdf_max_pages=2)
    assert _error(load_document, three_frames, options=limited).kind == "too_many_pages"
    single = load_document(image_bytes((64, 48), fmt="TIFF"), name="one.tif", options=SMALL)
    assert (single.kind, single.paged) == ("image", False)


def test_multi_frame_tiff_expands_in_batch(three_frames, tmp_path):
    (tmp_path / "fax.tif").write_bytes(three_frames)
    item = {"source": "fax.tif", "path": str(tmp_path / "fax.tif"), "meta": "{}"}
    rows = expand_files(pa.Table.from_pylist([item]), mode="per_page", pages=None, options=SMALL, done=frozenset())
    assert rows.column("id").to_pylist() == ["fax.tif#page=1", "fax.tif#page=2", "fax.tif#page=3"]
    (ready,) = preprocess_rows(rows.slice(1, 1), options=SMALL).to_pylist()
    assert ready["pages"] == [2] and (ready["images"][0]["width"], ready["images"][0]["height"]) == (120, 160)
    [whole] = expand_files(pa.Table.from_pylist([item]), mode="document", pages=None, options=SMALL, done=frozenset()).to_pylist()
    assert (whole["id"], whole["pages"]) == ("fax.tif#pages=1-3", [1, 2, 3])


# --- warnings in batch rows ------------------------------------------------------------------------------


def test_batch_rows_carry_warnings_and_skip_blank_pages(tmp_path):
    (tmp_path / "doc.pdf").write_bytes(make_pdf([vector_page(200, 200, shapes=3), blank_page(200, 200)]))
    rows = [
        {"id": f"doc.pdf#page={n}", "source": "doc.pdf", "pages": [n], "meta": "{}", "path": str(tmp_path / "doc.pdf")}
        for n in (1, 2)
    ] + [{"id": "tiny.png", "source": "tiny.png", "pages": [], "meta": "{}", "data": drawn((16, 16))}]
    sent = preprocess_rows(table(rows, WORK_SCHEMA), options=SMALL).to_pylist()
    assert [[w["kind"] for w in r["warnings"]] for r in sent] == [[], ["blank_page"], ["upscaled"]]
    assert [r["error"] for r in sent] == [None, None, None]
    skip = PreprocessOptions(max_pixels=40_000, pdf_dpi=72, blank_pages="skip")
    skipped = preprocess_rows(table(rows, WORK_SCHEMA), options=skip).to_pylist()
    assert [r["error_kind"] for r in skipped] == [None, "blank_page", None]
    assert skipped[1]["images"] is None and skipped[1]["warnings"][0]["page"] == 2
    assert skipped[1]["error"] == "doc.pdf#page=2: blank (one uniform colour); not sent to the model (blank_pages=skip)"


def test_engine_answers_an_all_blank_skipped_page_without_generating():
    """The skip path never reaches vLLM, so no engine is started: the engine object is built
    without ``__init__`` (its ``run`` would fail if called). The sent path is covered with the
    real engine by the batch job in test_batch_ray.py."""
    import asyncio

    from docextract.engine import ExtractionEngine
    from docextract.tasks import get_builtin_task

    engine = ExtractionEngine.__new__(ExtractionEngine)
    engine.model_name = "tiny"
    skip = PreprocessOptions(max_pixels=40_000, pdf_dpi=72, blank_pages="skip")
    doc = load_document(make_pdf([blank_page(200, 200)]), name="white.pdf", options=skip)
    (result,) = asyncio.run(engine.extract_document(doc, get_builtin_task("invoice")))
    assert (result.id, result.pages, result.error_kind, result.data) == ("white.pdf#page=1", [1], "blank_page", None)
    assert [w.kind for w in result.warnings] == ["blank_page"]
    assert json.loads(result.model_dump_json())["warnings"][0]["page"] == 1


@needs_poppler
def test_failure_part_way_hands_the_remaining_pages_to_poppler(monkeypatch):
    """pdfium failing after page 1 (as on a page tree damaged further in), beside the real
    whole-file fallback of test_pdf.py::test_truncated_pdf[auto]: pages already given are kept."""
    import docextract.preprocess.pdf.api as pdf_api
    from docextract.preprocess.pdf.common import RenderFailed

    real = pdf_api._ENGINES["pdfium"]

    def fails_after_page_one(request, deadline):
        def pages():
            for page in real(request, deadline):
                yield page
                raise RenderFailed("corrupt_pdf", "damaged page tree: page 2 cannot be found")

        return pages()

    monkeypatch.setitem(pdf_api._ENGINES, "pdfium", fails_after_page_one)
    pages = render_pdf_pages(make_pdf([vector_page(200, 200, shapes=3)] * 3), dpi=72, renderer="auto")
    assert [(p.page_number, p.renderer) for p in pages] == [(1, "pdfium"), (2, "poppler"), (3, "poppler")]
