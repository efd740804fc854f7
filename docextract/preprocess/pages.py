"""Pages of a document: which are selected, how they group into prompts, how results are named.

The one place for these rules: the engine (:meth:`ExtractionEngine.extract_document`),
the batch job's expansion of files into rows (:func:`batch.inputs.expand_files`) and every
front door that takes a page selection call these functions, so a page range means the same
thing, and a result has the same id, online and in batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from docextract.config import DOCUMENT, DOCUMENT_MODES, PER_PAGE, DocumentMode
from docextract.errors import InputError

if TYPE_CHECKING:
    from docextract.preprocess.documents import Document, Page
    from docextract.results import InputWarning

__all__ = [
    "PromptGroup",
    "blank_skip_message",
    "check_page_count",
    "group_pages",
    "parse_page_selection",
    "prompt_groups",
    "result_id",
]


def parse_page_selection(text: str) -> list[int]:
    """``"1,3-5"`` -> ``[1, 3, 4, 5]`` (1-based, in the order given, duplicates dropped).

    Raises:
        InputError: ``invalid_pages`` for text that is not a selection.
    """
    pages: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                first, last = (int(x) for x in part.split("-", 1))
                if last < first:
                    raise ValueError
                pages.extend(range(first, last + 1))
            else:
                pages.append(int(part))
    except ValueError:
        raise InputError(f"invalid page selection {text!r}; use e.g. 1,3-5", kind="invalid_pages") from None
    if not pages or min(pages) < 1:
        raise InputError(f"invalid page selection {text!r}: pages start at 1", kind="invalid_pages")
    return list(dict.fromkeys(pages))


def check_page_count(count: int, pages: Sequence[int] | None, max_pages: int | None, *, name: str) -> list[int]:
    """The pages to use from a document of ``count`` pages: ``pages``, or all of them.

    A document longer than ``max_pages`` with no selection is refused rather than cut short.

    Raises:
        InputError: ``too_many_pages``.
    """
    if pages:
        return list(pages)
    if max_pages is not None and count > max_pages:
        raise InputError(
            f"{name}: {count} pages, more than pdf_max_pages ({max_pages}); "
            "select pages with --pages or raise --pdf-max-pages",
            kind="too_many_pages",
        )
    return list(range(1, count + 1))


def group_pages(pages: Sequence[int], mode: DocumentMode) -> list[list[int]]:
    """Page numbers grouped into prompts: one group per page (``per_page``) or one for all
    (``document``). A one-page document is one group either way.

    Raises:
        InputError: ``invalid_mode`` for any other mode.
    """
    if mode not in DOCUMENT_MODES:
        raise InputError(f"unknown document mode {mode!r}; use {PER_PAGE!r} or {DOCUMENT!r}", kind="invalid_mode")
    if mode == DOCUMENT or len(pages) <= 1:
        return [list(pages)]
    return [[n] for n in pages]


def result_id(source: str, pages: Sequence[int]) -> str:
    """Stable result id: ``name``, ``name#page=3`` or ``name#pages=1-4``."""
    pages = list(pages)
    if not pages:
        return source
    if len(pages) == 1:
        return f"{source}#page={pages[0]}"
    if pages == list(range(pages[0], pages[-1] + 1)):
        return f"{source}#pages={pages[0]}-{pages[-1]}"
    return f"{source}#pages={','.join(map(str, pages))}"


@dataclass(frozen=True)
class PromptGroup:
    """The pages of one result, as the engine sends them.

    Attributes:
        id: The result's id (:func:`result_id` of every page in the group).
        pages: The group's page numbers as results name them ([] for a single image).
        sent: The pages to put in the prompt (not those skipped as blank); may be empty.
        warnings: Every page's warnings.
    """

    id: str
    pages: list[int]
    sent: list[Page]
    warnings: list[InputWarning]
    paged: bool

    @property
    def images(self) -> list[Any]:
        return [page.image for page in self.sent]

    @property
    def sent_pages(self) -> list[int]:
        """Page numbers of the prompt's images, for the prompt and the result ([] for an image)."""
        return [page.page_number for page in self.sent] if self.paged else []


def prompt_groups(document: Document, mode: DocumentMode) -> list[PromptGroup]:
    """A loaded document's pages grouped into prompts (:func:`group_pages`)."""
    by_number = {page.page_number: page for page in document.pages}
    groups = []
    for numbers in group_pages(list(by_number), mode):
        pages = [by_number[n] for n in numbers]
        named = numbers if document.paged else []
        groups.append(
            PromptGroup(
                id=result_id(document.name, named),
                pages=named,
                sent=[page for page in pages if page.send],
                warnings=[w for page in pages for w in page.warnings],
                paged=document.paged,
            )
        )
    return groups


def blank_skip_message(result: str) -> str:
    """The ``blank_page`` error of a result whose pages were all skipped as blank."""
    return f"{result}: blank (one uniform colour); not sent to the model (blank_pages=skip)"
