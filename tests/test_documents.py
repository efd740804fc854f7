"""docextract.preprocess.documents: any input to model-ready pages."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
from docfactory import image_bytes, jpeg_with_orientation, make_pdf, vector_page
from PIL import Image
from pydantic import ValidationError

from docextract.config import PreprocessOptions
from docextract.errors import InputError
from docextract.preprocess.documents import load_document, sniff_kind

SMALL = PreprocessOptions(max_pixels=40_000, pdf_dpi=72)


@pytest.fixture(scope="module")
def two_page_pdf() -> bytes:
    return make_pdf([vector_page(612, 792, shapes=5), vector_page(300, 400, shapes=5)])


def test_image_becomes_one_page():
    doc = load_document(image_bytes((400, 300)), name="photo.png", options=SMALL)
    assert (doc.name, doc.kind, len(doc.pages)) == ("photo.png", "image", 1)
    page = doc.pages[0]
    assert page.page_number == 1 and page.source == "photo.png"
    assert page.image.mode == "RGB"
    assert page.image.size[0] * page.image.size[1] <= 40_000


def test_image_is_made_upright():
    doc = load_document(jpeg_with_orientation((80, 40), orientation=6), options=SMALL)
    assert doc.pages[0].image.size == (40, 80)


def test_pdf_becomes_pages_within_budget(two_page_pdf):
    doc = load_document(two_page_pdf, name="invoice.pdf", options=SMALL)
    assert doc.kind == "pdf"
    assert [p.page_number for p in doc.pages] == [1, 2]
    for page in doc.pages:
        assert page.source == "invoice.pdf"
        assert page.image.mode == "RGB"
        assert page.image.size[0] * page.image.size[1] <= 40_000
    # Page 2 (300 x 400 pt) rendered at 72 dpi is 120,000 px: scaled to the budget, same shape.
    w, h = doc.pages[1].image.size
    assert abs(w / h - 0.75) < 0.01


def test_pdf_page_selection(two_page_pdf):
    doc = load_document(two_page_pdf, pages=[2], options=SMALL)
    assert [p.page_number for p in doc.pages] == [2]


def test_pdf_max_pages_from_options(two_page_pdf):
    options = PreprocessOptions(pdf_max_pages=1, pdf_dpi=72)
    with pytest.raises(InputError) as err:
        load_document(two_page_pdf, options=options)
    assert err.value.kind == "too_many_pages"


def test_type_is_sniffed_not_taken_from_the_name(two_page_pdf, tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(two_page_pdf)
    doc = load_document(path, options=SMALL)
    assert doc.kind == "pdf"
    assert doc.name == str(path)


def test_data_uri_pdf(two_page_pdf):
    uri = "data:application/pdf;base64," + base64.b64encode(two_page_pdf).decode()
    doc = load_document(uri, options=SMALL)
    assert doc.kind == "pdf" and len(doc.pages) == 2


def test_pil_image_source():
    doc = load_document(Image.new("RGBA", (300, 300)), options=SMALL)
    assert doc.kind == "image" and doc.pages[0].image.mode == "RGB"


def test_pdf_header_after_junk_is_a_pdf(two_page_pdf):
    assert sniff_kind(b"\r\n" * 100 + two_page_pdf[:100]) == "pdf"


def test_image_quoting_a_pdf_header_is_an_image():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "converted from %PDF-1.7 by a scanner")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    assert b"%PDF-" in buf.getvalue()[:1024]
    assert sniff_kind(buf.getvalue()) == "image"


@pytest.mark.parametrize(
    "fmt,mode", [("PNG", "RGB"), ("JPEG", "RGB"), ("GIF", "P"), ("WEBP", "RGB"), ("TIFF", "RGB"), ("BMP", "RGB")]
)
def test_sniff_images(fmt, mode):
    assert sniff_kind(image_bytes((8, 8), mode=mode, fmt=fmt)) == "image"


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data,hint",
    [
        (b"Invoice 42\nTotal: 12.00 EUR\n", "expected a PDF or an image"),
        (_zip_bytes(), "ZIP"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (b"BM this is text, not a bitmap", "expected a PDF"),
    ],
    ids=["text", "zip", "heic", "bm-text"],
)
def test_unsupported_types(data, hint):
    with pytest.raises(InputError) as err:
        load_document(data, name="upload.bin")
    assert err.value.kind == "unsupported_type"
    assert str(err.value).startswith("upload.bin: unsupported file type")
    assert hint in str(err.value)


@pytest.mark.parametrize(
    "media_type,kind",
    [
        ("application/pdf", "corrupt_pdf"),
        ("image/png; charset=binary", "corrupt_image"),
        ("text/plain", "unsupported_type"),
    ],
)
def test_media_type_decides_only_unrecognised_content(media_type, kind):
    with pytest.raises(InputError) as err:
        load_document(b"\x01\x02 garbage garbage", media_type=media_type)
    assert err.value.kind == kind


def test_content_beats_declared_media_type():
    doc = load_document(image_bytes((10, 10)), media_type="application/pdf", options=SMALL)
    assert doc.kind == "image"


def test_limits_apply_before_loading(two_page_pdf):
    with pytest.raises(InputError) as err:
        load_document(b"")
    assert err.value.kind == "empty_file"
    with pytest.raises(InputError) as err:
        load_document(two_page_pdf, options=PreprocessOptions(max_bytes=100))
    assert err.value.kind == "too_large"


def test_image_pages_selection():
    data = image_bytes((10, 10))
    assert len(load_document(data, pages=[1], options=SMALL).pages) == 1
    with pytest.raises(InputError) as err:
        load_document(data, pages=[2])
    assert err.value.kind == "invalid_pages"


def test_options_are_strict_and_documented():
    with pytest.raises(ValidationError):
        PreprocessOptions(max_pixel=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PreprocessOptions(max_pixels=100, min_pixels=200)
    with pytest.raises(ValidationError):
        PreprocessOptions(pdf_renderer="ghostscript")  # type: ignore[arg-type]
    # The CLI is generated from these descriptions.
    for field_name, field in PreprocessOptions.model_fields.items():
        assert field.description, field_name
    assert PreprocessOptions().max_pixels == 1280 * 28 * 28
