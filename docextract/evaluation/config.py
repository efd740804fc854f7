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
    profile: default          # or strict, extractbench: presets of the settings below
    nulls: absent             # or value (null is a value: omitted = null, a correct null is credited)
    invalid_values: read      # or wrong (a predicted value its field's schema rejects is wrong)
    dates_in_strings: true    # any string field: two values that both read as dates compare as dates
    ordered_arrays: [steps]   # arrays whose items pair by position (default: as multisets)
    confidence_bins: 10       # calibration: equal-width confidence bins

A **profile** fills the settings the file leaves out (:data:`PROFILES`); a
key the file gives wins over the profile's. An override holds keys of the rule of that field's type (a string field takes
:class:`StringRule` keys, a number or integer field :class:`NumberRule`'s, a
date or date-time field :class:`DateRule`'s); both the path and the keys are
checked against the task's schema before anything is scored.
"""

from __future__ import annotations

import pathlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from docextract.errors import DocExtractError, validation_problems

__all__ = ["PROFILES", "DateRule", "EvalConfig", "NumberRule", "StringRule", "load_eval_config"]


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
    decimal_separator: Literal["auto", ".", ","] = Field(
        default="auto",
        description="Numbers written as strings: the decimal mark ('.' or ','; the other mark, spaces and ' "
        "group thousands), or auto: decided per value where it is unambiguous ('1.234,50', '5,0', '0,500'), "
        "else '.' ('1,234' is 1234).",
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
    profile: Literal["default", "strict", "extractbench"] = Field(
        default="default", description="A named preset of the settings below (and of string/number rules)."
    )
    nulls: Literal["absent", "value"] = Field(
        default="absent",
        description="absent: null, omitted and blank are absence (both absent: tn; omitted: fn only; hallucinated: "
        "fp only). value: null is a value (an omitted key is an explicit null; a correct null is a tp; a missed or "
        "hallucinated value is a mismatch, counted in precision and recall).",
    )
    invalid_values: Literal["read", "wrong"] = Field(
        default="read",
        description="read: a predicted value is read by content even when its field's schema rejects it "
        "('1,234.50' in a number field, 'Paid' for enum 'paid'); wrong: such a value is a mismatch.",
    )
    dates_in_strings: bool = Field(
        default=True, description="Any string field: values that both read as dates are compared as dates."
    )
    ordered_arrays: list[str] = Field(
        default_factory=list,
        description="Array paths (e.g. 'steps', 'rows[].cells') whose items pair by position, not as multisets.",
    )
    confidence_bins: int = Field(default=10, ge=1, le=100, description="Calibration: equal-width confidence bins.")

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        """Fill what the file leaves out from the profile's preset (a key given explicitly wins)."""
        if not isinstance(data, dict) or data.get("profile") not in PROFILES:
            return data
        out = dict(data)
        for key, preset in PROFILES[out["profile"]].items():
            if isinstance(preset, dict):
                given = out.get(key)
                given = given.model_dump(exclude_unset=True) if isinstance(given, BaseModel) else (given or {})
                out[key] = {**preset, **given} if isinstance(given, dict) else given
            else:
                out.setdefault(key, preset)
        return out

    @property
    def definition(self) -> str:
        """The scoring definition in words, as the report states it."""
        nulls = (
            "null, omitted and blank are absence: both absent is a tn (accuracy only), an omitted value an fn, "
            "a hallucinated value an fp"
            if self.nulls == "absent"
            else "null is a value: an omitted key is an explicit null, a correct null is a tp, a missed or "
            "hallucinated value is a mismatch (one fp and one fn)"
        )
        invalid = (
            "values are read by content even when the schema rejects them"
            if self.invalid_values == "read"
            else "a predicted value its field's schema rejects is wrong"
        )
        return f"profile {self.profile}: {nulls}; {invalid}"


#: The named profiles: the settings each fills in when the config does not give them.
#: ``default`` is the plain defaults; ``strict`` is exact after whitespace collapse, no tolerance,
#: schema-invalid values wrong; ``extractbench`` follows ExtractBench's published value metric
#: (null is a value, schema-invalid values wrong, dates normalised; its headline is per document).
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "strict": {
        "string": {"mode": "exact", "case_sensitive": True, "normalize_unicode": False},
        "number": {"abs_tol": 0.0, "rel_tol": 0.0},
        "invalid_values": "wrong",
        "dates_in_strings": False,
    },
    "extractbench": {"nulls": "value", "invalid_values": "wrong", "dates_in_strings": True},
}


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
