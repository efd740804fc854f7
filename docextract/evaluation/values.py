"""Reading values by content: numbers written as text, dates in any string, JSON compared as multisets.

* :func:`parse_number`: a JSON number, or a string with currency symbols or
  codes, spaces, ``'`` and ``_`` dropped, an accounting negative
  ``(1,150.00)`` or a trailing minus ``1,150.00-`` read as negative. The
  decimal mark is ``rule.decimal_separator``; with ``auto`` (the default) it
  is decided per value where the value says it: both marks present (the last
  one is the decimal mark: ``1.234,50``), one mark repeated (a thousands mark:
  ``1,234,567``), one mark not followed by exactly three digits (a decimal
  mark: ``5,0``, ``12,50``), or after a leading ``0`` (``0,500``). What is
  left, one mark before exactly three digits (``1,234``, ``1.234``), is read
  with ``.`` as the decimal mark: ``1,234`` is 1234 and ``1.234`` is 1.234.
* :func:`parse_datetime`: ISO 8601, the ``formats`` given, then python-dateutil.
* :func:`string_date`: the date a free string holds when it is written in a
  common date format (ISO, ``03/15/2026``, ``15.03.2026``, ``March 15,
  2026``, ``15 Mar 2026``, ``15-Mar-2026``); anything else is no date, so
  ``"5"`` or ``"Room 12"`` stay strings. Numeric dates follow ``dayfirst``
  unless the day is above 12.
* :func:`canonical_json`: a JSON value as text in which object keys are sorted
  and, unless ``ordered``, list items are sorted too: a list is a multiset.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from typing import Any

from docextract.evaluation.config import DateRule, NumberRule

__all__ = ["canonical_json", "parse_boolean", "parse_datetime", "parse_number", "string_date"]

_CURRENCY_CODE = re.compile(r"^[A-Z]{3}(?=[\s\d(+\-.,])|(?<=[\d\s)])[A-Z]{3}$")
_GROUPED = re.compile(r"^\d{1,3}$")


def _decimal_mark(digits: str, rule: NumberRule) -> str | None:
    """The decimal mark of ``digits`` (only digits, ``.`` and ``,`` left), or None when it has none."""
    dots, commas = digits.count("."), digits.count(",")
    if rule.decimal_separator != "auto":
        return rule.decimal_separator
    if dots and commas:
        return "." if digits.rfind(".") > digits.rfind(",") else ","
    if dots + commas == 0:
        return None
    mark = "." if dots else ","
    if dots + commas > 1:
        return "," if mark == "." else "."  # a repeated mark groups thousands: the decimal mark is the other
    head, tail = digits.split(mark)
    if len(tail) != 3 or head in ("", "0") or not _GROUPED.match(head):
        return mark
    return "."  # 1,234 / 1.234: ambiguous; '.' is the decimal mark


def parse_number(value: Any, rule: NumberRule) -> float | None:
    """A number from a JSON number or a string (see the module docstring); None when it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = _CURRENCY_CODE.sub("", unicodedata.normalize("NFKC", value).strip()).replace("\u2212", "-")
    text = "".join(ch for ch in text if not (ch.isspace() or ch in "'_" or unicodedata.category(ch) == "Sc"))
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    elif text.endswith("-") and text[:-1].replace(",", "").replace(".", "").isdigit():
        negative, text = True, text[:-1]
    sign = ""
    if text[:1] in "+-" and text:
        sign, text = text[0], text[1:]
    if not text or not all(ch.isdigit() or ch in ".," for ch in text):
        return _plain_float(sign + text, negative)  # 1e3, inf: Python's own reading, finite only
    mark = _decimal_mark(text, rule)
    thousands = "," if mark != "," else "."
    text = text.replace(thousands, "")
    if mark == ",":
        text = text.replace(",", ".")
    return _plain_float(sign + text, negative)


def _plain_float(text: str, negative: bool) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return -number if negative else number


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


_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE_SHAPES = [
    re.compile(r"^\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?$"),
    re.compile(r"^\d{1,2}([/.\-])\d{1,2}\1(?:\d{4}|\d{2})$"),
    re.compile(r"^\d{4}([/.])\d{1,2}\1\d{1,2}$"),
    re.compile(rf"^{_MONTH}\s+{_DAY},?\s+\d{{4}}$"),
    re.compile(rf"^{_DAY}(?:\s+|-){_MONTH}(?:,?\s+|-)\d{{4}}$"),
]


def string_date(value: Any, rule: DateRule) -> str | None:
    """The ISO text of the date (or instant) a free string holds, or None when it is no date."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    text = " ".join(value.split()).casefold()
    if not any(shape.match(text) for shape in _DATE_SHAPES):
        return None
    parsed = parse_datetime(text, rule)
    if parsed is None:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    has_time = ":" in text
    return parsed.isoformat() if has_time else parsed.date().isoformat()


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _BOOLEANS.get(value.strip().casefold())
    return None


def _canonical(value: Any, ordered: bool) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v, ordered) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v, ordered) for v in value]
        return items if ordered else sorted(items, key=lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False))
    return value


def canonical_json(value: Any, *, ordered: bool = False) -> str:
    """``value`` as JSON text with sorted keys; lists sorted (multisets) unless ``ordered``."""
    return json.dumps(_canonical(value, ordered), sort_keys=True, ensure_ascii=False)
