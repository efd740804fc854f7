"""One pass of the rules table (:data:`~docextract.schema.rules.RULES`) over a normalised
schema, for one backend: the engine schema keeps what the backend enforces, the rest is left
out and reported (:class:`CoverageEntry`). The schema compiler
(:mod:`.compiler`) runs it once per backend it tries.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from docextract.errors import SchemaError
from docextract.schema.check import _compile_with_backend
from docextract.schema.refs import resolve_ref
from docextract.schema.rules import (
    ANNOTATION,
    APPROXIMATE_FORMATS,
    ENFORCED,
    FORMATS,
    GUIDANCE_NUMBER_LIMIT,
    RULE_BY_KEYWORD,
    VALIDATED,
    XGRAMMAR_INT_LIMIT,
    Status,
)

__all__ = ["CoverageEntry", "RuleApplier", "pattern_error"]

_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
#: A lookahead or lookbehind: xgrammar 0.2.8 compiles it and ignores it (``^(?!abc)[a-z]{3}$``
#: accepts "abc"), so it cannot be called enforced there.
_LOOKAROUND = re.compile(r"\(\?<?[=!]")


class CoverageEntry(BaseModel):
    """What happens to one keyword at one JSON path."""

    path: str = Field(description="JSON pointer of the sub-schema, '#' for the root.")
    keyword: str
    status: Status
    reason: str = ""


@lru_cache(maxsize=4096)
def pattern_error(pattern: str, backend: str) -> str | None:
    try:
        _compile_with_backend({"type": "string", "pattern": pattern}, backend)  # type: ignore[arg-type]
    except SchemaError as exc:
        return str(exc)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RuleApplier:
    """One pass of :data:`RULES` over a normalised schema: the relaxed schema and the report."""

    def __init__(self, root: dict[str, Any], backend: str) -> None:
        import jsonschema

        self.root = root
        self.backend = backend
        self.entries: list[CoverageEntry] = []
        #: Why the backend's own compiler refused part of the schema (first reason), if it did.
        self.compile_refusal: str | None = None
        self.checked_formats = frozenset(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)

    def add(self, path: str, keyword: str, status: Status, reason: str = "") -> None:
        self.entries.append(CoverageEntry(path=path, keyword=keyword, status=status, reason=reason))

    def __call__(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        for _ in range(8):  # a merged allOf may bring another one
            branches = node.get("allOf")
            if self.backend == "xgrammar" and isinstance(branches, list) and len(branches) >= 2:
                rule = RULE_BY_KEYWORD["allOf"]
                self.add(path, "allOf", VALIDATED, rule.why)
                node = self._merge_all_of(node, branches)
            else:
                break
        self._apply(node, path)
        return node

    def _merge_all_of(self, node: dict[str, Any], branches: list[Any]) -> dict[str, Any]:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for branch in branches:
            seen: set[str] = set()
            while isinstance(branch, dict) and isinstance(branch.get("$ref"), str) and branch["$ref"] not in seen:
                seen.add(branch["$ref"])
                target = resolve_ref(branch["$ref"], self.root)
                branch = (
                    {**target, **{k: v for k, v in branch.items() if k != "$ref"}} if isinstance(target, dict) else None
                )
            if not isinstance(branch, dict):
                continue
            for key, value in branch.items():
                if key == "properties" and isinstance(value, dict):
                    props = dict(merged.get("properties") or {})
                    for name, sub in value.items():
                        props.setdefault(name, sub)
                    merged["properties"] = props
                elif key == "required" and isinstance(value, list):
                    merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
                elif key in ("$defs", "definitions", "title", "description", "$id", "$schema", "$comment"):
                    continue
                else:
                    merged.setdefault(key, value)
        return merged

    def _apply(self, node: dict[str, Any], path: str) -> None:
        from docextract.schema.check import schema_types

        types = schema_types(node)
        backend = self.backend
        fmt = node.get("format")
        format_enforced = isinstance(fmt, str) and fmt in FORMATS[backend]
        for key in list(node):
            if key == "format":
                if format_enforced and fmt in APPROXIMATE_FORMATS:
                    self.add(path, key, VALIDATED, f"the grammar enforces the shape of {fmt!r}, not its calendar")
                    continue
                if format_enforced:
                    self.add(path, key, ENFORCED, f"format {fmt!r}")
                    continue
                del node[key]
                if fmt in self.checked_formats:
                    self.add(path, key, VALIDATED, f"{backend} has no grammar for format {fmt!r}; checked after")
                else:
                    self.add(
                        path,
                        key,
                        ANNOTATION,
                        f"format {fmt!r}: no grammar in {backend} and no checker in jsonschema here; "
                        "an annotation, as JSON Schema allows",
                    )
                continue
            rule = RULE_BY_KEYWORD.get(key)
            if rule is None:
                continue
            status, reason = rule.status(backend), rule.why
            value = node[key]
            if key in ("minLength", "maxLength") and backend == "xgrammar" and ("pattern" in node or format_enforced):
                status, reason = VALIDATED, "xgrammar cannot combine a length bound with pattern/format"
            elif key == "pattern" and isinstance(value, str):
                error = pattern_error(value, backend)
                if not error and backend == "xgrammar" and _LOOKAROUND.search(value):
                    error = "xgrammar ignores lookarounds"
                if error:
                    status, reason = (
                        VALIDATED,
                        f"{backend} cannot compile this pattern ({error.split(': ', 1)[-1][:160]})",
                    )
                    self.compile_refusal = self.compile_refusal or f"{path}: {reason}"
            elif key in _BOUNDS and _is_number(value):
                if backend == "xgrammar" and "integer" in types and abs(value) > XGRAMMAR_INT_LIMIT:
                    status, reason = VALIDATED, "integer bound beyond xgrammar's limit (±2^53)"
                    self.compile_refusal = self.compile_refusal or f"{path}: {reason}"
                elif backend == "guidance" and "integer" not in types and abs(value) > GUIDANCE_NUMBER_LIMIT:
                    status, reason = VALIDATED, f"number bound beyond guidance's limit (±{GUIDANCE_NUMBER_LIMIT:g})"
                    self.compile_refusal = self.compile_refusal or f"{path}: {reason}"
            elif key == "allOf" and isinstance(value, list) and len(value) < 2:
                status, reason = ENFORCED, ""
            if status == ENFORCED:
                self.add(path, key, ENFORCED, reason)
                continue
            self.add(path, key, status, reason or "left out of the engine schema; checked after generation")
            if key == "oneOf" and isinstance(value, list):
                del node[key]
                if "anyOf" in node:
                    node["allOf"] = [*node.get("allOf", []), {"anyOf": value}]
                else:
                    node["anyOf"] = value
            else:
                del node[key]
