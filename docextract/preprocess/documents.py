"""Turn any input (image or PDF; path, bytes, data URI or PIL image) into pages.

The type is sniffed from the content's first bytes, never trusted from a file
name: a ``media_type`` from the client is used only when the content matches
no known signature, and decides which loader names the error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from docextract.config import PreprocessOptions
from docextract.errors import InputError
from docextract.preprocess.images import (
    SUPPORTED_IMAGE_FORMATS,
    load_image,
    resize_to_pixel_budget,
)
from docextract.preprocess.pdf.api import render_pdf_pages
from docextract.preprocess.sources import read_source_bytes

__all__ = [
    "Document",
    "DocumentKind",
    "DocumentSource",
    "Page",
    "load_document",
    "load_model_image",
    "sniff_kind",
]

DocumentKind = Literal["image", "pdf"]
#: A path, the file's bytes, a base64 ``data:`` URI, or an open PIL image.
DocumentSource = str | os.PathLike | bytes | Image.Image


@dataclass(frozen=True)
class Page:
    """One model-ready page.

    Attributes:
        page_number: 1-based; always 1 for an image.
        image: RGB, within the pixel budget.
        source: Name of the document it comes from.
    """

    page_number: int
    image: Image.Image
    source: str


@dataclass(frozen=True)
class Document:
    """An input turned into pages.

    Attributes:
        name: How the input is named in messages and results.
        kind: ``"image"`` or ``"pdf"``.
        pages: The pages, in page order.
    """

    name: str
    kind: DocumentKind
    pages: tuple[Page, ...]


def load_document(
    source: DocumentSource,
    *,
    name: str | None = None,
    media_type: str | None = None,
    pages: Sequence[int] | None = None,
    options: PreprocessOptions | None = None,
) -> Document:
    """Load an image or a PDF as model-ready pages.

    Args:
        source: A path, bytes, a base64 ``data:`` URI, or a PIL image.
        name: How the input is named in messages (default: the path, or a
            generic name).
        media_type: The client's declared type (e.g. ``application/pdf``),
            used only when the content's own signature is not recognised.
        pages: 1-based PDF pages to keep (None: all, up to
            ``options.pdf_max_pages``). For an image only ``[1]`` is valid.
        options: Limits and sizes (default: :class:`PreprocessOptions`).

    Returns:
        The document and its pages.

    Raises:
        InputError: ``unsupported_type``, ``empty_file``, ``too_large``,
            ``not_found``, ``invalid_pages``, or the kinds of
            :func:`~docextract.preprocess.images.load_image` and
            :func:`~docextract.preprocess.pdf.render_pdf_pages`.
    """
    options = options or PreprocessOptions()
    if isinstance(source, Image.Image):
        name = name or "image"
        kind: DocumentKind = "image"
        content: bytes | Image.Image = source
    else:
        name, content = read_source_bytes(source, max_bytes=options.max_bytes, name=name)
        kind = _resolve_kind(content, media_type, name)
    return Document(name, kind, tuple(_LOADERS[kind](content, name, pages, options)))


def sniff_kind(head: bytes) -> DocumentKind | None:
    """The kind of a file from its first bytes (1 KiB is enough), or None."""
    for kind, matches in _SIGNATURES:
        if matches(head):
            return kind
    return None


# --- sniffing ---------------------------------------------------------------

_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")

# Strongest first: a signature at offset 0 beats "%PDF-" found further in
# (an image's metadata may quote it).
_SIGNATURES: tuple[tuple[DocumentKind, Callable[[bytes], bool]], ...] = (
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


def _media_kind(media_type: str | None) -> DocumentKind | None:
    if not media_type:
        return None
    essence = media_type.split(";", 1)[0].strip().lower()
    if essence in ("application/pdf", "application/x-pdf"):
        return "pdf"
    if essence.startswith("image/"):
        return "image"
    return None


def _resolve_kind(data: bytes, media_type: str | None, name: str) -> DocumentKind:
    kind = sniff_kind(data[:1024]) or _media_kind(media_type)
    if kind is not None:
        return kind
    hint = next((what for matches, what in _KNOWN_UNSUPPORTED if matches(data[:64])), None)
    formats = ", ".join(SUPPORTED_IMAGE_FORMATS)
    detail = f"it looks like {hint}" if hint else f"expected a PDF or an image ({formats})"
    raise InputError(f"{name}: unsupported file type: {detail}", kind="unsupported_type")


# --- loaders, one per kind ----------------------------------------------------


def _image_pages(
    content: bytes | Image.Image, name: str, pages: Sequence[int] | None, options: PreprocessOptions
) -> list[Page]:
    if pages is not None and list(pages) != [1]:
        raise InputError(f"{name}: an image has a single page; pages must be [1] or omitted", kind="invalid_pages")
    return [Page(1, load_model_image(content, name=name, options=options), name)]


def load_model_image(content: bytes | Image.Image, *, name: str, options: PreprocessOptions) -> Image.Image:
    """One image, decoded and fitted to the model under ``options`` (size, pixel and budget limits)."""
    return load_image(
        content,
        max_pixels=options.max_pixels,
        min_pixels=options.min_pixels,
        max_image_pixels=options.max_image_pixels,
        max_bytes=options.max_bytes,
        name=name,
    )


def _pdf_pages(
    content: bytes | Image.Image, name: str, pages: Sequence[int] | None, options: PreprocessOptions
) -> list[Page]:
    assert isinstance(content, bytes)
    rendered = render_pdf_pages(
        content,
        dpi=options.pdf_dpi,
        pages=pages,
        max_pages=options.pdf_max_pages,
        renderer=options.pdf_renderer,
        timeout_s=options.pdf_timeout_s,
        max_page_pixels=options.max_image_pixels,
        name=name,
    )
    return [
        Page(page.page_number, resize_to_pixel_budget(page.image, options.max_pixels, options.min_pixels), name)
        for page in rendered
    ]


_LOADERS: dict[
    DocumentKind, Callable[[bytes | Image.Image, str, Sequence[int] | None, PreprocessOptions], list[Page]]
] = {
    "image": _image_pages,
    "pdf": _pdf_pages,
}
