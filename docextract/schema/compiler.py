"""The schema compiler: a user's JSON Schema in; out, the engine schema for the backend that
will run it and a coverage report (each keyword at each JSON path: enforced by the grammar,
validated after generation, an annotation, or refused, with why). Every door builds its
tasks through it (:func:`docextract.tasks.TaskSpec.create`).

Order of work:

1. :func:`~docextract.schema.admission.admit`: refuse only what is not a JSON Schema in any
   draft (04 to 2020-12), what nests deeper than vLLM allows, and a ``$ref`` that cannot be
   resolved offline; bundle the documents other references name, from the schema store
   (:mod:`~docextract.schema.bundle`), so the rest reads one self-contained schema.
2. :func:`~docextract.schema.normalize.normalize` (drafts, root ``$ref``).
3. Apply :data:`~docextract.schema.rules.RULES`: keep what the backend enforces, leave the
   rest out of the engine schema (it is validated after), merge a multi-branch ``allOf`` for
   xgrammar, send ``oneOf`` as ``anyOf``.
4. :func:`~docextract.schema.transform.engine_schema` (optional fields nullable).
5. Compile with the backend's own compiler. If it refuses, fall back: first a relaxed engine
   schema without value constraints (patterns, formats, bounds, lengths, counts), then an
   unconstrained one (any JSON). The user's schema is always validated in full after.

Why no fallback to the *other* backend: vLLM 0.32 builds one grammar backend per engine, on
its first structured request (``StructuredOutputManager.grammar_init``: "We do NOT support
different backends on a per-request basis in V1"), and refuses a request-level backend that
differs from the engine's (``SamplingParams._validate_structured_outputs``). A request
cannot be sent to guidance on an xgrammar engine, so the fallback relaxes the schema for
the engine's backend instead; ``docextract schema check --structured-output-backend`` tells
which backend would enforce more.

Reports are cached by (schema, backend, schema store): a schema sent again is not compiled again (vLLM
caches the compiled grammar on its side too).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field

from docextract.errors import SchemaError
from docextract.schema.admission import Refused, admit
from docextract.schema.check import _compile_with_backend, find_unsupported_features
from docextract.schema.normalize import map_subschemas, normalize
from docextract.schema.refs import resolve_ref
from docextract.schema.rules import (
    ANNOTATION,
    APPROXIMATE_FORMATS,
    BACKENDS,
    ENFORCED,
    FORMATS,
    GUIDANCE_NUMBER_LIMIT,
    REFUSED,
    RULE_BY_KEYWORD,
    VALIDATED,
    XGRAMMAR_INT_LIMIT,
    Status,
)
from docextract.schema.store import load_store
from docextract.schema.transform import engine_schema as optional_to_nullable

__all__ = ["CoverageEntry", "SchemaReport", "check_coverage", "compile_schema", "clear_cache"]

#: Value constraints a relaxed engine schema leaves out when the backend refuses the full one.
_VALUE_CONSTRAINTS = frozenset(
    {
        "pattern",
        "format",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    }
)
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


class CoverageEntry(BaseModel):
    """What happens to one keyword at one JSON path."""

    path: str = Field(description="JSON pointer of the sub-schema, '#' for the root.")
    keyword: str
    status: Status
    reason: str = ""


class SchemaReport(BaseModel):
    """The compiler's answer for one schema and one backend."""

    backend: str
    accepted: bool
    refused_reason: str | None = None
    draft: str | None = Field(default=None, description="The draft the schema is read and validated as.")
    fallback: Literal["relaxed", "unconstrained"] | None = Field(
        default=None, description="Set when the backend refused the full engine schema."
    )
    coverage: list[CoverageEntry] = Field(default_factory=list)
    engine_schema: Any | None = Field(default=None, description="The schema sent to vLLM.")
    bundled: list[str] = Field(
        default_factory=list, description="URIs of the schema-store documents bundled under $defs."
    )
    schema_: Any | None = Field(
        default=None,
        exclude=True,
        description="The user's schema, self-contained (documents bundled); what outputs are validated against.",
    )
    compile_ms: float = 0.0

    @property
    def validated_after(self) -> list[str]:
        """``"<path>: <keyword>"`` for every keyword checked only after generation."""
        return [f"{e.path}: {e.keyword}" for e in self.coverage if e.status == VALIDATED]

    def counts(self) -> dict[str, int]:
        out = {ENFORCED: 0, VALIDATED: 0, ANNOTATION: 0, REFUSED: 0}
        for entry in self.coverage:
            out[entry.status] += 1
        return out


