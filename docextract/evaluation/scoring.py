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

  That is ``nulls: absent`` (the default). With ``nulls: value`` (the
  ``extractbench`` profile) null is a value like any other inside a predicted
  object: an omitted key is an explicit null, both null is a ``tp`` (score 1),
  and one null against a value is a ``mismatch`` (it costs precision *and*
  recall). Items left without a partner, and documents without a usable
  prediction, have no predicted object: there, under either definition,
  present values are ``fp``/``fn`` and nulls ``tn``.

  Its **score** is the comparator's score when both are present (1 or 0 for
  exact comparisons, the ANLS value for ``anls`` strings), 0 for ``fp``,
  ``fn`` and ``mismatch``; ``tn`` has none. With ``invalid_values: wrong`` a
  predicted value its field's schema rejects is a ``mismatch``.
* **Arrays** (``line_items[]``): items are paired (:mod:`docextract.evaluation.matching`)
  on their similarity, or by position for an ``ordered_arrays`` path; a
  paired item's fields are scored against each other, an unpaired predicted
  item's present fields are ``fp`` and an unpaired expected item's present
  fields ``fn``. Items that are themselves absent (``null``) are dropped
  first (locations keep the items' own indexes). For arrays of scalars each
  item is a field instance at ``name[]``.
* The **similarity** of two items is ``2 * sum(scores of fields present on
  both sides) / (fields present in the prediction + fields present in the
  truth)``: the F1 of their fields, with partial credit for ANLS; 1 when
  neither has a present field (:mod:`docextract.evaluation.similarity`).
* **Item counts** per array: predicted items, expected items, and *found*
  items: pairs whose similarity is at least ``item_match_threshold`` (0.5).
  Item precision = found / predicted, recall = found / expected.
* A document is an **exact match** when none of its field instances is
  ``fp``, ``fn`` or ``mismatch``.

A prediction that is missing, null, not valid JSON or not a JSON object is
scored as ``{}``: every present truth value is a false negative. A value of
the wrong shape (a string where the schema has an object) is read as absent
for an object, as a one-item list for an array. Each field instance keeps the
path of its predicted value (``line_items[2].amount``, the syntax of
validation errors and of per-field confidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from docextract.errors import DocExtractError
from docextract.evaluation.comparators import FieldRule, field_rules, is_blank
from docextract.evaluation.config import EvalConfig
from docextract.evaluation.fields import FieldNode, array_paths, child_path, item_path, leaf_fields, leaf_schemas
from docextract.evaluation.matching import Pair, match_items
from docextract.evaluation.similarity import ItemReader

__all__ = ["DocumentScore", "DocumentScorer", "FieldResult", "ItemCounts", "Outcome"]

Outcome = Literal["tp", "mismatch", "fp", "fn", "tn"]


@dataclass(frozen=True)
class FieldResult:
    """One field instance: its path (``line_items[].amount``), where it is in the document
    (``line_items[t1,p0].amount``: expected item 1 paired with predicted item 0; ``[t2]`` or
    ``[p3]`` for an unpaired item), the outcome, the score, both values, and the path of the
    predicted value (``line_items[0].amount``; None where nothing was predicted there)."""

    path: str
    location: str
    outcome: Outcome
    score: float | None
    predicted: Any
    expected: Any
    predicted_path: str | None = None


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


def _index(path: str | None, i: int) -> str | None:
    return None if path is None else f"{path}[{i}]"


def _child(path: str | None, key: str) -> str | None:
    return None if path is None else child_path(path, key)


class DocumentScorer:
    """Scores predicted against expected documents for one schema and one :class:`EvalConfig`."""

    def __init__(self, tree: FieldNode, config: EvalConfig, schema: dict[str, Any] | None = None) -> None:
        self.tree = tree
        self.config = config
        leaves = leaf_fields(tree)
        arrays = [p[:-2] for p in array_paths(tree)]
        known = set(arrays) | {p for p, kind in leaves.items() if kind == "json"}
        ordered = {p.removesuffix("[]") for p in config.ordered_arrays}
        unknown = sorted(ordered - known)
        if unknown:
            raise DocExtractError(
                f"evaluation config: ordered_arrays: no array {', '.join(unknown)} in the task schema; "
                f"arrays: {', '.join(sorted(known)) or '(none)'}"
            )
        self.ordered = frozenset(ordered)
        json_ordered = {p for p, kind in leaves.items() if kind == "json" and p in ordered}
        json_ordered |= {p for p, s in _ordered_leaves(tree).items() if s}
        self.rules: dict[str, FieldRule] = field_rules(
            leaves, config, leaf_schemas(tree), schema, frozenset(json_ordered)
        )
        self._readers: dict[str, ItemReader] = {}

    def score(self, predicted: Any, expected: Any) -> DocumentScore:
        """Score one document; ``predicted`` that is not an object scores as ``{}``, unpaired."""
        if isinstance(predicted, dict):
            return self._node(self.tree, "", "", predicted, expected, "")
        return self._node(self.tree, "", "", {}, expected, None, paired=False)

    def _present(self, value: Any) -> bool:
        return value is not None and not (self.config.blank_is_absent and is_blank(value))

    def _node(
        self,
        node: FieldNode,
        path: str,
        location: str,
        predicted: Any,
        expected: Any,
        where: str | None,
        *,
        paired: bool = True,
    ) -> DocumentScore:
        """``where``: the predicted value's path (None: nothing predicted here); ``paired``: False in an
        item without a partner or a document without a usable prediction."""
        if node.kind == "object":
            out = DocumentScore()
            p = predicted if isinstance(predicted, dict) else {}
            e = expected if isinstance(expected, dict) else {}
            for key, child in node.properties.items():
                sub_path, sub_location = child_path(path, key), child_path(location, key)
                out.extend(
                    self._node(child, sub_path, sub_location, p.get(key), e.get(key), _child(where, key), paired=paired)
                )
            return out
        if node.kind == "array":
            return self._array(node, path, location, predicted, expected, where)
        result = self._leaf(path or "(root)", location or "(root)", predicted, expected, where, paired)
        return DocumentScore(fields=[result])

    def _leaf(
        self, path: str, location: str, predicted: Any, expected: Any, where: str | None, paired: bool
    ) -> FieldResult:
        has_p, has_e = self._present(predicted), self._present(expected)
        as_values = self.config.nulls == "value" and paired
        if not has_p and not has_e:
            if as_values:  # a correct null is credited
                return FieldResult(path, location, "tp", 1.0, predicted, expected, where)
            return FieldResult(path, location, "tn", None, predicted, expected, where)
        if as_values and has_p != has_e:  # null against a value: wrong in precision and recall
            return FieldResult(path, location, "mismatch", 0.0, predicted, expected, where)
        if not has_e:
            return FieldResult(path, location, "fp", 0.0, predicted, expected, where)
        if not has_p:
            return FieldResult(path, location, "fn", 0.0, predicted, expected, where)
        comparison = self.rules[path].judge(predicted, expected)
        outcome = "tp" if comparison.match else "mismatch"
        return FieldResult(path, location, outcome, comparison.score, predicted, expected, where)

    def _items(self, value: Any) -> list[tuple[int, Any]]:
        if value is None:
            return []
        values = value if isinstance(value, list) else [value]
        return [(i, v) for i, v in enumerate(values) if self._present(v)]

    def _reader(self, node: FieldNode, sub_path: str) -> ItemReader:
        reader = self._readers.get(sub_path)
        if reader is None:
            reader = ItemReader(node, sub_path, self.rules, self._present, self._nested_similarity(sub_path))
            self._readers[sub_path] = reader
        return reader

    def _nested_similarity(self, sub_path: str):
        def score(node: FieldNode, rel: str, p: Any, e: Any) -> tuple[float, int, int]:
            path = child_path(sub_path, rel) if rel else sub_path
            fields = self._array(node, path, "", p, e, "").fields
            both = [r for r in fields if self._present(r.predicted) and self._present(r.expected)]
            matched = sum(r.score or 0.0 for r in both)
            return (
                matched,
                sum(self._present(r.predicted) for r in fields),
                sum(self._present(r.expected) for r in fields),
            )

        return score

    def pairs(self, node: FieldNode, sub_path: str, p_values: list[Any], e_values: list[Any]) -> list[Pair]:
        """The item pairs of one array (indexes into ``p_values`` and ``e_values``) with their similarity."""
        reader = self._reader(node, sub_path)
        p, e = reader.read(p_values, predicted=True), reader.read(e_values, predicted=False)
        if sub_path[:-2] in self.ordered:
            n = min(len(p_values), len(e_values))
            matrix = [reader.block(p, e, [i], [i])[0, 0] for i in range(n)]
            return [(i, i, float(s)) for i, s in enumerate(matrix)]
        return match_items(
            len(p_values),
            len(e_values),
            lambda rows, cols: reader.block(p, e, rows, cols),
            lambda predicted, i: (p if predicted else e).item_key(i),
            lambda predicted, i: (p if predicted else e).leaf_keys(i),
        )

    def _array(
        self, node: FieldNode, path: str, location: str, predicted: Any, expected: Any, where: str | None
    ) -> DocumentScore:
        items_node = node.items or FieldNode("json")
        sub_path = item_path(path)
        p_items, e_items = self._items(predicted), self._items(expected)
        pairs = self.pairs(items_node, sub_path, [v for _, v in p_items], [v for _, v in e_items])
        out = DocumentScore()
        found = 0
        for i, j, similarity in pairs:
            (pi, p), (ej, e) = p_items[i], e_items[j]
            found += similarity >= self.config.item_match_threshold
            out.extend(self._node(items_node, sub_path, f"{location}[t{ej},p{pi}]", p, e, _index(where, pi)))
        paired_p, paired_e = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
        for i, (pi, p) in enumerate(p_items):
            if i not in paired_p:
                out.extend(
                    self._node(items_node, sub_path, f"{location}[p{pi}]", p, None, _index(where, pi), paired=False)
                )
        for j, (ej, e) in enumerate(e_items):
            if j not in paired_e:
                out.extend(self._node(items_node, sub_path, f"{location}[t{ej}]", None, e, None, paired=False))
        out.items.insert(0, ItemCounts(sub_path, len(p_items), len(e_items), found))
        return out


def _ordered_leaves(node: FieldNode, prefix: str = "") -> dict[str, bool]:
    """Leaf path -> whether the schema makes it a tuple (``prefixItems``): lists in order."""
    out: dict[str, bool] = {}
    if node.kind == "object":
        for key, child in node.properties.items():
            out.update(_ordered_leaves(child, child_path(prefix, key)))
    elif node.kind == "array":
        out.update(_ordered_leaves(node.items or FieldNode("json"), item_path(prefix)))
    else:
        out[prefix or "(root)"] = node.ordered
    return out
