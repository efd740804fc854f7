"""Local ``$ref`` resolution, the one resolver every reader of a task schema follows.

Only local references (``#/$defs/Item``, ``#/properties/a``, ``#/allOf/0``) are resolved:
the schema compiler (:mod:`.compiler`) bundles what a reference to another document names
from the schema store (:mod:`.bundle`) and refuses any it cannot, when a task is loaded, so
a schema that reaches the engine, the optional-field mapping (:mod:`.transform`) or the
evaluation (:mod:`docextract.evaluation.fields`) has no remote one.
"""

from __future__ import annotations

from typing import Any

__all__ = ["follow_refs", "resolve_ref"]


def resolve_ref(ref: str, root: dict[str, Any]) -> Any:
    """The sub-schema of ``root`` that the local JSON pointer ``ref`` names, or None.

    ``~1`` and ``~0`` are unescaped (RFC 6901); a remote reference or a pointer into
    nothing gives None, and the caller decides what that means for it.
    """
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref[1:].strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def follow_refs(node: Any, root: dict[str, Any], limit: int = 32) -> Any:
    """``node`` with its chain of ``$ref`` followed to the schema that is not one; None for a
    reference that resolves to nothing, or a chain longer than ``limit`` (a loop)."""
    for _ in range(limit):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node
        node = resolve_ref(node["$ref"], root)
    return None
