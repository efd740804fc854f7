"""Per-field confidence from the log-probabilities of the tokens that wrote each value.

What a score is. vLLM applies the grammar's token mask to the logits *before* its sampler
computes log-probabilities (``gpu_model_runner`` calls ``apply_grammar_bitmask`` on the logits
it then hands to ``Sampler``), so in vLLM 0.32 both ``logprobs_mode`` values describe the
model's belief **among the continuations the schema allows**: ``raw_logprobs`` before
temperature and penalties, ``processed_logprobs`` after them (identical for greedy decoding
without penalties). A token the grammar forces (the only one allowed) has probability 1 in
both. Mass the model puts on forbidden tokens is not visible; a value that is valid under the
schema but unlikely to the model still scores low.

A field's score is the product of the probabilities of the tokens that wrote its value: the
probability, under the model and the constraint, of writing exactly this value once the
decoding reached it. Keys, quotes, commas, colons and whitespace are excluded; a token that
writes characters of two values (``5,6`` in ``[5,6]``) counts for both; an empty string is
scored by the token that closed it.

Forced values. The grammar admits every tokenization of an allowed string, so even a value the
schema fixes (``const``, a one-value ``enum``) is written by tokens that are not certain: the
model's probability is spread over the string's segmentations ("rec"+"eipt" or "re"+"ceipt"),
not over other values. Such values are recognised from the schema, scored 1 and listed in
``forced``, as is any value whose every token had probability 1; their score says nothing
about the document.

Positions are exact character offsets in the generated text: each token's text is the text
the detokenizer emitted at its step (multi-byte characters appear with the token that
completes them), so the tokens' texts add up to the output; escapes, numbers split across
tokens and nested arrays (``line_items[2].amount``) map by offsets, never by re-tokenizing.

A random-weight model's scores are meaningless; a real model's must be calibrated on the
user's own labelled sample (``docextract eval`` with truth reports accuracy per confidence bin).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FieldConfidence", "field_confidence", "json_path", "value_spans"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WHITESPACE = " \t\n\r"


class FieldConfidence(BaseModel):
    """Scores of the leaf values of one output."""

    model_config = ConfigDict(extra="forbid")

    scores: dict[str, float] = Field(default_factory=dict, description="JSON path -> score in [0, 1].")
    forced: list[str] = Field(default_factory=list, description="Paths whose value the grammar forced.")

    @property
    def lowest(self) -> float | None:
        return min(self.scores.values()) if self.scores else None


def json_path(parts: Sequence[str | int]) -> str:
    """``["line_items", 2, "amount"]`` -> ``line_items[2].amount`` (the paths of validation errors)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


class _Scanner:
    """A JSON reader that records where each leaf value is written (lenient about raw control
    characters inside strings, as :mod:`docextract.validate` is)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.spans: dict[str, tuple[int, int]] = {}
        self.parts: dict[str, list[str | int]] = {}

    def leaf(self, path: list[str | int], span: tuple[int, int]) -> None:
        self.spans[json_path(path)] = span
        self.parts[json_path(path)] = list(path)

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in _WHITESPACE:
            self.at += 1

    def expect(self, char: str) -> None:
        self.skip()
        if self.text[self.at : self.at + 1] != char:
            raise ValueError(f"expected {char!r} at {self.at}")
        self.at += 1

    def string(self) -> tuple[int, int]:
        """The span of a string's content (``at`` on its opening quote), past its closing quote."""
        start = self.at + 1
        i = start
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                self.at = i + 1
                return start, i
            i += 1
        raise ValueError("unterminated string")

    def value(self, path: list[str | int]) -> None:
        self.skip()
        ch = self.text[self.at : self.at + 1]
        if ch == "{":
            self.at += 1
            self.skip()
            if self.text[self.at : self.at + 1] == "}":
                self.at += 1
                return
            while True:
                self.skip()
                if self.text[self.at : self.at + 1] != '"':
                    raise ValueError(f"expected a key at {self.at}")
                start, end = self.string()
                key = json.loads(f'"{self.text[start:end]}"', strict=False)
                self.expect(":")
                self.value([*path, key])
                self.skip()
                if self.text[self.at : self.at + 1] == ",":
                    self.at += 1
                    continue
                self.expect("}")
                return
        if ch == "[":
            self.at += 1
            self.skip()
            if self.text[self.at : self.at + 1] == "]":
                self.at += 1
                return
            index = 0
            while True:
                self.value([*path, index])
                index += 1
                self.skip()
                if self.text[self.at : self.at + 1] == ",":
                    self.at += 1
                    continue
                self.expect("]")
                return
        if ch == '"':
            start, end = self.string()
            # An empty string is decided by the token that closes it.
            self.leaf(path, (start, end) if end > start else (end, end + 1))
            return
        for literal in ("true", "false", "null"):
            if self.text.startswith(literal, self.at):
                self.leaf(path, (self.at, self.at + len(literal)))
                self.at += len(literal)
                return
        match = _NUMBER.match(self.text, self.at)
        if match is None or match.end() == self.at:
            raise ValueError(f"unexpected {ch!r} at {self.at}")
        self.leaf(path, (self.at, match.end()))
        self.at = match.end()


