"""The schema the engine enforces, derived from the schema the user gave.

Why a second schema: xgrammar never emits a property that is not ``required``
(its grammar for an object lists the required properties only), so a user's
optional field could never be filled in. docextract therefore sends the engine
a schema in which

* every property is required, and each property that was optional becomes
  ``anyOf: [<its schema>, {"type": "null"}]``: the model writes ``null`` when
  it has nothing to say;
* objects that declare ``properties`` and say nothing about
  ``additionalProperties`` get ``additionalProperties: false``, so the model
  writes the declared fields and nothing else.

After generation :func:`restore_optional` removes the ``null`` of each
optional property whose own schema does not accept ``null``, and the result is
validated against the *user's* schema. The output a user gets therefore always
conforms to the schema they gave; "absent" and "null" are told apart by that
schema. Both functions are pure and copy their input.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from docextract.schema.check import schema_types
from docextract.schema.refs import resolve_ref

__all__ = ["engine_schema", "restore_optional"]

_NULL = {"type": "null"}
# Keywords whose value is one sub-schema / a list of sub-schemas / a name->sub-schema map.
_SCHEMA_KEYS = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_SCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAP_KEYS = ("$defs", "definitions", "patternProperties", "dependentSchemas")


def _allows_null(node: Any, root: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    if node is True or node == {}:
        return True
    if not isinstance(node, dict):
        return False
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        target = resolve_ref(ref, root)
        if target is not None and _allows_null(target, root, seen | {ref}):
            return True
    declared = node.get("type")
    if declared == "null" or (isinstance(declared, list) and "null" in declared):
        return True
    if "const" in node and node["const"] is None:
        return True
    if "enum" in node and None in node["enum"]:
        return True
    return any(_allows_null(branch, root, seen) for key in ("anyOf", "oneOf") for branch in node.get(key, []))


def _transform(node: Any, root: dict[str, Any], in_all_of: bool = False) -> Any:
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in _SCHEMA_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = _transform(out[key], root)
    for key in _SCHEMA_LIST_KEYS:
        if isinstance(out.get(key), list):
            out[key] = [_transform(item, root, in_all_of=key == "allOf") for item in out[key]]
    for key in _SCHEMA_MAP_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _transform(sub, root) for name, sub in out[key].items()}
    properties = out.get("properties")
    if isinstance(properties, dict):
        required = set(out.get("required", []))
        new_props = {}
        for name, sub in properties.items():
            if sub is False:
                continue  # a property that must never appear: not generated at all
            sub = _transform(sub, root)
            if name not in required and not _allows_null(sub, root):
                sub = {"anyOf": [sub, dict(_NULL)]}
            new_props[name] = sub
        out["properties"] = new_props
        out["required"] = list(new_props)
        # A branch of an allOf only sees its own properties: closing it would forbid the
        # properties of its sibling branches, and the allOf could never be satisfied.
        if not in_all_of:
            out.setdefault("additionalProperties", False)
    return out


def engine_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Return the schema to send to the engine: every property required, optional ones nullable."""
    schema = copy.deepcopy(schema)
    return _transform(schema, schema)


def _object_branch(node: dict[str, Any], value: Any, root: dict[str, Any]) -> dict[str, Any] | None:
    """The sub-schema that describes ``value`` (dict or list) inside ``node``, following $ref/anyOf."""
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"] not in seen:
        seen.add(node["$ref"])
        target = resolve_ref(node["$ref"], root)
        if not isinstance(target, dict):
            return None
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if not isinstance(node, dict):
        return None
    wanted = "object" if isinstance(value, dict) else "array"
    if (
        wanted in schema_types(node)
        or (wanted == "object" and "properties" in node)
        or (wanted == "array" and "items" in node)
    ):
        return node
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(key, []):
            found = _object_branch(branch, value, root)
            if found is not None:
                return found
    return None


def _restore(value: Any, node: Any, root: dict[str, Any]) -> Any:
    if not isinstance(value, (dict, list)) or not isinstance(node, dict):
        return value
    node = _object_branch(node, value, root)
    if node is None:
        return value
    if isinstance(value, list):
        items = node.get("items")
        prefix = node.get("prefixItems") or []
        return [_restore(item, prefix[i] if i < len(prefix) else items, root) for i, item in enumerate(value)]
    properties = node.get("properties") or {}
    required = set(node.get("required", []))
    out = {}
    for name, item in value.items():
        sub = properties.get(name) if name in properties else _extra_schema(node, name)
        if item is None and name in properties and name not in required and not _allows_null(sub, root):
            continue  # an optional field the model left empty: absent, as the user's schema says
        out[name] = _restore(item, sub, root) if sub is not None else item
    return out


def _extra_schema(node: dict[str, Any], name: str) -> Any:
    """The schema of a key ``properties`` does not name: the first matching
    ``patternProperties`` entry, else ``additionalProperties`` (a map's values)."""
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict):
        for pattern, sub in patterns.items():
            try:
                if re.search(pattern, name):
                    return sub
            except re.error:
                continue
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def restore_optional(data: Any, schema: dict[str, Any]) -> Any:
    """Map engine output back to the user's schema: drop ``null`` optional properties
    that the user's schema does not allow to be ``null``."""
    return _restore(copy.deepcopy(data), schema, schema)
