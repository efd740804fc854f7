"""Comparing one predicted value with one expected value: a registry keyed by field type.

Each field type reads a value into a **key** (:meth:`FieldRule.key`): values
with equal keys match with score 1. An ``exact`` comparison is nothing more
(the score is 1 or 0); ``anls`` strings and numbers with a tolerance also
score unequal keys. Both values are present (not null, not blank) when a
comparator is called; absent values are handled by
:mod:`docextract.evaluation.scoring`. Parsing is in
:mod:`docextract.evaluation.values`.

* ``string``: Unicode NFKC, whitespace stripped and collapsed, case folded
  (each switchable, :class:`~docextract.evaluation.config.StringRule`). With
  ``dates_in_strings`` (the default) two strings that both read as dates
  (:func:`~docextract.evaluation.values.string_date`) are compared as dates:
  ``03/15/2026``, ``March 15, 2026`` and ``2026-03-15`` are one value. Then
  ``exact``: score 1 and a match when equal, else 0; or ``anls``: DocVQA's
  score, ``1 - NL`` when the normalised Levenshtein distance ``NL``
  (distance / longer length, rapidfuzz) is below ``anls_threshold`` (0.5),
  else 0; a match when the score is above 0.
* ``number``, ``integer``: numbers compared as numbers, a match when
  ``|a - b| <= max(abs_tol, rel_tol * max(|a|, |b|))`` (``math.isclose``).
  Strings are read as numbers (decimal comma or point, thousands marks,
  currency, accounting negatives: :func:`~docextract.evaluation.values.parse_number`).
  Booleans are not numbers.
* ``date``, ``datetime``: parsed as ISO 8601 (whatever ``dayfirst`` says),
  else with the ``formats`` given (``strptime``), else by python-dateutil
  (``dayfirst``, ``yearfirst``). Date-times with a time zone are compared in
  UTC; a ``date`` field compares the date only.
* ``boolean``: ``true``/``false``, and the strings ``true/false/yes/no/1/0``.
* ``json``: equal as JSON values, lists as multisets (in order for a tuple or
  an ``ordered_arrays`` path).

A value the type's parser cannot read (``"n/a"`` in a number field) is
compared as a string with the default string rule, so a prediction can still
match a truth that holds the same text. With ``invalid_values: wrong`` a
predicted value that its field's own schema rejects is a mismatch
(:meth:`FieldRule.judge`) whatever it reads as.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from docextract.errors import DocExtractError, validation_problems
from docextract.evaluation.config import DateRule, EvalConfig, NumberRule, StringRule
from docextract.evaluation.values import canonical_json, parse_boolean, parse_datetime, parse_number, string_date

__all__ = [
    "FIELD_TYPES",
    "Comparison",
    "FieldRule",
    "FieldType",
    "anls",
    "field_rules",
    "is_blank",
    "normalize_string",
]


@dataclass(frozen=True)
class Comparison:
    """How close two present values are (``score``) and whether they count as the same (``match``)."""

    score: float
    match: bool


MATCH, MISMATCH = Comparison(1.0, True), Comparison(0.0, False)
_DEFAULT_STRING = StringRule()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def normalize_string(value: Any, rule: StringRule = _DEFAULT_STRING) -> str:
    """The string a value is compared as under ``rule`` (non-strings as their JSON text)."""
    text = _text(value)
    if rule.normalize_unicode:
        text = unicodedata.normalize("NFKC", text)
    if rule.normalize_whitespace:
        text = " ".join(text.split())
    if not rule.case_sensitive:
        text = text.casefold()
    return text


def is_blank(value: Any) -> bool:
    """A string with nothing but whitespace."""
    return isinstance(value, str) and not value.strip()


def anls(a: str, b: str, threshold: float) -> float:
    """DocVQA's ANLS of two normalised strings: ``1 - NL`` when ``NL`` is below ``threshold``, else 0."""
    from rapidfuzz.distance import Levenshtein

    distance = Levenshtein.normalized_distance(a, b)  # distance / max(len(a), len(b))
    return 1.0 - distance if distance < threshold else 0.0


def _as_text(value: Any) -> tuple[str, str]:
    return ("s", normalize_string(value))


def _string_key(value: Any, r: FieldRule) -> Hashable:
    date = string_date(value, r.dates) if r.dates is not None else None
    return ("d", date) if date is not None else ("s", normalize_string(value, r.rule))


def _number_key(value: Any, r: FieldRule) -> Hashable:
    number = parse_number(value, r.rule)
    return ("n", number + 0.0) if number is not None else _as_text(value)  # + 0.0: -0.0 is 0.0


def _date_key(value: Any, r: FieldRule) -> Hashable:
    parsed = parse_datetime(value, r.rule)
    return ("d", parsed.date().isoformat()) if parsed is not None else _as_text(value)


