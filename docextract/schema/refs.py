"""Local ``$ref`` resolution, the one resolver every reader of a task schema follows.

Only local references (``#/$defs/Item``, ``#/properties/a``) are resolved:
:func:`docextract.schema.check.check_schema` refuses any other when a task is
loaded, so a schema that reaches the engine, the optional-field mapping
(:mod:`.transform`) or the evaluation (:mod:`docextract.evaluation.fields`)
has no remote one.
"""

from __future__ import annotations

from typing import Any

__all__ = ["resolve_ref"]


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
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
