"""Check a task's JSON Schema once, when the task is loaded.

A schema the grammar backend cannot enforce must fail here, with the JSON path
and keyword named, and not at the first request (where vLLM would reject it
with a terse message, or worse, silently ignore the keyword). The rules mirror
vLLM 0.32's ``has_xgrammar_unsupported_json_features`` and
``has_guidance_unsupported_json_features`` (tests/test_schema_check.py checks
that we agree with them) but say *where* and *why*.

When the backend's grammar compiler is installed (xgrammar or llguidance), the
schema is also compiled, so errors only the compiler sees (an unresolvable
``$ref``, say) surface here too. Pure callers (``schemas/`` users without the
engine installed) get the structural checks alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from docextract.errors import SchemaError
from docextract.schema.rules import XGRAMMAR_FORMATS

__all__ = ["Backend", "SUPPORTED_BACKENDS", "check_schema", "find_unsupported_features", "schema_types"]

Backend = Literal["xgrammar", "guidance"]
SUPPORTED_BACKENDS: tuple[str, ...] = ("xgrammar", "guidance")

#: vLLM's MAX_STRUCTURED_OUTPUT_JSON_NESTING: deeper schemas are refused at request time.
MAX_SCHEMA_NESTING = 64

# String formats xgrammar turns into a grammar: one list, in the rules.
_XGRAMMAR_STRING_FORMATS = XGRAMMAR_FORMATS


def schema_types(node: dict[str, Any]) -> set[str]:
    """The JSON types a (sub-)schema declares: ``"type"`` as a string or a list."""
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    return set()


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (JSON pointer, sub-schema) for every dict in the schema document."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}/{index}")


def _has_pattern_and_length_bounds(node: dict[str, Any]) -> bool:
    return ("pattern" in node or "format" in node) and ("minLength" in node or "maxLength" in node)


def _xgrammar_problems(node: dict[str, Any]) -> Iterator[str]:
    types = schema_types(node)
    if types & {"integer", "number"} and "multipleOf" in node:
        yield "'multipleOf' is not enforced by xgrammar (it would be ignored)"
    if "array" in types:
        for key in ("uniqueItems", "contains", "minContains", "maxContains"):
            if key in node:
                yield f"'{key}' on an array is not enforced by xgrammar"
    if "string" in types:
        fmt = node.get("format")
        if fmt is not None and fmt not in _XGRAMMAR_STRING_FORMATS:
            yield f"string format {fmt!r} is not enforced by xgrammar (supported: {', '.join(sorted(_XGRAMMAR_STRING_FORMATS))})"
        if _has_pattern_and_length_bounds(node):
            yield "a string with 'pattern' or 'format' cannot also have 'minLength'/'maxLength' under xgrammar; fold the length into the pattern"
    if "object" in types:
        names = node.get("propertyNames")
        if names is not None:
            if isinstance(names, dict) and _has_pattern_and_length_bounds(names):
                yield "'propertyNames' with a pattern and a length bound is not supported by xgrammar"
            for key in ("patternProperties", "properties"):
                if key in node:
                    yield f"'propertyNames' together with '{key}' is not supported by xgrammar"
            if node.get("unevaluatedProperties", True) is not True:
                yield "'propertyNames' together with 'unevaluatedProperties' is not supported by xgrammar"
        pattern_props = node.get("patternProperties")
        if isinstance(pattern_props, dict):
            if "properties" in node:
                yield "'patternProperties' together with 'properties' is not supported by xgrammar"
            if len(pattern_props) > 1:
                yield "more than one 'patternProperties' entry is not supported by xgrammar"
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) >= 2:
        yield "'allOf' with several branches is not enforced by xgrammar (it would accept any JSON); merge the branches"


def _guidance_problems(node: dict[str, Any]) -> Iterator[str]:
    if "patternProperties" in node:
        yield "'patternProperties' is not supported by guidance (llguidance)"


_PROBLEM_FINDERS = {"xgrammar": _xgrammar_problems, "guidance": _guidance_problems}


def find_unsupported_features(schema: dict[str, Any], backend: Backend = "xgrammar") -> list[str]:
    """List ``"<json pointer>: <problem>"`` for every feature ``backend`` cannot enforce."""
    try:
        finder = _PROBLEM_FINDERS[backend]
    except KeyError:
        raise SchemaError(
            f"unknown structured-output backend {backend!r}; choose one of {', '.join(SUPPORTED_BACKENDS)}"
        ) from None
    problems = []
    for path, node in _walk(schema):
        # Keys of a 'properties' mapping are names, not sub-schemas: skip the mapping itself.
        if path.endswith("/properties") or path.endswith("/$defs") or path.endswith("/definitions"):
            continue
        problems.extend(f"{path}: {problem}" for problem in finder(node))
    return problems


def _exceeds_nesting(node: Any, limit: int = MAX_SCHEMA_NESTING) -> bool:
    """Whether objects/arrays nest deeper than ``limit`` (vLLM's own measure)."""
    level = [node]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def _check_refs(schema: dict[str, Any]) -> None:
    for path, node in _walk(schema):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise SchemaError(f"{path}: only local references ('#/$defs/...') are supported, got $ref {ref!r}")


def _compile_with_backend(schema: dict[str, Any], backend: Backend) -> None:
    """Compile the schema with the backend's own compiler, if it is installed."""
    text = json.dumps(schema)
    if backend == "xgrammar":
        try:
            import xgrammar
        except ImportError:
            return
        try:
            xgrammar.Grammar.from_json_schema(text, any_whitespace=False, strict_mode=True)
        except Exception as exc:  # xgrammar raises RuntimeError with a C++ location prefix
            message = str(exc).splitlines()[0]
            message = message.split(": ", 1)[-1] if "json_schema_converter" in message else message
            raise SchemaError(f"xgrammar cannot compile the schema: {message}") from None
    else:
        try:
            import llguidance
        except ImportError:
            return
        grammar = llguidance.grammar_from("json_schema", text)
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
        if is_error:
            raise SchemaError(f"guidance cannot compile the schema: {'; '.join(messages)}")
        for message in messages:
            # llguidance reports some real errors (a dangling $ref) as warnings only.
            if "does not exist" in message:
                raise SchemaError(f"guidance cannot compile the schema: {message}")


def check_schema(schema: Any, backend: Backend = "xgrammar", *, compile_grammar: bool = True) -> list[str]:
    """Check that ``schema`` is a valid JSON Schema for an object that ``backend`` can enforce.

    Args:
        schema: the task's JSON Schema (a dict).
        backend: the structured-output backend that will enforce it.
        compile_grammar: also compile it with the backend's compiler when installed.

    Returns:
        Warnings: features that are enforced only approximately (the result is
        re-validated after generation, so these cost validity, not correctness).

    Raises:
        SchemaError: the schema is invalid, or uses a feature ``backend`` cannot enforce.
    """
    import jsonschema

    if not isinstance(schema, dict):
        raise SchemaError(f"a JSON Schema must be a JSON object, got {type(schema).__name__}")
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise SchemaError(f"invalid JSON Schema at {where}: {exc.message}") from None
    if "object" not in schema_types(schema) and "properties" not in schema:
        raise SchemaError(
            'the schema\'s root must describe a JSON object ("type": "object" with "properties"); '
            "wrap a single value in an object"
        )
    if _exceeds_nesting(schema):
        raise SchemaError(f"the schema nests deeper than {MAX_SCHEMA_NESTING} levels, which vLLM refuses")
    _check_refs(schema)
    problems = find_unsupported_features(schema, backend)
    if problems:
        raise SchemaError(f"the schema uses features the {backend} backend cannot enforce: " + "; ".join(problems))
    if compile_grammar:
        _compile_with_backend(schema, backend)
    warnings = []
    for path, node in _walk(schema):
        if isinstance(node.get("oneOf"), list) and backend == "xgrammar":
            warnings.append(
                f"{path}: xgrammar enforces 'oneOf' as 'anyOf'; outputs matching several branches are "
                "re-validated and reported invalid"
            )
    return warnings