def _datetime_key(value: Any, r: FieldRule) -> Hashable:
    import datetime as dt

    parsed = parse_datetime(value, r.rule)
    if parsed is None:
        return _as_text(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ("t", parsed.isoformat())


def _boolean_key(value: Any, r: FieldRule) -> Hashable:
    parsed = parse_boolean(value)
    return ("b", parsed) if parsed is not None else _as_text(value)


def _json_key(value: Any, r: FieldRule) -> Hashable:
    return ("j", canonical_json(value, ordered=r.ordered))


@dataclass(frozen=True)
class FieldType:
    """A leaf type: the :class:`EvalConfig` attribute holding its rule (None: no settings) and its key."""

    rule_key: str | None
    key: Callable[[Any, FieldRule], Hashable]


#: Leaf types of :func:`docextract.evaluation.fields.field_tree`, each with how it reads a value.
FIELD_TYPES: dict[str, FieldType] = {
    "string": FieldType("string", _string_key),
    "number": FieldType("number", _number_key),
    "integer": FieldType("number", _number_key),
    "date": FieldType("date", _date_key),
    "datetime": FieldType("date", _datetime_key),
    "boolean": FieldType(None, _boolean_key),
    "json": FieldType(None, _json_key),
}


@dataclass(frozen=True)
class FieldRule:
    """How one field path is compared: its type, the rule of that type, and what else applies to it."""

    kind: str
    rule: BaseModel | None
    dates: DateRule | None = None  # string fields: dates recognised in the text (dates_in_strings)
    ordered: bool = False  # json fields: lists in order
    validator: Any = field(default=None, compare=False, repr=False)  # invalid_values: wrong

    def key(self, value: Any) -> Hashable:
        """What ``value`` reads as: equal keys are a match with score 1."""
        return FIELD_TYPES[self.kind].key(value, self)

    @property
    def exact(self) -> bool:
        """Whether a pair scores 1 exactly when its keys are equal and 0 otherwise."""
        if isinstance(self.rule, StringRule):
            return self.rule.mode == "exact"
        if isinstance(self.rule, NumberRule):
            return self.rule.abs_tol == 0 and self.rule.rel_tol == 0
        return True

    def valid(self, value: Any) -> bool:
        """Whether the field's own schema accepts a predicted value (always, unless ``invalid_values: wrong``)."""
        return self.validator is None or self.validator.is_valid(value)

    def compare(self, predicted: Any, expected: Any) -> Comparison:
        return self.compare_keys(self.key(predicted), self.key(expected), predicted, expected)

    def compare_keys(self, kp: Hashable, ke: Hashable, predicted: Any, expected: Any) -> Comparison:
        if kp == ke:
            return MATCH
        if self.exact:
            return MISMATCH
        if isinstance(self.rule, NumberRule):
            if kp[0] == ke[0] == "n":
                return (
                    MATCH
                    if math.isclose(kp[1], ke[1], rel_tol=self.rule.rel_tol, abs_tol=self.rule.abs_tol)
                    else MISMATCH
                )
            return MISMATCH
        if kp[0] == ke[0] == "d":  # two dates: equal or not, no partial credit
            return MISMATCH
        score = anls(
            normalize_string(predicted, self.rule), normalize_string(expected, self.rule), self.rule.anls_threshold
        )
        return Comparison(score, True) if score > 0.0 else MISMATCH

    def judge(self, predicted: Any, expected: Any) -> Comparison:
        """:meth:`compare`, a predicted value the field's schema rejects being a mismatch."""
        return self.compare(predicted, expected) if self.valid(predicted) else MISMATCH

    @property
    def method(self) -> str:
        """Shown in the report: ``exact``/``anls`` for strings, else the type."""
        return self.rule.mode if isinstance(self.rule, StringRule) else self.kind


def _leaf_validator(schema: Any, root: dict[str, Any]) -> Any:
    from docextract.schema.normalize import user_validator

    if not isinstance(schema, dict):
        return None
    defs = {k: root[k] for k in ("$defs", "definitions") if isinstance(root, dict) and k in root}
    full = {**defs, **schema}
    if isinstance(root, dict) and "$schema" in root:
        full.setdefault("$schema", root["$schema"])
    cls = user_validator(root)
    return cls(full, format_checker=cls.FORMAT_CHECKER)


def field_rules(
    leaves: dict[str, str],
    config: EvalConfig,
    schemas: dict[str, Any] | None = None,
    root: dict[str, Any] | None = None,
    ordered: frozenset[str] = frozenset(),
) -> dict[str, FieldRule]:
    """The rule of every leaf path: its type's rule from ``config``, with the path's override on top
    (``schemas``: each leaf's schema, checked against when ``invalid_values`` is ``wrong``;
    ``ordered``: json leaves whose lists are in order).

    Raises:
        DocExtractError: an override names a path the schema lacks, or keys its type's rule lacks.
    """
    unknown = sorted(set(config.fields) - set(leaves))
    if unknown:
        known = ", ".join(leaves) or "(none)"
        raise DocExtractError(f"evaluation config: no field {', '.join(unknown)} in the task schema; fields: {known}")
    rules: dict[str, FieldRule] = {}
    for path, kind in leaves.items():
        key = FIELD_TYPES[kind].rule_key
        base: BaseModel | None = getattr(config, key) if key else None
        override = config.fields.get(path)
        if override:
            if base is None:
                raise DocExtractError(f"evaluation config: field {path} is a {kind}, which has no settings")
            try:
                base = type(base).model_validate({**base.model_dump(), **override})
            except ValidationError as exc:
                raise DocExtractError(
                    f"evaluation config: fields.{path} ({kind}): {validation_problems(exc)}"
                ) from None
        validator = None
        if config.invalid_values == "wrong" and schemas is not None:
            validator = _leaf_validator(schemas.get(path), root or {})
        dates = config.date if kind == "string" and config.dates_in_strings else None
        rules[path] = FieldRule(kind, base, dates, path in ordered, validator)
    return rules
