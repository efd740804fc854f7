"""Pairing the items of a predicted array with those of the expected array, by best assignment.

Arrays are scored as sets: invoice line items read in another order are the
same line items. The pairs are the assignment that maximises the total
similarity (the Hungarian method, ``scipy.optimize.linear_sum_assignment``);
an item left without a partner (more items on one side, or only zero
similarity available) is unmatched.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["best_pairs"]


def best_pairs(similarity: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """``(row, column)`` pairs of the assignment with the largest total ``similarity``
    (rows: predicted items, columns: expected items); pairs of similarity 0 are left out."""
    if not similarity or not similarity[0]:
        return []
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    matrix = np.asarray(similarity, dtype=float)
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    # A pair with nothing in common scores like two unmatched items, and would only claim an item.
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if matrix[r, c] > 0.0]
