"""Which pages of a long document go into which prompt: the chunk plan of document mode.

Document mode puts every page in one prompt while they fit: at most
``max_images_per_prompt`` images, and a prompt whose tokens leave ``max_tokens`` of the
context for the answer. A longer document is cut into chunks of consecutive pages, each as
long as both limits allow, each sharing ``overlap`` pages with the next so that an item
written across a page break is read whole in one chunk (:mod:`docextract.merge` drops the
copies the overlap produces). The plan is computed before anything is sent, from each
page's token cost (:func:`docextract.document_mode.page_token_costs` measures it with the
model's own processor).

Pure: no engine, no model; the same inputs always give the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from docextract.errors import InputError

__all__ = ["chunk_count", "plan_chunks"]


def plan_chunks(
    pages: Sequence[int],
    *,
    max_images: int,
    overlap: int = 0,
    page_tokens: Sequence[int] | None = None,
    base_tokens: int = 0,
    token_budget: int | None = None,
) -> list[list[int]]:
    """Consecutive chunks of ``pages``, each filled greedily up to both limits.

    A chunk takes pages while it has fewer than ``max_images`` and ``base_tokens`` plus its
    pages' ``page_tokens`` stay within ``token_budget``. The next chunk starts ``overlap``
    pages before the previous one ended (fewer when the previous chunk was shorter than
    ``overlap + 1`` pages, so every chunk adds at least one new page). A document that fits
    is one chunk, whatever the overlap.

    Args:
        pages: Page numbers in document order.
        max_images: Most pages (images) in one prompt.
        overlap: Pages each chunk shares with the next.
        page_tokens: Each page's prompt tokens (the same length as ``pages``); None: no token limit.
        base_tokens: Tokens of the prompt without its pages (instructions, schema, template).
        token_budget: Most prompt tokens of one chunk (context minus the answer's ``max_tokens``).

    Raises:
        InputError: ``page_too_large``, a page that does not fit a prompt on its own;
            ``invalid_request`` for limits that cannot make progress.
    """
    if max_images < 1:
        raise InputError("max_images_per_prompt must be at least 1", kind="invalid_request")
    if overlap < 0:
        raise InputError("chunk_overlap cannot be negative", kind="invalid_request")
    if page_tokens is not None and len(page_tokens) != len(pages):
        raise InputError("page_tokens must give one count per page", kind="invalid_request")
    pages = list(pages)
    if not pages:
        return [[]]
    costs = list(page_tokens) if page_tokens is not None and token_budget is not None else [0] * len(pages)
    budget = token_budget - base_tokens if page_tokens is not None and token_budget is not None else math.inf
    chunks: list[list[int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < len(pages) and end - start < max_images and used + costs[end] <= budget:
            used += costs[end]
            end += 1
        if end == start:
            raise InputError(
                f"page {pages[start]} alone needs {base_tokens + costs[start]} prompt tokens, more than the "
                f"{token_budget} the context leaves (max_model_len minus max_tokens); lower max_pixels or "
                "raise max_model_len",
                kind="page_too_large",
            )
        chunks.append(pages[start:end])
        if end == len(pages):
            return chunks
        start = max(end - overlap, start + 1)


def chunk_count(page_count: int, max_images: int, overlap: int = 0) -> int:
    """How many chunks :func:`plan_chunks` makes of ``page_count`` pages when only the image
    limit binds: 1 if they fit, else ``1 + ceil((page_count - max_images) / (max_images - overlap))``
    (overlap as used: at most ``max_images - 1``)."""
    if page_count <= max_images:
        return 1
    step = max(1, max_images - overlap)
    return 1 + math.ceil((page_count - max_images) / step)
