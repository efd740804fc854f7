"""How alike two array items are, for many pairs at once: the similarity matrix item matching needs.

The similarity of a predicted and an expected item is the F1 of their fields
(:mod:`docextract.evaluation.scoring`): ``2 * sum(scores of the fields present
on both sides) / (fields present in the prediction + fields present in the
truth)``, 1 when neither has a present field. Scoring every pair field by
field in Python is what made long tables quadratic in time *and* memory (a
result object per field per pair); here each side is read once
(:class:`ItemSide`: per leaf, presence and the value's key, see
:meth:`~docextract.evaluation.comparators.FieldRule.key`) and a block of pairs
is scored with numpy: equal keys for exact fields, rapidfuzz's ``cdist`` for
ANLS strings, a vectorised ``isclose`` for numbers with a tolerance. Arrays
nested inside items are the one part scored pair by pair (they are short).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from docextract.evaluation.comparators import FieldRule, normalize_string
from docextract.evaluation.config import NumberRule
from docextract.evaluation.fields import FieldNode, child_path

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ItemReader", "ItemSide"]

_INVALID = "invalid"


@dataclass
class ItemSide:
    """One side's items, read once: per flat leaf, presence, key, validity; nested arrays as values."""

    values: list[Any]
    present: list[list[bool]] = field(default_factory=list)  # [leaf][item]
    keys: list[list[Hashable]] = field(default_factory=list)  # [leaf][item]; None where absent
    nested: list[list[Any]] = field(default_factory=list)  # [nested array][item]

    def item_key(self, i: int) -> Hashable:
        """All of item ``i``'s keys together: equal item keys are a pair of similarity 1."""
        from docextract.evaluation.values import canonical_json

        return (tuple(k[i] for k in self.keys), tuple(canonical_json(n[i]) for n in self.nested))

    def leaf_keys(self, i: int) -> list[tuple[int, Hashable]]:
        """``(leaf, key)`` of item ``i``'s present leaves (the blocking signature)."""
        return [(f, k[i]) for f, k in enumerate(self.keys) if k[i] is not None]


def _leaves(node: FieldNode, rel: str, flat: list[tuple[str, str]], nested: list[tuple[str, FieldNode]]) -> None:
    if node.kind == "object":
        for key, child in node.properties.items():
            _leaves(child, child_path(rel, key), flat, nested)
    elif node.kind == "array":
        nested.append((rel, node))
    else:
        flat.append((rel, node.kind))


def _get(value: Any, rel: str) -> Any:
    for key in rel.split(".") if rel else ():
        value = value.get(key) if isinstance(value, dict) else None
    return value