def _scan(text: str) -> _Scanner | None:
    scanner = _Scanner(text)
    try:
        scanner.value([])
        scanner.skip()
    except (ValueError, IndexError, json.JSONDecodeError):
        return None
    return scanner if scanner.at == len(text) else None


def value_spans(text: str) -> dict[str, tuple[int, int]] | None:
    """Each leaf value's JSON path and ``[start, end)`` character span in ``text``; None when
    ``text`` is not one complete JSON value (an output cut by ``max_tokens``)."""
    scanner = _scan(text)
    return scanner.spans if scanner is not None else None


def field_confidence(
    text: str,
    token_texts: Sequence[str],
    logprobs: Sequence[float | None],
    *,
    keep: Any = None,
    schema: dict[str, Any] | None = None,
) -> FieldConfidence | None:
    """Scores for the leaf values of ``text`` from the tokens that wrote it.

    Args:
        text: The generated text.
        token_texts: Each token's text at its step; they must add up to ``text``.
        logprobs: Each token's log-probability (None where unknown: no score for its values).
        keep: The parsed output mapped back to the user's schema; only paths that exist in it are
            scored (an optional field the model left null and the mapping removed has no score).
        schema: The user's schema: values it fixes (``const``, one-value ``enum``) are forced.

    Returns:
        None when there is nothing to score (not one JSON value, or texts that do not add up).
    """
    if "".join(token_texts) != text or len(token_texts) != len(logprobs):
        return None
    scanner = _scan(text)
    if scanner is None:
        return None
    starts: list[int] = []
    at = 0
    for piece in token_texts:
        starts.append(at)
        at += len(piece)
    result = FieldConfidence()
    kept = _leaf_paths(keep) if keep is not None else None
    fixed = {path for path, parts in scanner.parts.items() if _is_fixed(schema, parts)} if schema else set()
    for path, (start, end) in scanner.spans.items():
        if kept is not None and path not in kept:
            continue
        if schema is not None and path in fixed:
            result.scores[path] = 1.0
            result.forced.append(path)
            continue
        chosen = [
            lp
            for begin, piece, lp in zip(starts, token_texts, logprobs, strict=True)
            if piece and begin < end and begin + len(piece) > start
        ]
        if not chosen or any(lp is None for lp in chosen):
            continue
        total = sum(chosen)  # type: ignore[arg-type]
        result.scores[path] = min(1.0, math.exp(total))
        if all(lp == 0.0 for lp in chosen):
            result.forced.append(path)
    return result


def _leaf_paths(data: Any, path: tuple[str | int, ...] = ()) -> set[str]:
    if isinstance(data, dict):
        return set().union(*(_leaf_paths(v, (*path, k)) for k, v in data.items())) if data else set()
    if isinstance(data, list):
        return set().union(*(_leaf_paths(v, (*path, i)) for i, v in enumerate(data))) if data else set()
    return {json_path(path)}


def _is_fixed(schema: dict[str, Any] | None, parts: Sequence[str | int]) -> bool:
    """Whether ``schema`` admits exactly one value at ``parts`` (``const`` or a one-value ``enum``)."""
    from docextract.schema.refs import follow_refs

    root = schema
    node: Any = schema
    for part in parts:
        node = follow_refs(node, root)
        if not isinstance(node, dict):
            return False
        if isinstance(part, int):
            prefix = node.get("prefixItems")
            if isinstance(prefix, list) and part < len(prefix):
                node = prefix[part]
            else:
                node = node.get("items")
        else:
            props = node.get("properties") or {}
            node = props.get(part, node.get("additionalProperties"))
    node = follow_refs(node, root)
    if not isinstance(node, dict):
        return False
    return "const" in node or (isinstance(node.get("enum"), list) and len(node["enum"]) == 1)

