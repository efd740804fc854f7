"""The compiler's first step: what a schema must be before any rule applies to it.

Refused here, and only here: what is not a JSON Schema in any draft (04 to 2020-12), a
``$ref`` that cannot be resolved offline, and what nests deeper than vLLM allows. A
reference to another document is resolved from the schema store and its document bundled
into the schema (:mod:`.bundle`), so everything after this step reads one self-contained
schema with local references only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from docextract.errors import SchemaError
from docextract.schema.bundle import bundle
from docextract.schema.check import MAX_SCHEMA_NESTING, _exceeds_nesting
from docextract.schema.normalize import normalize, subschemas, user_validator
from docextract.schema.refs import resolve_ref
from docextract.schema.store import SchemaStore

__all__ = ["Admitted", "Refused", "admit"]


class Admitted(NamedTuple):
    """A schema the compiler may work on: self-contained, its draft, the documents bundled into it."""

    schema: dict[str, Any]
    draft: str
    documents: list[str]


class Refused(Exception):
    """Why a schema is refused, and the draft it was read as (None when unknown)."""

    def __init__(self, reason: str, draft: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.draft = draft


def _check_meta(schema: dict[str, Any]) -> tuple[str, str | None]:
    """(draft name, None) or (draft name, why the schema is not a JSON Schema)."""
    import jsonschema

    cls = user_validator(schema)
    draft = cls.__name__.removesuffix("Validator")
    try:
        cls.check_schema(schema)
        return draft, None
    except jsonschema.SchemaError as exc:
        error = exc
    # Lenient where real schemas commonly are: draft-04 "required": [] and other spellings
    # normalize() rewrites; what 2020-12 accepts after normalising is accepted.
    try:
        jsonschema.Draft202012Validator.check_schema(normalize(schema))
        return draft, None
    except jsonschema.SchemaError:
        pass
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return draft, f"invalid JSON Schema at {where}: {error.message}"


def _check_refs(schema: dict[str, Any]) -> str | None:
    for path, node in subschemas(schema):
        ref = node.get("$ref")
        if not isinstance(ref, str):
            continue
        if len(ref) > 1 and not ref.startswith("#/"):
            return f"{path}: $ref {ref!r} (an anchor) is not supported; use a JSON pointer such as '#/$defs/Name'"
        if resolve_ref(ref, schema) is None:
            return f"{path}: $ref {ref!r} points to nothing in the schema"
    return None


def admit(schema: dict[str, Any], store: SchemaStore | None) -> Admitted:
    """``schema`` made self-contained, with its draft.

    Raises:
        Refused: the schema is not a usable JSON Schema (the reason names the path).
    """
    draft, error = _check_meta(schema)
    if error:
        raise Refused(error, draft)
    try:
        bundled = bundle(schema, store)
    except SchemaError as exc:
        raise Refused(exc.message, draft) from None
    schema = bundled.schema  # references to its own URI are local pointers now
    if bundled.documents:
        draft, error = _check_meta(schema)
        if error:
            raise Refused(f"after bundling {', '.join(bundled.documents)}: {error}", draft)
    if _exceeds_nesting(schema):
        raise Refused(f"the schema nests deeper than {MAX_SCHEMA_NESTING} levels, which vLLM refuses", draft)
    error = _check_refs(schema)
    if error:
        raise Refused(error, draft)
    return Admitted(schema, draft, bundled.documents)
