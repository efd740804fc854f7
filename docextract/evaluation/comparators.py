"""Comparing one predicted value with one expected value: a registry keyed by field type.

Each comparator returns a :class:`Comparison`: a ``score`` in [0, 1] and
whether the pair is a ``match``. Both values are present (not null, not
blank) when a comparator is called; absent values are handled by
:mod:`docextract.evaluation.scoring`.

* ``string``: Unicode NFKC, whitespace stripped and collapsed, case folded
  (each switchable, :class:`~docextract.evaluation.config.StringRule`). Then
  ``exact``: score 1 and a match when equal, else 0; or ``anls``: DocVQA's
  score, ``1 - NL`` when the normalised Levenshtein distance ``NL``
  (distance / longer length, rapidfuzz) is below ``anls_threshold`` (0.5),
  else 0; a match when the score is above 0.
* ``number``, ``integer``: numbers compared as numbers, a match when
  ``|a - b| <= max(abs_tol, rel_tol * max(|a|, |b|))`` (``math.isclose``).
  Strings are read as numbers after removing currency symbols, spaces,
  ``'``, ``_`` and the thousands mark: with ``decimal_separator: "."`` (the
  default) ``"1,234.50"`` is 1234.5; with ``","`` ``"1.234,50"`` is.
  Booleans are not numbers.
* ``date``, ``datetime``: parsed as ISO 8601 (whatever ``dayfirst`` says),
  else with the ``formats`` given (``strptime``), else by python-dateutil
  (``dayfirst``, ``yearfirst``), so ``2024-03-05``, ``March 5, 2024`` and,
  day first, ``05/03/2024`` are one date. Date-times with a time zone are
  compared in UTC; a ``date`` field compares the date only.
* ``boolean``: ``true``/``false``, and the strings ``true/false/yes/no/1/0``.
* ``json``: equal as parsed JSON values.

A value the type's parser cannot read (``"n/a"`` in a number field) is
compared as a string with the default string rule, so a prediction can still
match a truth that holds the same text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from docextract.errors import DocExtractError, validation_problems
from docextract.evaluation.config import DateRule, EvalConfig, NumberRule, StringRule

__all__ = ["FIELD_TYPES", "Comparison", "FieldRule", "FieldType", "field_rules", "is_blank", "normalize_string"]


@dataclass(frozen=True)
class Comparison:
    """How close two present values are (``score``) and whether they count as the same (``match``)."""

    score: float
    match: bool


_MATCH, _MISMATCH = Comparison(1.0, True), Comparison(0.0, False)
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


def compare_strings(predicted: Any, expected: Any, rule: StringRule) -> Comparison:
    a, b = normalize_string(predicted, rule), normalize_string(expected, rule)
    if a == b:
        return _MATCH
    if rule.mode == "exact":
        return _MISMATCH
    from rapidfuzz.distance import Levenshtein

    distance = Levenshtein.normalized_distance(a, b)  # distance / max(len(a), len(b))
    return Comparison(1.0 - distance, True) if distance < rule.anls_threshold else _MISMATCH


def parse_number(value: Any, rule: NumberRule) -> float | None:
    """A number from a JSON number or a string (see the module docstring); None when it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    thousands = "," if rule.decimal_separator == "." else "."
    kept = [ch for ch in value if not (ch.isspace() or ch in ("'", "_", thousands) or unicodedata.category(ch) == "Sc")]
    text = "".join(kept).replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def compare_numbers(predicted: Any, expected: Any, rule: NumberRule) -> Comparison:
    a, b = parse_number(predicted, rule), parse_number(expected, rule)
    if a is None or b is None:
        return compare_strings(predicted, expected, _DEFAULT_STRING)
    return _MATCH if math.isclose(a, b, rel_tol=rule.rel_tol, abs_tol=rule.abs_tol) else _MISMATCH


def parse_datetime(value: Any, rule: DateRule) -> dt.datetime | None:
    """A datetime from a string: ISO 8601, one of ``rule.formats``, or what python-dateutil reads."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    from dateutil import parser

    try:
        # ISO 8601 first: dateutil's parse() applies dayfirst even to 2024-03-05 (-> 3 May).
        return parser.isoparse(text)
    except (ValueError, OverflowError):
        pass
    for fmt in rule.formats:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return parser.parse(text, dayfirst=rule.dayfirst, yearfirst=rule.yearfirst)
    except (ValueError, OverflowError):  # dateutil's ParserError is a ValueError
        return None


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def compare_dates(predicted: Any, expected: Any, rule: DateRule) -> Comparison:
    a, b = parse_datetime(predicted, rule), parse_datetime(expected, rule)
    if a is None or b is None:
        return compare_strings(predicted, expected, _DEFAULT_STRING)
    return _MATCH if a.date() == b.date() else _MISMATCH


def compare_datetimes(predicted: Any, expected: Any, rule: DateRule) -> Comparison:
    a, b = parse_datetime(predicted, rule), parse_datetime(expected, rule)
    if a is None or b is None:
        return compare_strings(predicted, expected, _DEFAULT_STRING)
    return _MATCH if _utc(a) == _utc(b) else _MISMATCH


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _BOOLEANS.get(value.strip().casefold())
    return None


def compare_booleans(predicted: Any, expected: Any, rule: None) -> Comparison:
    a, b = parse_boolean(predicted), parse_boolean(expected)
    if a is None or b is None:
        return compare_strings(predicted, expected, _DEFAULT_STRING)
    return _MATCH if a == b else _MISMATCH


def compare_json(predicted: Any, expected: Any, rule: None) -> Comparison:
    return _MATCH if predicted == expected else _MISMATCH


@dataclass(frozen=True)
class FieldType:
    """A leaf type: the :class:`EvalConfig` attribute holding its rule (None: no settings) and its comparator."""

    rule_key: str | None
    compare: Callable[[Any, Any, Any], Comparison]


#: Leaf types of :func:`docextract.evaluation.fields.field_tree`, each with its comparator.
FIELD_TYPES: dict[str, FieldType] = {
    "string": FieldType("string", compare_strings),
    "number": FieldType("number", compare_numbers),
    "integer": FieldType("number", compare_numbers),
    "date": FieldType("date", compare_dates),
    "datetime": FieldType("date", compare_datetimes),
    "boolean": FieldType(None, compare_booleans),
    "json": FieldType(None, compare_json),
}


@dataclass(frozen=True)
class FieldRule:
    """How one field path is compared: its type, its comparator and the rule the comparator takes."""

    kind: str
    rule: BaseModel | None

    def compare(self, predicted: Any, expected: Any) -> Comparison:
        return FIELD_TYPES[self.kind].compare(predicted, expected, self.rule)

    @property
    def method(self) -> str:
        """Shown in the report: ``exact``/``anls`` for strings, else the type."""
        return self.rule.mode if isinstance(self.rule, StringRule) else self.kind


def field_rules(leaves: dict[str, str], config: EvalConfig) -> dict[str, FieldRule]:
    """The rule of every leaf path: its type's rule from ``config``, with the path's override on top.

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
        rules[path] = FieldRule(kind, base)
    return rules
