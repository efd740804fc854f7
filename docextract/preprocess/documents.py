"""Turn any input (image, multi-frame TIFF or PDF; path, bytes, data URI or PIL image) into pages.

The type is sniffed from the content's first bytes, never trusted from a file
name. Only content that matches no known signature falls back on what the
client declared (``media_type``) or, for PDFs, the file name: a PDF whose
``%PDF`` header is missing still renders in poppler, but a file that holds no
PDF objects at all is refused at once (``corrupt_pdf``), never handed to a
renderer that would spend its whole time limit on it.

Every page is made model-ready here, one at a time (a long document never holds
more than one full-size page): checked against the floor of
:data:`~docextract.config.MIN_IMAGE_SIDE` pixels a side (``too_small``),
scaled into ``[min_pixels, max_pixels]`` (``upscaled`` warning when it grew),
and checked for being one uniform colour (``blank_page`` warning; with
``blank_pages="skip"`` the page is kept but marked not to be sent).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from docextract.config import PreprocessOptions
from docextract.errors import InputError
from docextract.preprocess.images import (
    SUPPORTED_IMAGE_FORMATS,
    check_min_side,
    count_frames,
    is_uniform,
    load_image,
    resize_to_pixel_budget,
)
from docextract.preprocess.pdf.api import iter_pdf_pages
from docextract.preprocess.pdf.common import NOT_A_PDF, holds_pdf, select_pages
from docextract.preprocess.sources import check_size, open_input, read_source_bytes
from docextract.results import InputWarning

__all__ = [
    "Document",
    "count_document_pages",
    "DocumentKind",
    "DocumentSource",
    "Page",
    "load_document",
    "load_model_image",
    "load_model_page",
    "resolve_kind",
    "sniff_kind",
]

#: ``image`` (one page), ``pdf``, or ``tiff`` (a TIFF of several frames: a paged document like a PDF).
DocumentKind = Literal["image", "pdf", "tiff"]
#: A path, the file's bytes, a base64 ``data:`` URI, or an open PIL image.
DocumentSource = str | os.PathLike | bytes | Image.Image


@dataclass(frozen=True)
class Page:
    """One model-ready page.

    Attributes:
        page_number: 1-based; always 1 for an image.
        image: RGB, within the pixel budget.
        source: Name of the document it comes from.
        warnings: What preprocessing noticed (``upscaled``, ``blank_page``).
        blank: One uniform colour (in every renderer tried, for a PDF).
        send: False for a blank page under ``blank_pages="skip"``: its result has no output.
    """

    page_number: int
    image: Image.Image
    source: str
    warnings: tuple[InputWarning, ...] = ()
    blank: bool = False
    send: bool = True


@dataclass(frozen=True)
class Document:
    """An input turned into pages.

    Attributes:
        name: How the input is named in messages and results.
        kind: ``"image"``, ``"pdf"`` or ``"tiff"`` (multi-frame).
        pages: The pages, in page order.
    """

    name: str
    kind: DocumentKind
    pages: tuple[Page, ...]

    @property
    def paged(self) -> bool:
        """Whether results name page numbers (a PDF or a multi-frame TIFF, not a single image)."""
        return self.kind != "image"


def load_document(
    source: DocumentSource,
    *,
    name: str | None = None,
    media_type: str | None = None,
    pages: Sequence[int] | None = None,
    options: PreprocessOptions | None = None,
) -> Document:
    """Load an image, a multi-frame TIFF or a PDF as model-ready pages.

    Args:
        source: A path, bytes, a base64 ``data:`` URI, or a PIL image.
        name: How the input is named in messages (default: the path, or a
            generic name).
        media_type: The client's declared type (e.g. ``application/pdf``),
            used only when the content's own signature is not recognised.
        pages: 1-based pages (PDF pages, TIFF frames) to keep (None: all, up to
            ``options.pdf_max_pages``). For a single image only ``[1]`` is valid.
        options: Limits and sizes (default: :class:`PreprocessOptions`).

    Returns:
        The document and its pages.

    Raises:
        InputError: ``unsupported_type``, ``empty_file``, ``too_large``, ``too_small``,
            ``not_found``, ``invalid_pages``, ``too_many_pages``, or the kinds of
            :func:`~docextract.preprocess.images.load_image` and
            :func:`~docextract.preprocess.pdf.api.iter_pdf_pages`.
    """
    options = options or PreprocessOptions()
    if isinstance(source, Image.Image):
        name = name or "image"
        kind, loaded = _image_pages(source, name, pages, options)
        return Document(name, kind, tuple(loaded))
    if isinstance(source, (str, os.PathLike)) and not str(source).startswith("data:"):
        # A PDF on disk is rendered from its path: a page of a long file need not read the whole file.
        path = os.fspath(source)
        name = name or path
        if sniff_kind(_read_head(path, options.max_bytes, name)) == "pdf":
            return Document(name, "pdf", tuple(_pdf_pages(path, name, pages, options)))
    name, content = read_source_bytes(source, max_bytes=options.max_bytes, name=name)
    kind = resolve_kind(content, media_type, name)
    if kind == "pdf":
        return Document(name, "pdf", tuple(_pdf_pages(content, name, pages, options)))
    kind, loaded = _image_pages(content, name, pages, options)
    return Document(name, kind, tuple(loaded))


def count_document_pages(path: str, *, name: str, options: PreprocessOptions) -> int | None:
    """Pages of the PDF or multi-frame TIFF at ``path`` (a PDF's count checked, see
    :func:`~docextract.preprocess.pdf.api.count_pdf_pages`); None for anything else, which is
    one unit of work whose loader reports what is wrong with it. Reads a file's first KiB,
    except for a TIFF (its frames are counted) and a header-less ``.pdf`` (checked for PDF objects).

    Raises:
        InputError: the kinds of :func:`count_pdf_pages` and :func:`resolve_kind`,
            ``not_found``, ``empty_file``, ``too_large``.
    """
    from docextract.preprocess.pdf.api import count_pdf_pages

    head = _read_head(path, options.max_bytes, name)
    kind = sniff_kind(head)
    if kind is None and name.lower().endswith(".pdf"):
        kind = resolve_kind(read_source_bytes(path, max_bytes=options.max_bytes, name=name)[1], None, name)
    if kind == "pdf":
        return count_pdf_pages(path, renderer=options.pdf_renderer, timeout_s=options.pdf_timeout_s, name=name)
    if kind == "image" and head[:4] in _TIFF_MAGIC:
        frames = count_frames(read_source_bytes(path, max_bytes=options.max_bytes, name=name)[1])
        return frames if frames > 1 else None
    return None


def sniff_kind(head: bytes) -> Literal["image", "pdf"] | None:
    """The kind of a file from its first bytes (1 KiB is enough), or None."""
    for kind, matches in _SIGNATURES:
        if matches(head):
            return kind
    return None


def load_model_page(
    content: bytes | Image.Image, *, name: str, options: PreprocessOptions, page_number: int = 1, frame: int = 0
) -> Page:
    """One image (or one TIFF frame), decoded and fitted to the model under ``options``, with
    the warnings that produced: what every door that takes images calls.

    Raises:
        InputError: ``too_small`` and the kinds of :func:`~docextract.preprocess.images.load_image`.
    """
    image = load_image(
        content,
        max_pixels=options.max_pixels,
        min_pixels=None,  # scaled up below, where it is reported
        max_image_pixels=options.max_image_pixels,
        max_bytes=options.max_bytes,
        name=name,
        frame=frame,
    )
    return _model_page(image, page_number, name, options, blank=None, numbered=frame > 0 or page_number > 1)


def load_model_image(content: bytes | Image.Image, *, name: str, options: PreprocessOptions) -> Image.Image:
    """One image, decoded and fitted to the model under ``options`` (size, pixel and budget limits)."""
    return load_model_page(content, name=name, options=options).image


# --- sniffing ---------------------------------------------------------------

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", *_TIFF_MAGIC)

# Strongest first: a signature at offset 0 beats "%PDF-" found further in
# (an image's metadata may quote it).
_SIGNATURES: tuple[tuple[Literal["image", "pdf"], Callable[[bytes], bool]], ...] = (
    ("pdf", lambda head: head.startswith(b"%PDF-")),
    (
        "image",
        lambda head: (
            head.startswith(_IMAGE_MAGIC)
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or (head[:2] == b"BM" and head[6:10] == b"\0\0\0\0")
        ),
    ),
    # Readers accept a PDF header anywhere in the first 1024 bytes; junk before it is common.
    ("pdf", lambda head: b"%PDF-" in head[:1024]),
)

# Named only to make "unsupported" messages useful.
_KNOWN_UNSUPPORTED = (
    (
        lambda head: head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"),
        "a HEIC/HEIF image; convert it to JPEG",
    ),
    (lambda head: head[4:12] == b"ftypavif", "an AVIF image; convert it to PNG or JPEG"),
    (lambda head: head.startswith(b"PK\x03\x04"), "a ZIP archive (or an Office document)"),
    (lambda head: head.lstrip().startswith((b"<svg", b"<?xml")), "SVG/XML"),
)


def _media_kind(media_type: str | None) -> Literal["image", "pdf"] | None:
    if not media_type:
        return None
    essence = media_type.split(";", 1)[0].strip().lower()
    if essence in ("application/pdf", "application/x-pdf"):
        return "pdf"
    if essence.startswith("image/"):
        return "image"
    return None


def resolve_kind(data: bytes, media_type: str | None, name: str) -> Literal["image", "pdf"]:
    """The loader for ``data``: its signature, else the declared type or a ``.pdf`` name
    (a header-less file must hold PDF objects to be tried as a PDF).

    Raises:
        InputError: ``corrupt_pdf`` (declared PDF, holds none), ``unsupported_type``.
    """
    kind = sniff_kind(data[:1024])
    if kind is not None:
        return kind
    declared = _media_kind(media_type) or ("pdf" if name.lower().endswith(".pdf") else None)
    if declared == "pdf":
        if holds_pdf(data):
            return "pdf"  # no header, but PDF objects: poppler renders such files
        raise InputError(f"{name}: {NOT_A_PDF}", kind="corrupt_pdf")
    if declared == "image":
        return "image"  # the image decoder says what is wrong with it
    hint = next((what for matches, what in _KNOWN_UNSUPPORTED if matches(data[:64])), None)
    formats = ", ".join(SUPPORTED_IMAGE_FORMATS)
    detail = f"it looks like {hint}" if hint else f"expected a PDF or an image ({formats})"
    raise InputError(f"{name}: unsupported file type: {detail}", kind="unsupported_type")


def _read_head(path: str, max_bytes: int | None, name: str) -> bytes:
    with open_input(path, name) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(1024)
    if size == 0:
        raise InputError(f"{name}: empty file", kind="empty_file")
    check_size(size, max_bytes, name)
    return head


# --- one page, model-ready ------------------------------------------------------


def _model_page(
    image: Image.Image, number: int, name: str, options: PreprocessOptions, *, blank: bool | None, numbered: bool
) -> Page:
    """Floor check, upscaling to ``min_pixels`` and the blank check, with their warnings.
    ``blank`` is the renderer's verdict for a PDF page (None: look at the pixels)."""
    where = f"{name} page {number}" if numbered else name
    check_min_side(image.size, where)
    warnings: list[InputWarning] = []
    if blank is None:
        blank = is_uniform(image)
    if blank:
        skipped = "; skipped (blank_pages=skip)" if options.blank_pages == "skip" else ""
        warnings.append(
            InputWarning(
                kind="blank_page",
                message=f"{where} is blank (one uniform colour){skipped}",
                page=number if numbered else None,
            )
        )
    before = image.size
    image = resize_to_pixel_budget(image, options.max_pixels, options.min_pixels)
    if image.width * image.height > before[0] * before[1]:
        warnings.append(
            InputWarning(
                kind="upscaled",
                message=f"{where} is {before[0]}x{before[1]} pixels, scaled up to {image.width}x{image.height} "
                f"(min_pixels {options.min_pixels})",
                page=number if numbered else None,
            )
        )
    return Page(number, image, name, tuple(warnings), blank, send=not (blank and options.blank_pages == "skip"))


