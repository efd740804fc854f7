"""One object from the results of a long document's chunks, under the task's schema.

The deterministic merge (``merge_strategy: deterministic``, the default), rule by rule:

* **Objects** are merged key by key (the schema's property order first), recursively.
* **Arrays** are concatenated in page order. Where two consecutive chunks share pages, the
  longest run of items that ends the earlier chunk's array and starts the later one's (equal
  after whitespace is collapsed) is the overlap read twice: it is kept once, and its pages
  are the shared pages (both chunks saw it, and they share only those). Identical items
  elsewhere are kept: two equal line items on different pages are two line items. With
  ``uniqueItems`` in the schema every repeat is dropped.
* **Scalars** (and values whose type differs between chunks) come from the chunk whose
  non-null value has the highest confidence (:mod:`docextract.confidence`; a value without a
  score ranks below every scored one, the earliest chunk wins a tie). When the chunks' non-null
  values differ, a :class:`~docextract.results.FieldConflict` lists each chunk's value and pages.
* **Sources**: every non-null leaf value records the pages it came from: its chunk's pages, the
  pages of every chunk that gave the same scalar, or the shared pages of an overlap item.

Nothing here checks the merged object: a concatenation can break ``maxItems`` and a chosen
value can break a cross-field rule, so the caller validates it against the full schema and
reports it invalid (:func:`docextract.document_mode.run_document`); nothing is cut to fit.

Pure: data in, data out; no engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from docextract.confidence import json_path
from docextract.results import FieldConflict

__all__ = [
    "ChunkOutput",
    "MergedDocument",
    "describe_chunks",
    "leaf_values",
    "merge_chunks",
    "prompt_sources",
    "value_key",
]

_SPACE = re.compile(r"\s+")
Parts = tuple[str | int, ...]


@dataclass(frozen=True)
class ChunkOutput:
    """What one chunk gave: its pages, its data (None: no usable output) and per-leaf scores."""

    pages: list[int]
    data: Any
    confidence: dict[str, float] = field(default_factory=dict)
    forced: frozenset[str] = frozenset()


@dataclass
class MergedDocument:
    """The merged object and, per leaf path of it, its pages and score; the chunks' disagreements."""

    data: Any = None
    sources: dict[str, list[int]] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    forced: list[str] = field(default_factory=list)
    conflicts: list[FieldConflict] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    chunk: int
    value: Any
    at: Parts  # where the value is in its chunk's data


def leaf_values(data: Any, at: Parts = ()) -> Iterator[tuple[Parts, Any]]:
    """Every non-null leaf of ``data`` with its path parts (empty objects and arrays have none)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaf_values(value, (*at, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from leaf_values(value, (*at, i))
    elif data is not None:
        yield at, data


def prompt_sources(data: Any, pages: Sequence[int]) -> dict[str, list[int]]:
    """Sources of an answer from one prompt: every non-null leaf gets all the prompt's pages.

    The model writes values, not where it read them; a prompt's pages are all that is known."""
    return {json_path(at): sorted(pages) for at, _ in leaf_values(data)}