_cache: OrderedDict[tuple[str, str, tuple[str, ...]], SchemaReport] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 512


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def check_coverage(schema: Any, backend: str = "xgrammar", schema_store: Sequence[str] | None = None) -> SchemaReport:
    """The coverage report of ``schema`` for ``backend``; never raises for a bad schema
    (the report says ``accepted: false`` and why). References to other documents are
    resolved from ``schema_store`` (paths, :mod:`docextract.schema.store`). Cached."""
    if backend not in BACKENDS:
        raise SchemaError(f"unknown structured-output backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    store_key = tuple(str(p) for p in schema_store or ())
    try:
        key = (json.dumps(schema, sort_keys=True), backend, store_key)
    except (TypeError, ValueError) as exc:
        return SchemaReport(backend=backend, accepted=False, refused_reason=f"not JSON: {exc}")
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    started = time.perf_counter()
    report = _build(schema, backend, store_key)
    report.compile_ms = round((time.perf_counter() - started) * 1000, 3)
    with _cache_lock:
        _cache[key] = report
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return report


def compile_schema(schema: Any, backend: str = "xgrammar", schema_store: Sequence[str] | None = None) -> SchemaReport:
    """:func:`check_coverage`, raising for a refused schema.

    Raises:
        SchemaError: the schema is not a usable JSON Schema (the message says where and why).
    """
    report = check_coverage(schema, backend, schema_store)
    if not report.accepted:
        raise SchemaError(report.refused_reason or "the schema is refused")
    return report


def _refused(backend: str, reason: str, draft: str | None = None) -> SchemaReport:
    entry = CoverageEntry(path="#", keyword="(schema)", status=REFUSED, reason=reason)
    return SchemaReport(backend=backend, accepted=False, refused_reason=reason, draft=draft, coverage=[entry])


@lru_cache(maxsize=4096)
def _pattern_error(pattern: str, backend: str) -> str | None:
    try:
        _compile_with_backend({"type": "string", "pattern": pattern}, backend)  # type: ignore[arg-type]
    except SchemaError as exc:
        return str(exc)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _RuleApplier:
    """One pass of :data:`RULES` over a normalised schema: the relaxed schema and the report."""

    def __init__(self, root: dict[str, Any], backend: str) -> None:
        import jsonschema

        self.root = root
        self.backend = backend
        self.entries: list[CoverageEntry] = []
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
                error = _pattern_error(value, backend)
                if error:
                    status, reason = (
                        VALIDATED,
                        f"{backend} cannot compile this pattern ({error.split(': ', 1)[-1][:160]})",
                    )
            elif key in _BOUNDS and _is_number(value):
                if backend == "xgrammar" and "integer" in types and abs(value) > XGRAMMAR_INT_LIMIT:
                    status, reason = VALIDATED, "integer bound beyond xgrammar's limit (±2^53)"
                elif backend == "guidance" and "integer" not in types and abs(value) > GUIDANCE_NUMBER_LIMIT:
                    status, reason = VALIDATED, f"number bound beyond guidance's limit (±{GUIDANCE_NUMBER_LIMIT:g})"
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


def _strip(node: Any, keywords: frozenset[str]) -> Any:
    return map_subschemas(node, lambda n, _p: {k: v for k, v in n.items() if k not in keywords})


def _backend_error(engine: Any, backend: str) -> str | None:
    if isinstance(engine, dict):
        problems = find_unsupported_features(engine, backend)  # type: ignore[arg-type]
        if problems:
            return f"vLLM would refuse it: {problems[0]}"
    try:
        _compile_with_backend(engine, backend)  # type: ignore[arg-type]
    except SchemaError as exc:
        return str(exc)
    return None


def _build(schema: Any, backend: str, schema_store: tuple[str, ...]) -> SchemaReport:
    if schema is True:
        schema = {}
    if not isinstance(schema, dict):
        return _refused(backend, f"a JSON Schema must be a JSON object (or true), got {type(schema).__name__}")
    try:
        schema, draft, documents = admit(schema, load_store(schema_store))
    except Refused as exc:
        return _refused(backend, exc.reason, exc.draft)
    normalized = normalize(schema)
    applier = _RuleApplier(normalized, backend)
    relaxed = map_subschemas(normalized, applier)
    entries = applier.entries
    engine = optional_to_nullable(relaxed)
    error = _backend_error(engine, backend)
    fallback: Literal["relaxed", "unconstrained"] | None = None
    if error:
        fallback = "relaxed"
        engine = optional_to_nullable(_strip(relaxed, _VALUE_CONSTRAINTS))
        entries = [
            e.model_copy(update={"status": VALIDATED, "reason": f"relaxed: {error}"})
            if e.status == ENFORCED and e.keyword in _VALUE_CONSTRAINTS
            else e
            for e in entries
        ]
        if _backend_error(engine, backend):
            fallback, engine = "unconstrained", {}
            entries = [
                e.model_copy(update={"status": VALIDATED, "reason": f"unconstrained: {error}"})
                if e.status == ENFORCED
                else e
                for e in entries
            ]
            last = _backend_error(engine, backend)
            if last:
                return _refused(backend, f"{backend} cannot compile even an unconstrained schema: {last}", draft)
    return SchemaReport(
        backend=backend,
        accepted=True,
        draft=draft,
        fallback=fallback,
        coverage=entries,
        engine_schema=engine,
        bundled=documents,
        schema_=schema,
    )
