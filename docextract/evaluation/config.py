"""How values are compared: :class:`EvalConfig`, one rule per field type plus per-field overrides.

A YAML (or JSON) file given with ``--eval-config`` fills it; unknown keys are
errors (``extra="forbid"``), as in every settings model of the project::

    string: {mode: exact, case_sensitive: false}   # or mode: anls (anls_threshold: 0.5)
    number: {abs_tol: 0.01, decimal_separator: "."}
    date: {dayfirst: true, formats: ["%d.%m.%Y"]}
    fields:                                        # per field path, on top of its type's rule
      vendor.address: {mode: anls}
      line_items[].amount: {rel_tol: 0.001}
    item_match_threshold: 0.5
    worst_examples: 5

An override holds keys of the rule of that field's type (a string field takes
:class:`StringRule` keys, a number or integer field :class:`NumberRule`'s, a
date or date-time field :class:`DateRule`'s); both the path and the keys are
checked against the task's schema before anything is scored.
"""

from __future__ import annotations

import pathlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from docextract.errors import DocExtractError, validation_problems

__all__ = ["DateRule", "EvalConfig", "NumberRule", "StringRule", "load_eval_config"]


class StringRule(BaseModel):
    """Strings: exact match after folding, or ANLS (DocVQA's normalised-Levenshtein similarity)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["exact", "anls"] = Field(
        default="exact", description="exact: equal after normalisation; anls: similarity with a threshold."
    )
    case_sensitive: bool = Field(default=False, description="Compare case (default: case-folded).")
    normalize_whitespace: bool = Field(
        default=True, description="Strip both ends and collapse runs of whitespace into one space."
    )
    normalize_unicode: bool = Field(default=True, description="Apply Unicode NFKC (full-width forms, ligatures).")
    anls_threshold: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="ANLS: a normalised distance at or above this scores 0 (DocVQA's tau).",
    )


class NumberRule(BaseModel):
    """Numbers and integers: compared as numbers, within a tolerance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    abs_tol: float = Field(default=0.0, ge=0.0, description="Match when |a - b| <= abs_tol ...")
    rel_tol: float = Field(default=0.0, ge=0.0, description="... or |a - b| <= rel_tol * max(|a|, |b|).")
    decimal_separator: Literal[".", ","] = Field(
        default=".",
        description="Numbers written as strings: the decimal mark; the other mark, spaces and ' group thousands.",
    )


class DateRule(BaseModel):
    """Dates and date-times: compared as dates (or instants), whatever their written format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    formats: list[str] = Field(
        default_factory=list, description="strptime formats tried first, in order (e.g. '%d.%m.%Y')."
    )
    dayfirst: bool = Field(default=False, description="Ambiguous dates such as 05/03/2024 are day first (5 March).")
    yearfirst: bool = Field(default=False, description="Ambiguous dates such as 24/03/05 are year first.")


class EvalConfig(BaseModel):
    """Every setting of an evaluation; the defaults are what ``docextract eval`` uses without a file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    string: StringRule = Field(default_factory=StringRule, description="Rule for string fields (enums included).")
    number: NumberRule = Field(default_factory=NumberRule, description="Rule for number and integer fields.")
    date: DateRule = Field(default_factory=DateRule, description="Rule for string fields of format date/date-time.")
    fields: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per field path (e.g. 'line_items[].amount'): keys of its type's rule that replace the defaults.",
    )
    blank_is_absent: bool = Field(
        default=True, description="A string that is empty after stripping counts as absent, like null."
    )
    item_match_threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Arrays: an assigned pair of items counts as a found item when its similarity is at least this.",
    )
    worst_examples: int = Field(default=5, ge=0, description="Worst examples kept per field in the report.")


def load_eval_config(path: str | pathlib.Path | None = None, **overrides: Any) -> EvalConfig:
    """An :class:`EvalConfig` from a YAML/JSON file (or the defaults), with ``overrides`` on top."""
    from docextract.config import read_config_file

    data = read_config_file(path) if path is not None else {}
    data.update(overrides)
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path is not None else ""
        raise DocExtractError(f"{where}invalid evaluation config: {validation_problems(exc)}") from None
