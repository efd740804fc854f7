"""Pairing the items of a predicted array with those of the expected array.

Arrays are scored as multisets: invoice line items read in another order are
the same line items. The pairs are the assignment that maximises the total
similarity (the Hungarian method, ``scipy.optimize.linear_sum_assignment``);
an item left without a partner (more items on one side, or only zero
similarity available) is unmatched.

An optimal assignment over every pair needs the whole ``n x m`` matrix:
quadratic in time and memory, too much for a statement of 20,000 rows. So
:func:`match_items` solves it exactly only where it is small:

1. up to :data:`DENSE_CELLS` pairs (500 x 500 items), one optimal assignment
   over the whole matrix: the same pairs as scoring every pair;
2. beyond that, items whose every field reads the same (equal item keys) are
   paired first, in order: a pair of similarity 1, which an optimal
   assignment can always keep when comparisons are exact (equality is
   transitive, so swapping such a pair in never lowers the total). What is
   left is assigned optimally when it is small (the usual case: a long table
   with a few misread rows);
3. else the rest is *blocked*: a predicted item is a candidate for the
   expected items that share one of its field values (values shared by more
   than :data:`BLOCK_LIMIT` items, such as a quantity of 1, make no
   candidates); each connected group of candidates is assigned optimally
   when small, greedily by similarity when not; items still without a
   partner get one last optimal assignment when few enough remain.

Time and memory then grow with the number of items, not their square, for
long arrays (see ``bench/bench_eval.py``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Hashable, Sequence

__all__ = ["BLOCK_LIMIT", "DENSE_CELLS", "Pair", "best_pairs", "match_items"]

#: The largest number of item pairs assigned optimally in one matrix.
DENSE_CELLS = 250_000
#: A field value shared by more items than this does not make candidate pairs.
BLOCK_LIMIT = 32

#: ``(predicted index, expected index, similarity)``.
Pair = tuple[int, int, float]
Block = Callable[[Sequence[int], Sequence[int]], "object"]


def best_pairs(similarity) -> list[tuple[int, int]]:
    """``(row, column)`` pairs of the assignment with the largest total ``similarity``
    (rows: predicted items, columns: expected items); pairs of similarity 0 are left out."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    matrix = np.asarray(similarity, dtype=float)
    if matrix.ndim != 2 or matrix.size == 0:
        return []
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    # A pair with nothing in common scores like two unmatched items, and would only claim an item.
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if matrix[r, c] > 0.0]


def _dense(block: Block, rows: Sequence[int], cols: Sequence[int]) -> list[Pair]:
    if not rows or not cols:
        return []
    matrix = block(rows, cols)
    return [(rows[a], cols[b], float(matrix[a, b])) for a, b in best_pairs(matrix)]


def match_items(
    n: int,
    m: int,
    block: Block,
    item_key: Callable[[bool, int], Hashable] | None = None,
    leaf_keys: Callable[[bool, int], list[Hashable]] | None = None,
) -> list[Pair]:
    """Pairs of ``n`` predicted and ``m`` expected items (see the module docstring).

    ``block(rows, cols)`` gives the similarity matrix of those items; ``item_key(predicted, i)``
    what an item reads as whole; ``leaf_keys(predicted, i)`` its field values (for blocking).
    """
    rows, cols = list(range(n)), list(range(m))
    if n * m <= DENSE_CELLS or item_key is None:
        return _dense(block, rows, cols)
    pairs: list[Pair] = []
    waiting: dict[Hashable, deque[int]] = defaultdict(deque)
    for j in cols:
        waiting[item_key(False, j)].append(j)
    left_p: list[int] = []
    for i in rows:
        queue = waiting.get(item_key(True, i))
        if queue:
            pairs.append((i, queue.popleft(), 1.0))
        else:
            left_p.append(i)
    left_e = sorted(j for queue in waiting.values() for j in queue)
    if len(left_p) * len(left_e) <= DENSE_CELLS or leaf_keys is None:
        return pairs + _dense(block, left_p, left_e)
    blocked = _blocked(block, left_p, left_e, leaf_keys)
    pairs += blocked
    taken_p, taken_e = {i for i, _, _ in blocked}, {j for _, j, _ in blocked}
    rest_p = [i for i in left_p if i not in taken_p]
    rest_e = [j for j in left_e if j not in taken_e]
    if rest_p and rest_e and len(rest_p) * len(rest_e) <= DENSE_CELLS:
        pairs += _dense(block, rest_p, rest_e)
    return pairs


def _blocked(
    block: Block, rows: list[int], cols: list[int], leaf_keys: Callable[[bool, int], list[Hashable]]
) -> list[Pair]:
    """Pairs among candidates that share a field value, group by connected group."""
    postings: dict[Hashable, list[int]] = defaultdict(list)
    for j in cols:
        for key in leaf_keys(False, j):
            postings[key].append(j)
    candidates: dict[int, set[int]] = {}
    for i in rows:
        found: set[int] = set()
        for key in leaf_keys(True, i):
            posting = postings.get(key)
            if posting and len(posting) <= BLOCK_LIMIT:
                found.update(posting)
        if found:
            candidates[i] = found
    # Connected groups of the candidate graph (union-find over expected items).
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for found in candidates.values():
        first = root(min(found))
        for j in found:
            parent[root(j)] = first
    groups: dict[int, tuple[list[int], set[int]]] = {}
    for i, found in candidates.items():
        group = groups.setdefault(root(min(found)), ([], set()))
        group[0].append(i)
        group[1].update(found)
    pairs: list[Pair] = []
    for group_rows, group_cols in groups.values():
        g_cols = sorted(group_cols)
        if len(group_rows) * len(g_cols) <= DENSE_CELLS:
            pairs += _dense(block, group_rows, g_cols)
            continue
        scored = []  # too large to assign optimally: the best candidate pairs first
        for i in group_rows:
            own = sorted(candidates[i])
            for j, s in zip(own, block([i], own)[0], strict=True):
                if s > 0.0:
                    scored.append((-float(s), i, j))
        scored.sort()
        used_p: set[int] = set()
        used_e: set[int] = set()
        for s, i, j in scored:
            if i not in used_p and j not in used_e:
                used_p.add(i)
                used_e.add(j)
                pairs.append((i, j, -s))
    return pairs