# --- loaders, one per kind ----------------------------------------------------


def _image_pages(
    content: bytes | Image.Image, name: str, pages: Sequence[int] | None, options: PreprocessOptions
) -> tuple[DocumentKind, list[Page]]:
    frames = count_frames(content) if isinstance(content, bytes) else 1
    if frames == 1:
        if pages is not None and list(pages) != [1]:
            raise InputError(f"{name}: an image has a single page; pages must be [1] or omitted", kind="invalid_pages")
        page = load_model_page(content, name=name, options=options)
        return "image", [page]
    assert isinstance(content, bytes)
    selected = _select(frames, pages, options.pdf_max_pages, name)
    # One frame decoded at a time: a long fax or scan holds one full-size page, as a PDF does.
    return "tiff", [
        load_model_page(content, name=name, options=options, page_number=n, frame=n - 1) for n in selected
    ]


def _select(count: int, pages: Sequence[int] | None, max_pages: int | None, name: str) -> list[int]:
    """The pages of a ``count``-page document to load, by the same rules as a PDF's."""
    from docextract.preprocess.pdf.common import RenderFailed

    try:
        return select_pages(count, sorted(set(pages)) if pages is not None else None, max_pages)
    except RenderFailed as exc:
        raise InputError(f"{name}: {exc.reason}", kind=exc.kind) from None


def _pdf_pages(
    content: bytes | str, name: str, pages: Sequence[int] | None, options: PreprocessOptions
) -> Iterator[Page]:
    rendered = iter_pdf_pages(
        content,
        dpi=options.pdf_dpi,
        pages=pages,
        max_pages=options.pdf_max_pages,
        renderer=options.pdf_renderer,
        timeout_s=options.pdf_timeout_s,
        max_page_pixels=options.max_image_pixels,
        name=name,
    )
    # Each full-size page is scaled down, and dropped, before the next is rendered.
    for page in rendered:
        number, image, blank = page.page_number, page.image, page.blank
        del page
        ready = _model_page(image, number, name, options, blank=blank, numbered=True)
        del image
        yield ready
