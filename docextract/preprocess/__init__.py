"""Inputs to model-ready pages: sniff the kind, load (images, PDFs), select and group pages.

Modules, in the order data flows through them:

* :mod:`~docextract.preprocess.sources` - a reference (path, bytes, data URI, base64) to bytes;
* :mod:`~docextract.preprocess.images` - decode, EXIF-rotate, RGB, pixel budget, limits;
* :mod:`~docextract.preprocess.pdf` - render PDF pages (pdfium or poppler, bounded, streamed);
* :mod:`~docextract.preprocess.documents` - any input to a :class:`Document` of pages
  (images, multi-frame TIFFs, PDFs), with their warnings (``blank_page``, ``upscaled``);
* :mod:`~docextract.preprocess.pages` - page selection, per-page / document grouping, result ids.

The public names are importable from this package; the submodules load on first use, so
importing one of them (the pdfium worker process imports only its renderer) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Document",
    "Page",
    "check_page_count",
    "group_pages",
    "load_document",
    "load_model_image",
    "load_model_page",
    "parse_page_selection",
    "prompt_groups",
    "result_id",
    "sniff_kind",
]

_HOME = {
    "Document": "documents",
    "Page": "documents",
    "load_document": "documents",
    "load_model_image": "documents",
    "load_model_page": "documents",
    "sniff_kind": "documents",
    "check_page_count": "pages",
    "group_pages": "pages",
    "parse_page_selection": "pages",
    "prompt_groups": "pages",
    "result_id": "pages",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
