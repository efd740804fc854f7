"""Scoring one document: every field instance gets an outcome, every array its item counts.

Definitions (the report's figures are sums and ratios of these):

* A value is **present** unless it is ``null``, absent, or (``blank_is_absent``,
  the default) a string of whitespace only. Null and absent are the same.
* Each **field instance** (one leaf path in one document, or in one item of an
  array) has one outcome:

  - ``tp``: both present and the comparator says they match;
  - ``mismatch``: both present, no match; it counts as one false positive
    *and* one false negative (a wrong value is both a wrong prediction and a
    missed truth), as in the usual key-information-extraction F1;
  - ``fp``: predicted present, expected absent (a value the truth does not have);
  - ``fn``: expected present, predicted absent;
  - ``tn``: both absent; counted for accuracy, never for precision, recall or F1.

  Its **score** is the comparator's score when both are present (1 or 0 for
  exact comparisons, the ANLS value for ``anls`` strings), 0 for ``fp`` and
  ``fn``; ``tn`` has none.
* **Arrays** (``line_items[]``): items are paired by best assignment
  (:mod:`docextract.evaluation.matching`) on their similarity; a paired
  item's fields are scored against each other, an unpaired predicted item's
  present fields are ``fp`` and an unpaired expected item's present fields
  ``fn``. Items that are themselves absent (``null``) are dropped first. For
  arrays of scalars each item is a field instance at ``name[]``.
* The **similarity** of two items (or documents) is
  ``2 * sum(scores of fields present on both sides) / (fields present in the
  prediction + fields present in the truth)``: the F1 of their fields, with
  partial credit for ANLS; 1 when neither has a present field.
* **Item counts** per array: predicted items, expected items, and *found*
  items: pairs whose similarity is at least ``item_match_threshold`` (0.5).
  Item precision = found / predicted, recall = found / expected.
* A document is an **exact match** when none of its field instances is
  ``fp``, ``fn`` or ``mismatch``.

A prediction that is missing, null, not valid JSON or not a JSON object is
scored as ``{}``: every present truth value is a false negative. A value of
the wrong shape (a string where the schema has an object) is read as absent
for an object, as a one-item list for an array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from docextract.evaluation.comparators import FieldRule, field_rules, is_blank
from docextract.evaluation.config import EvalConfig
from docextract.evaluation.fields import FieldNode, child_path, item_path, leaf_fields
from docextract.evaluation.matching import best_pairs

__all__ = ["DocumentScore", "DocumentScorer", "FieldResult", "ItemCounts", "Outcome"]

Outcome = Literal["tp", "mismatch", "fp", "fn", "tn"]


@dataclass(frozen=True)
class FieldResult:
    """One field instance: its path (``line_items[].amount``), where it is in the document
    (``line_items[t1,p0].amount``: expected item 1 paired with predicted item 0; ``[t2]`` or
    ``[p3]`` for an unpaired item), the outcome, the score and both values."""

    path: str
    location: str
    outcome: Outcome
    score: float | None
    predicted: Any
    expected: Any


@dataclass(frozen=True)
class ItemCounts:
    """One array in one document (or item): how many items each side has and how many were found."""

    path: str
    predicted: int
    expected: int
    found: int


@dataclass
class DocumentScore:
    """Everything one document (or one pair of items) contributes to the report."""

    fields: list[FieldResult] = field(default_factory=list)
    items: list[ItemCounts] = field(default_factory=list)

    def extend(self, other: DocumentScore) -> None:
        self.fields.extend(other.fields)
        self.items.extend(other.items)

    @property
    def exact(self) -> bool:
        return all(r.outcome in ("tp", "tn") for r in self.fields)

    @property
    def similarity(self) -> float:
        predicted = expected = 0
        matched = 0.0
        for r in self.fields:
            if r.outcome in ("tp", "mismatch"):
                predicted += 1
                expected += 1
                matched += r.score or 0.0
            elif r.outcome == "fp":
                predicted += 1
            elif r.outcome == "fn":
                expected += 1
        return 1.0 if predicted + expected == 0 else 2.0 * matched / (predicted + expected)


class DocumentScorer:
    """Scores predicted against expected documents for one schema and one :class:`EvalConfig`."""

    def __init__(self, tree: FieldNode, config: EvalConfig) -> None:
        self.tree = tree
        self.config = config
        self.rules: dict[str, FieldRule] = field_rules(leaf_fields(tree), config)

    def score(self, predicted: Any, expected: Any) -> DocumentScore:
        """Score one document; ``predicted`` that is not an object scores as ``{}``."""
        return self._node(self.tree, "", "", predicted if isinstance(predicted, dict) else {}, expected)

    def _present(self, value: Any) -> bool:
        return value is not None and not (self.config.blank_is_absent and is_blank(value))

    def _node(self, node: FieldNode, path: str, location: str, predicted: Any, expected: Any) -> DocumentScore:
        if node.kind == "object":
            out = DocumentScore()
            p = predicted if isinstance(predicted, dict) else {}
            e = expected if isinstance(expected, dict) else {}
            for key, child in node.properties.items():
                sub_path, sub_location = child_path(path, key), child_path(location, key)
                out.extend(self._node(child, sub_path, sub_location, p.get(key), e.get(key)))
            return out
        if node.kind == "array":
            return self._array(node, path, location, predicted, expected)
        return DocumentScore(fields=[self._leaf(path or "(root)", location or "(root)", predicted, expected)])

    def _leaf(self, path: str, location: str, predicted: Any, expected: Any) -> FieldResult:
        has_p, has_e = self._present(predicted), self._present(expected)
        if not has_p and not has_e:
            return FieldResult(path, location, "tn", None, predicted, expected)
        if not has_e:
            return FieldResult(path, location, "fp", 0.0, predicted, expected)
        if not has_p:
            return FieldResult(path, location, "fn", 0.0, predicted, expected)
        comparison = self.rules[path].compare(predicted, expected)
        return FieldResult(
            path, location, "tp" if comparison.match else "mismatch", comparison.score, predicted, expected
        )

    def _items(self, value: Any) -> list[Any]:
        if value is None:
            return []
        values = value if isinstance(value, list) else [value]
        return [v for v in values if self._present(v)]

    def _array(self, node: FieldNode, path: str, location: str, predicted: Any, expected: Any) -> DocumentScore:
        items_node = node.items or FieldNode("json")
        sub_path = item_path(path)
        p_items, e_items = self._items(predicted), self._items(expected)
        # Every pair is scored once; the assignment then keeps the best pairs' scores.
        pair_scores = [
            [self._node(items_node, sub_path, f"{location}[t{j},p{i}]", p, e) for j, e in enumerate(e_items)]
            for i, p in enumerate(p_items)
        ]
        pairs = best_pairs([[s.similarity for s in row] for row in pair_scores])
        out = DocumentScore()
        found = 0
        for i, j in pairs:
            pair = pair_scores[i][j]
            found += pair.similarity >= self.config.item_match_threshold
            out.extend(pair)
        paired_p, paired_e = {i for i, _ in pairs}, {j for _, j in pairs}
        for i, p in enumerate(p_items):
            if i not in paired_p:
                out.extend(self._node(items_node, sub_path, f"{location}[p{i}]", p, None))
        for j, e in enumerate(e_items):
            if j not in paired_e:
                out.extend(self._node(items_node, sub_path, f"{location}[t{j}]", None, e))
        out.items.insert(0, ItemCounts(sub_path, len(p_items), len(e_items), found))
        return out