def value_key(value: Any) -> Any:
    """A hashable form of ``value`` for equality: whitespace collapsed, key order ignored."""
    if isinstance(value, dict):
        return ("{", tuple(sorted((k, value_key(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("[", tuple(value_key(v) for v in value))
    if isinstance(value, str):
        return ("s", _SPACE.sub(" ", value).strip())
    if isinstance(value, bool) or value is None:
        return ("b", value)
    return ("n", value)


def _deref(node: Any, root: Any) -> Any:
    from docextract.schema.refs import follow_refs

    node = follow_refs(node, root)  # an unresolvable $ref says nothing about merging: {} below
    if isinstance(node, dict):  # a nullable value (anyOf [X, null]): the merge reads X
        for branch_key in ("anyOf", "oneOf"):
            branches = [b for b in node.get(branch_key) or [] if _deref(b, root).get("type") != "null"]
            if len(branches) == 1:
                return _deref(branches[0], root)
    return node if isinstance(node, dict) else {}


class _Merger:
    def __init__(self, chunks: Sequence[ChunkOutput], schema: dict[str, Any] | None) -> None:
        self.chunks = chunks
        self.root = schema or {}
        self.out = MergedDocument()

    # -- bookkeeping: one chunk's subtree placed at a path of the merged object -----------------

    def place(self, value: Any, at: Parts, src: Parts, chunk: int, pages: Sequence[int]) -> None:
        info = self.chunks[chunk]
        for sub, _ in leaf_values(value):
            out, origin = json_path((*at, *sub)), json_path((*src, *sub))
            self.out.sources[out] = sorted(set(pages))
            if origin in info.confidence:
                self.out.confidence[out] = info.confidence[origin]
            if origin in info.forced:
                self.out.forced.append(out)

    def score(self, candidate: _Candidate) -> float:
        scores = self.chunks[candidate.chunk].confidence
        leaves = [scores.get(json_path((*candidate.at, *sub))) for sub, _ in leaf_values(candidate.value)]
        return min(leaves) if leaves and all(s is not None for s in leaves) else -1.0  # type: ignore[type-var]

    # -- the rules ----------------------------------------------------------------------------

    def merge(self, candidates: list[_Candidate], at: Parts, schema: dict[str, Any]) -> Any:
        present = [c for c in candidates if c.value is not None]
        if not present:
            return None
        if all(isinstance(c.value, dict) for c in present):
            return self.merge_object(present, at, schema)
        if all(isinstance(c.value, list) for c in present):
            return self.merge_array(present, at, schema)
        return self.merge_scalar(present, at)

    def merge_object(self, present: list[_Candidate], at: Parts, schema: dict[str, Any]) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        keys = list(dict.fromkeys([*(k for k in properties if any(k in c.value for c in present)),
                                   *(k for c in present for k in c.value)]))  # fmt: skip
        merged = {}
        for key in keys:
            sub = [_Candidate(c.chunk, c.value[key], (*c.at, key)) for c in present if key in c.value]
            merged[key] = self.merge(sub, (*at, key), _deref(properties.get(key, {}), self.root))
        return merged

    def merge_array(self, present: list[_Candidate], at: Parts, schema: dict[str, Any]) -> list[Any]:
        # Each kept item: (chunk, value, where in its chunk, the pages it is grounded on).
        items: list[tuple[int, Any, Parts, list[int]]] = []
        previous: _Candidate | None = None
        for c in present:
            pages = self.chunks[c.chunk].pages
            skip = 0
            if previous is not None:
                shared = sorted(set(self.chunks[previous.chunk].pages) & set(pages))
                if shared:
                    skip = _overlap_run(previous.value, c.value)
                    for j in range(len(items) - skip, len(items)):
                        chunk, value, src, _ = items[j]
                        items[j] = (chunk, value, src, shared)
            items.extend((c.chunk, v, (*c.at, i), list(pages)) for i, v in enumerate(c.value) if i >= skip)
            previous = c
        if schema.get("uniqueItems"):
            seen: set[Any] = set()
            unique = []
            for item in items:
                if value_key(item[1]) not in seen:
                    seen.add(value_key(item[1]))
                    unique.append(item)
            items = unique
        for i, (chunk, value, src, pages) in enumerate(items):
            self.place(value, (*at, i), src, chunk, pages)
        return [value for _, value, _, _ in items]

    def merge_scalar(self, present: list[_Candidate], at: Parts) -> Any:
        best = max(present, key=lambda c: (self.score(c), -c.chunk))
        agreeing = [c for c in present if value_key(c.value) == value_key(best.value)]
        pages = sorted({p for c in agreeing for p in self.chunks[c.chunk].pages})
        self.place(best.value, at, best.at, best.chunk, pages)
        if len(agreeing) < len(present):
            self.out.conflicts.append(
                FieldConflict(
                    path=json_path(at),
                    values=[c.value for c in present],
                    pages=[list(self.chunks[c.chunk].pages) for c in present],
                    chosen=best.value,
                )
            )
        return best.value


def _overlap_run(earlier: list[Any], later: list[Any]) -> int:
    """The length of the longest run of items that ends ``earlier`` and starts ``later``."""
    for k in range(min(len(earlier), len(later)), 0, -1):
        if [value_key(v) for v in earlier[-k:]] == [value_key(v) for v in later[:k]]:
            return k
    return 0


def merge_chunks(chunks: Sequence[ChunkOutput], schema: dict[str, Any] | None = None) -> MergedDocument:
    """The chunks' outputs (in page order) merged into one object by the module's rules.

    Chunks without data (failed or unparsable) take no part; the caller reports them.
    """
    merger = _Merger(chunks, schema)
    candidates = [_Candidate(i, c.data, ()) for i, c in enumerate(chunks) if c.data is not None]
    merger.out.data = merger.merge(candidates, (), _deref(schema or {}, schema or {}))
    merger.out.forced = sorted(set(merger.out.forced))
    return merger.out


def describe_chunks(chunks: Sequence[ChunkOutput]) -> str:
    """The chunks' outputs as text for the model merge's prompt: one labelled JSON per chunk."""
    return "\n".join(
        f"Pages {chunk.pages[0]}-{chunk.pages[-1]}: {json.dumps(chunk.data, ensure_ascii=False, separators=(',', ':'))}"
        for chunk in chunks
        if chunk.data is not None and chunk.pages
    )
