"""The chunk plan of document mode: which consecutive pages share a prompt (pure, no engine)."""

from __future__ import annotations

import pytest

from docextract.chunking import chunk_count, plan_chunks
from docextract.errors import InputError


def test_a_document_that_fits_is_one_chunk_whatever_the_overlap():
    assert plan_chunks([1, 2, 3], max_images=4, overlap=2) == [[1, 2, 3]]
    assert plan_chunks([1, 2, 3, 4], max_images=4, overlap=1) == [[1, 2, 3, 4]]


def test_the_image_limit_cuts_chunks_that_share_the_overlap():
    assert plan_chunks(list(range(1, 11)), max_images=4, overlap=1) == [
        [1, 2, 3, 4],
        [4, 5, 6, 7],
        [7, 8, 9, 10],
    ]
    assert plan_chunks(list(range(1, 8)), max_images=3, overlap=0) == [[1, 2, 3], [4, 5, 6], [7]]
    assert plan_chunks([2, 5, 9, 11, 12], max_images=2, overlap=1) == [[2, 5], [5, 9], [9, 11], [11, 12]]


def test_chunk_count_predicts_the_plan():
    for pages in range(1, 45):
        for limit in (1, 2, 4, 8):
            for overlap in (0, 1, 2, 3, 9):
                plan = plan_chunks(list(range(1, pages + 1)), max_images=limit, overlap=overlap)
                assert len(plan) == chunk_count(pages, limit, overlap), (pages, limit, overlap)
                assert [p for chunk in plan for p in chunk][-1] == pages
                assert all(len(chunk) <= limit for chunk in plan)
    assert chunk_count(40, 4, 1) == 13


def test_an_overlap_as_long_as_a_chunk_still_moves_one_page_on():
    assert plan_chunks([1, 2, 3, 4], max_images=2, overlap=5) == [[1, 2], [2, 3], [3, 4]]


def test_the_token_budget_cuts_chunks_before_the_image_limit():
    # 100 tokens of instructions, pages of 300 or 600 tokens, 1000 tokens for the prompt.
    plan = plan_chunks(
        [1, 2, 3, 4, 5],
        max_images=8,
        overlap=1,
        page_tokens=[300, 300, 300, 600, 300],
        base_tokens=100,
        token_budget=1000,
    )
    assert plan == [[1, 2, 3], [3, 4], [4, 5]]


def test_a_page_too_large_for_the_context_alone_is_refused():
    with pytest.raises(InputError) as err:
        plan_chunks([1, 2], max_images=4, page_tokens=[100, 5000], base_tokens=50, token_budget=1000)
    assert err.value.kind == "page_too_large"
    assert "page 2 alone needs 5050 prompt tokens" in err.value.message


def test_no_token_limit_without_a_budget():
    assert plan_chunks([1, 2, 3], max_images=8, page_tokens=[10**6] * 3) == [[1, 2, 3]]
