"""The evaluation report: every figure, typed, as written to ``eval.json``.

Ratios are ``null`` where their denominator is 0 (no predicted value of a
field: no precision); macro averages are taken over the fields where the
figure is defined. Definitions of the counts are in
:mod:`docextract.evaluation.scoring`; the aggregation is
:mod:`docextract.evaluation.aggregate`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docextract.evaluation.config import EvalConfig

__all__ = [
    "ArrayReport",
    "Calibration",
    "ConfidenceBin",
    "DocumentCounts",
    "EvalReport",
    "Example",
    "FieldReport",
    "Figures",
    "RowCounts",
    "Totals",
    "Validity",
]

_STRICT = ConfigDict(extra="forbid")


class Figures(BaseModel):
    """Precision, recall, F1 (over tp/fp/fn), accuracy (over every instance, tn included) and mean score
    (over instances with a value on either side: the mean ANLS for an ``anls`` field)."""

    model_config = _STRICT

    precision: float | None
    recall: float | None
    f1: float | None
    accuracy: float | None
    mean_score: float | None


class Totals(Figures):
    """Figures with the counts they come from. ``fp`` and ``fn`` include the ``mismatches``."""

    instances: int = Field(description="Field instances scored, tn included: tp + fp + fn - mismatches + tn.")
    expected: int = Field(description="Present truth values: tp + fn.")
    predicted: int = Field(description="Present predicted values: tp + fp.")
    tp: int
    fp: int
    fn: int
    tn: int
    mismatches: int


class FieldReport(Totals):
    """One leaf field path."""

    path: str
    type: str = Field(description="The field's type from the schema (string, number, date, ...).")
    method: str = Field(description="How values were compared: exact or anls for strings, else the type.")


class ArrayReport(BaseModel):
    """Item-level figures of one array path: found items over predicted (precision) and expected (recall)."""

    model_config = _STRICT

    path: str
    predicted_items: int
    expected_items: int
    found: int
    precision: float | None
    recall: float | None
    f1: float | None


class RowCounts(BaseModel):
    """Rows joined on ``image_id``: ``total = both + only_predictions + only_truth``."""

    model_config = _STRICT

    total: int
    both: int
    only_predictions: int = Field(description="A prediction row without truth (or whose truth is null): not scored.")
    only_truth: int = Field(description="Truth without a prediction row: scored as an empty prediction.")


class Validity(BaseModel):
    """Prediction outputs over every row (``rows.total``); a missing prediction is neither valid."""

    model_config = _STRICT

    rows: int
    predictions: int = Field(description="Rows that have a prediction row.")
    null_outputs: int = Field(description="Prediction rows whose output is null (an error row of a batch job).")
    json_valid: int = Field(description="Outputs that parse as JSON.")
    schema_valid: int = Field(description="Outputs that validate against the task's schema.")
    json_valid_rate: float | None
    schema_valid_rate: float | None


class DocumentCounts(BaseModel):
    """Scored documents (rows with truth) and how many match exactly: no fp, fn or mismatch; and the
    per-document averages: each document's figure from its own counts, averaged over the documents
    where it is defined (every document weighs the same, as in ExtractBench)."""

    model_config = _STRICT

    evaluated: int
    exact_match: int
    exact_match_rate: float | None
    mean_precision: float | None = None
    mean_recall: float | None = None
    mean_f1: float | None = None
    mean_accuracy: float | None = None


class Example(BaseModel):
    """One field instance that scored below 1, to show why."""

    model_config = _STRICT

    image_id: str
    location: str = Field(
        description="Where in the document, e.g. line_items[t1,p0].amount (t: truth, p: predicted item)."
    )
    outcome: Literal["mismatch", "fp", "fn", "tp"] = Field(description="tp: matched with a score below 1 (ANLS).")
    score: float
    predicted: Any
    expected: Any
    confidence: float | None = Field(default=None, description="The prediction's confidence for this value, if any.")


class ConfidenceBin(BaseModel):
    """One equal-width confidence bin: the field instances whose confidence falls in ``[lower, upper)``
    (the last bin includes 1), their mean confidence and the share of them that are right."""

    model_config = _STRICT

    lower: float
    upper: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


class Calibration(BaseModel):
    """Confidence against correctness, over the field instances whose predicted value has a confidence.

    An instance is right when its outcome is ``tp`` (or ``tn``: a null predicted where the truth has
    none); ``ece`` is the expected calibration error ``sum over bins of count/instances *
    |accuracy - mean_confidence|``."""

    model_config = _STRICT

    instances: int
    accuracy: float | None
    mean_confidence: float | None
    ece: float | None
    bins: list[ConfidenceBin]
    confident_errors: list[Example] = Field(description="The wrong instances with the highest confidence.")


class EvalReport(BaseModel):
    """Everything ``docextract eval`` found; ``eval.json`` is this model as JSON."""

    model_config = _STRICT

    task: str
    predictions: str | None = Field(default=None, description="Where the predictions came from.")
    truth: str | None = Field(default=None, description="Where the truth came from.")
    config: EvalConfig
    definition: str = Field(description="The scoring definition used (profile, nulls, invalid values), in words.")
    headline: str = Field(description="The figure the profile puts first (micro.f1, or documents.mean_accuracy).")
    headline_value: float | None
    rows: RowCounts
    validity: Validity
    documents: DocumentCounts
    micro: Totals = Field(description="Over every field instance of every field.")
    macro: Figures = Field(description="Unweighted mean over fields of each field's figure (where defined).")
    fields: list[FieldReport]
    arrays: list[ArrayReport]
    worst: dict[str, list[Example]] = Field(description="Per field path, the lowest-scoring instances.")
    calibration: Calibration | None = Field(
        default=None, description="Accuracy per confidence bin; None when the predictions carry no confidence."
    )
