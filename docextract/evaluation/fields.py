"""The fields an evaluation scores, read from the task's JSON Schema.

The schema says what each field is, so it decides how values are compared:
:func:`field_tree` turns it into a tree of :class:`FieldNode` whose leaves
have a type from :data:`docextract.evaluation.comparators.FIELD_TYPES`:

* ``string`` (enums of strings too), ``number``, ``integer``, ``boolean``;
* ``date`` and ``datetime``: strings with ``format: date`` / ``date-time``;
* ``json``: anything the schema does not pin to one of those (a free-form
  object, a union of different types): compared as canonical JSON, lists in
  it as multisets (a tuple, ``prefixItems``, in order).

An array without ``items`` is an array of ``json`` items, so its items pair
as a multiset like any array's (``tags[]``); an array whose items declare no
properties likewise. Each leaf keeps the schema it was read from, so a value
can be checked against its own field's schema (``invalid_values: wrong``).

Objects are flattened to dotted paths (``vendor.name``); an array's items
take the path ``name[]`` (``line_items[].amount`` for an array of objects,
``tags[]`` for an array of strings). ``null`` branches (``anyOf: [X, null]``,
``type: [X, "null"]``) are dropped: null and absent are the same to scoring.
Local ``$ref`` are followed; a recursive schema is cut at its second visit
(the subtree there is compared as ``json``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from docextract.schema.refs import resolve_ref

__all__ = ["FieldNode", "array_paths", "child_path", "field_tree", "item_path", "leaf_fields", "leaf_schemas"]

_SCALAR_TYPES = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean"}
_DATE_FORMATS = {"date": "date", "date-time": "datetime"}


@dataclass(frozen=True)
class FieldNode:
    """One node of the field tree: an ``object`` (``properties``), an ``array`` (``items``) or a leaf."""

    kind: str
    properties: dict[str, FieldNode] = field(default_factory=dict)
    items: FieldNode | None = None
    schema: Any = field(default=None, compare=False, repr=False)
    ordered: bool = False

    @property
    def is_leaf(self) -> bool:
        return self.kind not in ("object", "array")


_JSON = FieldNode("json")


def child_path(prefix: str, key: str) -> str:
    """``('vendor', 'name')`` -> ``'vendor.name'``; the root has the empty prefix."""
    return f"{prefix}.{key}" if prefix else key


def item_path(prefix: str) -> str:
    """The path of an array's items: ``'line_items'`` -> ``'line_items[]'``."""
    return f"{prefix}[]"


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and (node.get("type") == "null" or node == {"const": None})


def _value_kind(values: list[Any]) -> str:
    """The leaf type of an ``enum``/``const`` from its values."""
    values = [v for v in values if v is not None]
    if values and all(isinstance(v, str) for v in values):
        return "string"
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "json"


def _merge(nodes: list[FieldNode]) -> FieldNode:
    """One node for the branches of a union or an ``allOf``: same leaf type, or merged objects."""
    if not nodes:
        return _JSON
    if all(n.kind == "object" for n in nodes):
        merged: dict[str, FieldNode] = {}
        for n in nodes:
            merged.update(n.properties)
        return FieldNode("object", merged)
    if all(n.kind == "array" for n in nodes):
        return FieldNode("array", items=_merge([n.items or _JSON for n in nodes]))
    kinds = {n.kind for n in nodes}
    if kinds <= {"number", "integer"}:
        return FieldNode("number" if "number" in kinds else "integer")
    return nodes[0] if len(kinds) == 1 else _JSON


def _node(schema: Any, root: dict[str, Any], seen: frozenset[str]) -> FieldNode:
    if not isinstance(schema, dict):
        return _JSON
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = resolve_ref(ref, root)
        if ref in seen or target is None:
            return _JSON
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        resolved = _node(target, root, seen | {ref})
        return _merge([resolved, _node(rest, root, seen)]) if _has_shape(rest) else resolved
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            branches = [_node(b, root, seen) for b in schema[key] if not _is_null(b)]
            return _merge(branches)
    if isinstance(schema.get("allOf"), list):
        return _merge([_node(b, root, seen) for b in schema["allOf"]])
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = [t for t in declared if t != "null"]
        declared = declared[0] if len(declared) == 1 else None
    if declared == "object" or (declared is None and "properties" in schema):
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            return _JSON  # a free-form mapping: nothing to flatten
        return FieldNode("object", {k: _with_schema(_node(v, root, seen), v) for k, v in props.items()})
    if declared == "array" or (declared is None and "items" in schema):
        if "prefixItems" in schema or isinstance(schema.get("items"), list):
            return FieldNode("json", ordered=True)  # a tuple: position is meaning
        items = schema.get("items")
        child = _node(items, root, seen) if isinstance(items, dict) else _JSON
        return FieldNode("array", items=_with_schema(child, items))
    if declared == "string" and schema.get("format") in _DATE_FORMATS:
        return FieldNode(_DATE_FORMATS[schema["format"]])
    if declared in _SCALAR_TYPES:
        return FieldNode(_SCALAR_TYPES[declared])
    if "enum" in schema and isinstance(schema["enum"], list):
        return FieldNode(_value_kind(schema["enum"]))
    if "const" in schema:
        return FieldNode(_value_kind([schema["const"]]))
    return _JSON


def _with_schema(node: FieldNode, schema: Any) -> FieldNode:
    """A leaf with the schema it was read from (the whole union: ``anyOf [X, null]``)."""
    if not node.is_leaf or not isinstance(schema, dict):
        return node
    return FieldNode(node.kind, schema=schema, ordered=node.ordered)


def _has_shape(schema: dict[str, Any]) -> bool:
    return any(k in schema for k in ("type", "properties", "items", "anyOf", "oneOf", "allOf", "enum", "const"))


def field_tree(schema: dict[str, Any]) -> FieldNode:
    """The task schema as a tree of fields (the root is normally an object)."""
    return _with_schema(_node(schema, schema, frozenset()), schema)


def _leaves(node: FieldNode, prefix: str = "") -> Iterator[tuple[str, FieldNode]]:
    """Every leaf path and its node, in schema order."""
    if node.kind == "object":
        for key, child in node.properties.items():
            yield from _leaves(child, child_path(prefix, key))
    elif node.kind == "array":
        yield from _leaves(node.items or _JSON, item_path(prefix))
    else:
        yield prefix or "(root)", node


def leaf_fields(node: FieldNode, prefix: str = "") -> dict[str, str]:
    """Every leaf path and its type, in schema order: ``{'vendor.name': 'string', ...}``."""
    return {path: leaf.kind for path, leaf in _leaves(node, prefix)}


def leaf_schemas(node: FieldNode, prefix: str = "") -> dict[str, Any]:
    """Every leaf path and the schema it was read from (None where there was none)."""
    return {path: leaf.schema for path, leaf in _leaves(node, prefix)}


def array_paths(node: FieldNode, prefix: str = "") -> list[str]:
    """Every array's item path (``line_items[]``), outer arrays first."""
    out: list[str] = []
    if node.kind == "object":
        for key, child in node.properties.items():
            out.extend(array_paths(child, child_path(prefix, key)))
    elif node.kind == "array":
        out.append(item_path(prefix))
        out.extend(array_paths(node.items or _JSON, item_path(prefix)))
    return out
