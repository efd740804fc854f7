"""Check generated text against the task's schema, after generation.

Constrained decoding makes invalid output rare, not impossible: a response cut
by ``max_tokens``, a ``oneOf`` that xgrammar enforced as ``anyOf``, a format
the backend approximates. So every output is parsed and validated again
against the user's schema (and the task's Pydantic model, when it has one),
and what is wrong is reported per field.

Parsing is lenient in one way only: raw control characters inside strings are
accepted (``json.loads(strict=False)``). xgrammar 0.2.8 compiles a string with
``maxLength`` to ``[^"\\\r\n]{0,N}``, which admits them; the parsed value is
the same string, and whoever re-serialises ``data`` gets strict JSON back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from docextract.cache import LruCache
from docextract.results import FieldError
from docextract.schema.normalize import user_validator
from docextract.schema.transform import restore_optional
from docextract.tasks import TaskSpec

__all__ = ["ValidationOutcome", "field_path", "validate_data", "validate_output"]


def field_path(parts: Iterable[Any]) -> str:
    """``['line_items', 2, 'amount']`` -> ``'line_items[2].amount'``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class ValidationOutcome:
    """Parsed data (or None), whether it conforms, and why not."""

    __slots__ = ("data", "valid", "errors")

    def __init__(self, data: Any, valid: bool, errors: list[FieldError]) -> None:
        self.data = data
        self.valid = valid
        self.errors = errors


#: Validators by schema object: choosing the draft checks the schema against meta-schemas, which
#: cost more than validating one output (about 5 ms a call for a three-field schema). Keyed by
#: ``id`` with the schema held, so an id is never reused while its entry lives.
_VALIDATORS: LruCache[int, tuple[Any, Any]] = LruCache(128)


def _validator(schema: dict[str, Any]):
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    # The draft the author wrote in (a draft-04 boolean exclusiveMinimum is read as draft 04).
    cls = user_validator(schema)
    return _VALIDATORS.put(id(schema), (schema, cls(schema, format_checker=cls.FORMAT_CHECKER)))[1]


def validate_output(text: str, task: TaskSpec, finish_reason: str | None = "stop") -> ValidationOutcome:
    """Parse ``text``, map it back to the task's schema and validate it.

    A ``finish_reason`` of ``"length"`` makes the outcome invalid whatever the text.
    """
    errors: list[FieldError] = []
    if finish_reason == "length":
        errors.append(FieldError(path="", message="output cut off by max_tokens; raise max_tokens or bound the schema"))
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        errors.append(FieldError(path="", message=f"not valid JSON: {exc.msg} at character {exc.pos}"))
        return ValidationOutcome(None, False, errors)
    return _validate_parsed(data, task, errors)


def validate_data(data: Any, task: TaskSpec) -> ValidationOutcome:
    """:func:`validate_output` for an output already parsed (an evaluation's predictions)."""
    return _validate_parsed(data, task, [])


def _validate_parsed(data: Any, task: TaskSpec, errors: list[FieldError]) -> ValidationOutcome:
    data = restore_optional(data, task.json_schema)
    for err in sorted(_validator(task.json_schema).iter_errors(data), key=lambda e: list(e.absolute_path)):
        errors.append(FieldError(path=field_path(err.absolute_path), message=err.message))
    if task.pydantic_model is not None and not errors:
        from pydantic import ValidationError

        try:
            task.pydantic_model.model_validate(data)
        except ValidationError as exc:
            errors.extend(FieldError(path=field_path(e["loc"]), message=e["msg"]) for e in exc.errors())
    return ValidationOutcome(data, not errors, errors)
