"""Read a user's JSON Schema whatever draft it was written in (04 to 2020-12) and put it in
one form the rest of :mod:`docextract.schema` understands.

Two jobs, kept apart:

* :func:`user_validator` picks the jsonschema validator that reads the schema *as its
  author meant it* (its declared ``$schema``, or, when none is declared, the first draft
  whose meta-schema accepts it). That validator checks every output after generation, so
  the user's own semantics are what ``valid`` means.
* :func:`normalize` rewrites the schema into 2020-12 spellings for the grammar backends:
  a draft-04 boolean ``exclusiveMinimum``/``exclusiveMaximum`` becomes the number form,
  a tuple ``items: [...]`` becomes ``prefixItems`` (+ ``additionalItems`` as ``items``),
  ``dependencies`` becomes ``dependentRequired``/``dependentSchemas``, an empty
  ``required`` goes, and a root ``$ref`` is replaced by what it names (``$defs`` and
  ``definitions`` stay, so inner references still resolve).

Pure Python; jsonschema is imported when a validator is asked for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from docextract.schema.refs import resolve_ref

__all__ = [
    "SCHEMA_LIST_KEYS",
    "SCHEMA_MAP_KEYS",
    "SCHEMA_VALUE_KEYS",
    "map_subschemas",
    "normalize",
    "spell_2020_12",
    "subschemas",
    "user_validator",
]

# Keywords whose value is one sub-schema / a list of sub-schemas / a name -> sub-schema map.
SCHEMA_VALUE_KEYS = (
    "items",
    "additionalItems",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
SCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
SCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")

_DRAFT_ORDER = ("Draft202012Validator", "Draft201909Validator", "Draft7Validator", "Draft6Validator", "Draft4Validator")


def subschemas(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """(JSON pointer, sub-schema) for ``node`` and every sub-schema below it, by keyword:
    unlike a walk over every dict, an ``enum`` value or a ``properties`` map is not a schema."""
    if not isinstance(node, dict):
        return
    yield path, node
    for key, value in node.items():
        if key in SCHEMA_VALUE_KEYS and isinstance(value, dict):
            yield from subschemas(value, f"{path}/{key}")
        elif key in SCHEMA_LIST_KEYS and isinstance(value, list):
            for i, item in enumerate(value):
                yield from subschemas(item, f"{path}/{key}/{i}")
        elif key in SCHEMA_MAP_KEYS and isinstance(value, dict):
            for name, item in value.items():
                yield from subschemas(item, f"{path}/{key}/{_escape(name)}")
        elif key == "dependencies" and isinstance(value, dict):
            for name, item in value.items():
                yield from subschemas(item, f"{path}/{key}/{_escape(name)}")


def _escape(name: str) -> str:
    return str(name).replace("~", "~0").replace("/", "~1")


def map_subschemas(node: Any, fn: Callable[[dict[str, Any], str], dict[str, Any]], path: str = "#") -> Any:
    """A copy of ``node`` with ``fn(sub_schema, path)`` applied top-down to every sub-schema
    (``fn`` sees a node before its children, and its children are those of what it returns)."""
    if not isinstance(node, dict):
        return node
    out = fn(dict(node), path)
    for key, value in list(out.items()):
        if key in SCHEMA_VALUE_KEYS and isinstance(value, dict):
            out[key] = map_subschemas(value, fn, f"{path}/{key}")
        elif key in SCHEMA_LIST_KEYS and isinstance(value, list):
            out[key] = [map_subschemas(item, fn, f"{path}/{key}/{i}") for i, item in enumerate(value)]
        elif key in SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {name: map_subschemas(item, fn, f"{path}/{key}/{_escape(name)}") for name, item in value.items()}
    return out


def _normalize_node(node: dict[str, Any], _path: str) -> dict[str, Any]:
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        flag = node.get(exclusive)
        if isinstance(flag, bool):  # draft 04: a flag on minimum/maximum
            del node[exclusive]
            if flag and isinstance(node.get(bound), (int, float)):
                node[exclusive] = node.pop(bound)
    if node.get("required") == []:
        del node["required"]
    items = node.get("items")
    if isinstance(items, list):  # drafts 04-2019: a tuple
        node["prefixItems"] = items
        del node["items"]
        extra = node.pop("additionalItems", None)
        if extra is not None:
            node["items"] = extra
    else:
        node.pop("additionalItems", None)  # ignored next to a single-schema items
    deps = node.pop("dependencies", None)
    if isinstance(deps, dict):
        for name, value in deps.items():
            key = "dependentRequired" if isinstance(value, list) else "dependentSchemas"
            node.setdefault(key, {})[name] = value
    return node


def spell_2020_12(schema: Any) -> Any:
    """A copy of ``schema`` with every sub-schema in 2020-12 spellings (``$schema`` kept)."""
    return map_subschemas(copy.deepcopy(schema), _normalize_node)


def normalize(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` in 2020-12 spellings, its root ``$ref`` resolved; the input is not modified."""
    out = spell_2020_12(schema)
    # The result is 2020-12: a draft-04 "$schema" left on it would make a backend read
    # "prefixItems" as an unknown keyword (llguidance does).
    out.pop("$schema", None)
    seen: set[str] = set()
    while isinstance(out.get("$ref"), str) and out["$ref"].startswith("#") and out["$ref"] not in seen:
        ref = out["$ref"]
        seen.add(ref)
        target = resolve_ref(ref, out)
        if not isinstance(target, dict) or target is out:
            break
        rest = {k: v for k, v in out.items() if k != "$ref"}
        merged = copy.deepcopy(target)
        for key in ("$defs", "definitions"):
            if key in rest:
                merged[key] = {**rest.pop(key), **merged.get(key, {})}
        for key, value in rest.items():
            merged.setdefault(key, value)
        out = merged
    return out


def user_validator(schema: Any) -> type:
    """The jsonschema validator class that reads ``schema`` as its author meant it: the draft its
    ``$schema`` declares, else the newest draft whose meta-schema accepts it (a draft-04 schema
    without ``$schema``, with a boolean ``exclusiveMinimum``, is read as draft 04)."""
    import jsonschema

    if isinstance(schema, dict) and isinstance(schema.get("$schema"), str):
        return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    order = _DRAFT_ORDER
    if isinstance(schema, dict):
        # Keywords that only older drafts define: 2020-12 would ignore them silently.
        nodes = [node for _, node in subschemas(schema)]
        if any(isinstance(n.get(k), bool) for n in nodes for k in ("exclusiveMinimum", "exclusiveMaximum")):
            order = ("Draft4Validator", *order)
        elif any("dependencies" in n or isinstance(n.get("items"), list) for n in nodes):
            order = ("Draft7Validator", *order)
    for name in order:
        cls = getattr(jsonschema, name)
        if cls(cls.META_SCHEMA).is_valid(schema):
            return cls
    return jsonschema.Draft202012Validator
