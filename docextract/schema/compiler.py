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
3. Apply :data:`~docextract.schema.rules.RULES` (:mod:`~docextract.schema.apply_rules`):
   keep what the backend enforces (not a lookaround pattern on xgrammar, which compiles it
   and ignores it), leave the rest out of the engine schema (it is validated after), merge a multi-branch ``allOf`` for
   xgrammar, send ``oneOf`` as ``anyOf``.
4. :func:`~docextract.schema.transform.engine_schema` (optional fields nullable).
5. Compile with the backend's own compiler. If it refuses part of the schema (a pattern it
   cannot compile, a bound beyond its limit, or the whole engine schema), fall back:

   a. the *other* backend (xgrammar <-> guidance), when it compiles the full schema; the
      report's ``backend`` is then the one that runs the request, ``fallback`` is
      ``"other_backend"`` and ``fallback_reason`` says what the configured one refused;
   b. else, on the configured backend, a relaxed engine schema without value constraints
      (patterns, formats, bounds, lengths, counts), then an unconstrained one (any JSON).

   The user's schema is always validated in full after. A keyword the rules table
   (:mod:`~docextract.schema.rules`) marks ``validated`` for the configured backend (such as
   ``multipleOf`` on xgrammar) is a property of that backend, not a failure to compile: it
   does not move the schema to the other backend.

The other backend runs on the same engine through :mod:`docextract.vllm_plugin`, which
patches vLLM 0.32's ``StructuredOutputManager`` to hold one backend per name (vLLM itself
builds one per engine: "We do NOT support different backends on a per-request basis in
V1"). On another vLLM version the plugin is a no-op, :func:`~docextract.vllm_plugin.per_request_backends`
is false and step a is skipped.

Reports are cached by (schema, backend, schema store, other backend allowed): a schema sent again is not compiled again (vLLM
caches the compiled grammar on its side too).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from docextract.cache import LruCache
from docextract.errors import SchemaError
from docextract.schema.admission import Refused, admit
from docextract.schema.apply_rules import CoverageEntry, RuleApplier
from docextract.schema.check import _compile_with_backend, find_unsupported_features
from docextract.schema.normalize import map_subschemas, normalize
from docextract.schema.rules import (
    ANNOTATION,
    BACKENDS,
    ENFORCED,
    REFUSED,
    VALIDATED,
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


class SchemaReport(BaseModel):
    """The compiler's answer for one schema and one backend."""

    backend: str
    accepted: bool
    refused_reason: str | None = None
    draft: str | None = Field(default=None, description="The draft the schema is read and validated as.")
    fallback: Literal["other_backend", "relaxed", "unconstrained"] | None = Field(
        default=None,
        description="Set when the configured backend refused part of the schema: the other backend ran it, "
        "or the engine schema was relaxed.",
    )
    fallback_reason: str | None = Field(default=None, description="What the configured backend refused.")
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


_cache: LruCache[tuple[str, str, tuple[str, ...], bool], SchemaReport] = LruCache(512)


def clear_cache() -> None:
    _cache.clear()


def check_coverage(
    schema: Any,
    backend: str = "xgrammar",
    schema_store: Sequence[str] | None = None,
    other_backend: bool | None = None,
) -> SchemaReport:
    """The coverage report of ``schema`` for ``backend``; never raises for a bad schema
    (the report says ``accepted: false`` and why). References to other documents are
    resolved from ``schema_store`` (paths, :mod:`docextract.schema.store`). ``other_backend``:
    whether a schema ``backend`` cannot compile may go to the other one (default: where the
    engine can run it, :func:`docextract.vllm_plugin.per_request_backends`). Cached."""
    if backend not in BACKENDS:
        raise SchemaError(f"unknown structured-output backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    store_key = tuple(str(p) for p in schema_store or ())
    if other_backend is None:
        from docextract.vllm_plugin import per_request_backends

        other_backend = per_request_backends()
    try:
        key = (json.dumps(schema, sort_keys=True), backend, store_key, other_backend)
    except (TypeError, ValueError) as exc:
        return SchemaReport(backend=backend, accepted=False, refused_reason=f"not JSON: {exc}")
    cached = _cache.get(key)
    if cached is not None:
        return cached
    started = time.perf_counter()
    report = _build(schema, backend, store_key, other_backend)
    report.compile_ms = round((time.perf_counter() - started) * 1000, 3)
    return _cache.put(key, report)


def compile_schema(
    schema: Any,
    backend: str = "xgrammar",
    schema_store: Sequence[str] | None = None,
    other_backend: bool | None = None,
) -> SchemaReport:
    """:func:`check_coverage`, raising for a refused schema.

    Raises:
        SchemaError: the schema is not a usable JSON Schema (the message says where and why).
    """
    report = check_coverage(schema, backend, schema_store, other_backend)
    if not report.accepted:
        raise SchemaError(report.refused_reason or "the schema is refused")
    return report


def _refused(backend: str, reason: str, draft: str | None = None) -> SchemaReport:
    entry = CoverageEntry(path="#", keyword="(schema)", status=REFUSED, reason=reason)
    return SchemaReport(backend=backend, accepted=False, refused_reason=reason, draft=draft, coverage=[entry])


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


def _build(schema: Any, backend: str, schema_store: tuple[str, ...], other_backend: bool) -> SchemaReport:
    report = _build_for(schema, backend, schema_store)
    if not (other_backend and report.accepted and report.fallback_reason):
        return report
    other = next(b for b in BACKENDS if b != backend)
    alternative = _build_for(schema, other, schema_store)
    if alternative.accepted and alternative.fallback_reason is None:
        return alternative.model_copy(update={"fallback": "other_backend", "fallback_reason": report.fallback_reason})
    return report


def _build_for(schema: Any, backend: str, schema_store: tuple[str, ...]) -> SchemaReport:
    """The report for ``backend`` alone; ``fallback_reason`` set when its compiler refused part."""
    if schema is True:
        schema = {}
    if not isinstance(schema, dict):
        return _refused(backend, f"a JSON Schema must be a JSON object (or true), got {type(schema).__name__}")
    try:
        schema, draft, documents = admit(schema, load_store(schema_store))
    except Refused as exc:
        return _refused(backend, exc.reason, exc.draft)
    normalized = normalize(schema)
    applier = RuleApplier(normalized, backend)
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
        fallback_reason=error or applier.compile_refusal,
        coverage=entries,
        engine_schema=engine,
        bundled=documents,
        schema_=schema,
    )