class ItemReader:
    """Reads the items of one array path and scores blocks of item pairs (see the module docstring).

    ``rules`` are the leaf rules of the whole schema, ``present`` the scorer's absence test, and
    ``nested_score(node, rel, p, e)`` scores one nested array pair as ``(matched, predicted, expected)``.
    """

    def __init__(
        self,
        node: FieldNode,
        sub_path: str,
        rules: dict[str, FieldRule],
        present: Callable[[Any], bool],
        nested_score: Callable[[FieldNode, str, Any, Any], tuple[float, int, int]],
    ) -> None:
        flat: list[tuple[str, str]] = []
        self.nested_nodes: list[tuple[str, FieldNode]] = []
        _leaves(node, "", flat, self.nested_nodes)
        self.rels = [rel for rel, _ in flat]
        self.rules = [rules[child_path(sub_path, rel) if rel else sub_path] for rel, _ in flat]
        self.present = present
        self.nested_score = nested_score

    def read(self, values: Sequence[Any], *, predicted: bool) -> ItemSide:
        side = ItemSide(list(values))
        for rel, rule in zip(self.rels, self.rules, strict=True):
            leaf = [_get(v, rel) for v in values]
            present = [self.present(v) for v in leaf]
            keys: list[Hashable] = []
            for v, has in zip(leaf, present, strict=True):
                if not has:
                    keys.append(None)
                elif predicted and not rule.valid(v):
                    keys.append((_INVALID, id(v), len(keys)))  # equal to nothing
                else:
                    keys.append(rule.key(v))
            side.present.append(present)
            side.keys.append(keys)
        side.nested = [[_get(v, rel) for v in values] for rel, _ in self.nested_nodes]
        return side

    def block(self, p: ItemSide, e: ItemSide, rows: Sequence[int], cols: Sequence[int]) -> np.ndarray:
        """The similarity of every pair ``(rows[a], cols[b])`` as a ``len(rows) x len(cols)`` matrix."""
        import numpy as np

        rows, cols = list(rows), list(cols)
        matched = np.zeros((len(rows), len(cols)))
        count_p = np.zeros(len(rows))
        count_e = np.zeros(len(cols))
        for f, rule in enumerate(self.rules):
            has_p = np.fromiter((p.present[f][i] for i in rows), bool, len(rows))
            has_e = np.fromiter((e.present[f][j] for j in cols), bool, len(cols))
            count_p += has_p
            count_e += has_e
            if not has_p.any() or not has_e.any():
                continue
            matched += self._field_block(f, rule, p, e, rows, cols) * (has_p[:, None] & has_e[None, :])
        denominator = count_p[:, None] + count_e[None, :]
        for n, (rel, node) in enumerate(self.nested_nodes):
            for a, i in enumerate(rows):
                for b, j in enumerate(cols):
                    m, cp, ce = self.nested_score(node, rel, p.nested[n][i], e.nested[n][j])
                    matched[a, b] += m
                    denominator[a, b] += cp + ce
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator == 0, 1.0, 2.0 * matched / np.maximum(denominator, 1e-300))

    def _field_block(
        self, f: int, rule: FieldRule, p: ItemSide, e: ItemSide, rows: list[int], cols: list[int]
    ) -> np.ndarray:
        import numpy as np

        kp = [p.keys[f][i] for i in rows]
        ke = [e.keys[f][j] for j in cols]
        codes: dict[Hashable, int] = {}
        cp = np.fromiter((-1 if k is None else codes.setdefault(k, len(codes)) for k in kp), np.int64, len(kp))
        ce = np.fromiter((-2 if k is None else codes.setdefault(k, len(codes)) for k in ke), np.int64, len(ke))
        equal = (cp[:, None] == ce[None, :]).astype(float)
        if rule.exact:
            return equal
        valid = np.fromiter((k is not None and k[0] != _INVALID for k in kp), bool, len(kp))
        if isinstance(rule.rule, NumberRule):
            a = np.array([k[1] if k is not None and k[0] == "n" else np.nan for k in kp])
            b = np.array([k[1] if k is not None and k[0] == "n" else np.nan for k in ke])
            tol = np.maximum(rule.rule.abs_tol, rule.rule.rel_tol * np.maximum(np.abs(a)[:, None], np.abs(b)[None, :]))
            close = np.abs(a[:, None] - b[None, :]) <= tol  # nan (a non-number) is never close
            return np.maximum(equal, close * valid[:, None])
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        text_p = [normalize_string(_get(p.values[i], self.rels[f]), rule.rule) if k is not None else "" for i, k in zip(rows, kp, strict=True)]  # fmt: skip
        text_e = [normalize_string(_get(e.values[j], self.rels[f]), rule.rule) if k is not None else "" for j, k in zip(cols, ke, strict=True)]  # fmt: skip
        distance = process.cdist(text_p, text_e, scorer=Levenshtein.normalized_distance)
        score = np.where(distance < rule.rule.anls_threshold, 1.0 - distance, 0.0)
        date_p = np.fromiter((k is not None and k[0] == "d" for k in kp), bool, len(kp))
        date_e = np.fromiter((k is not None and k[0] == "d" for k in ke), bool, len(ke))
        score[date_p[:, None] & date_e[None, :]] = 0.0  # two dates: equal (below) or not, no partial credit
        return np.maximum(equal, score * valid[:, None])
