"""Predictions + truth + task -> :class:`~docextract.evaluation.report.EvalReport`, and the files it is written to.

Rows are joined on ``image_id``. For each row:

* a prediction row counts towards validity: its output parses as JSON
  (``json.loads(strict=False)``, the engine's own leniency), and it conforms
  to the task's schema (:func:`docextract.validate.validate_data`, the
  check the engine and the batch job make). Every row, a missing prediction
  included, is in the denominators; a missing prediction is neither valid;
* a truth row is scored (:mod:`docextract.evaluation.scoring`) against the
  prediction, or against ``{}`` when the prediction is missing, null or not a
  JSON object. A truth whose output is null is no truth (an unlabelled row);
  one that is not a JSON object is an error, named with its id; a
  prediction's per-field ``confidence``, when given, joins the scored pairs
  (:mod:`docextract.evaluation.calibration`);
* a prediction without truth is counted (``rows.only_predictions``) and its
  validity too, but not scored: there is nothing to compare it with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docextract.errors import DocExtractError
from docextract.evaluation.aggregate import Aggregator
from docextract.evaluation.calibration import read_confidence
from docextract.evaluation.config import EvalConfig
from docextract.evaluation.fields import field_tree
from docextract.evaluation.loading import load_outputs, load_predictions
from docextract.evaluation.report import EvalReport
from docextract.evaluation.scoring import DocumentScorer

if TYPE_CHECKING:
    from docextract.tasks import TaskSpec

__all__ = ["check_config", "evaluate", "evaluate_files", "load_truth", "parse_truth", "write_report"]


def _parse(value: Any) -> tuple[bool, Any]:
    """``(parses, value)``: a string is JSON text; anything else is already a parsed value."""
    if not isinstance(value, str):
        return True, value
    try:
        return True, json.loads(value, strict=False)
    except json.JSONDecodeError:
        return False, None


def load_truth(path: str | Path) -> dict[str, dict[str, Any]]:
    """The truth under ``path``, parsed: ``image_id`` -> expected object; null outputs are left out.

    Raises:
        DocExtractError: as :func:`~docextract.evaluation.loading.load_outputs`, or an output that is
            not a JSON object.
    """
    return parse_truth(load_outputs(path), str(path))


def parse_truth(outputs: Mapping[str, Any], source: str = "truth") -> dict[str, dict[str, Any]]:
    """Parse each truth output (see :func:`load_truth`)."""
    truth: dict[str, dict[str, Any]] = {}
    for image_id, output in outputs.items():
        if output is None:
            continue
        parses, value = _parse(output)
        if not parses or not isinstance(value, dict):
            what = "not valid JSON" if not parses else "not a JSON object"
            raise DocExtractError(
                f"{source}: the output of {image_id!r} is {what}; a truth must be the expected object"
            )
        truth[image_id] = value
    return truth


def check_config(task: TaskSpec, config: EvalConfig) -> None:
    """Check ``config``'s per-field overrides against ``task``'s schema (as :func:`evaluate` does first).

    Raises:
        DocExtractError: an override names a field the schema lacks, or keys its type has not.
    """
    DocumentScorer(field_tree(task.json_schema), config, task.json_schema)


def evaluate(
    predictions: Mapping[str, Any],
    truth: Mapping[str, Any],
    task: TaskSpec,
    config: EvalConfig | None = None,
    *,
    predictions_name: str | None = None,
    truth_name: str | None = None,
    confidence: Mapping[str, Any] | None = None,
) -> EvalReport:
    """Score ``predictions`` against ``truth`` (both ``image_id`` -> output: JSON text, a parsed
    value or None) for ``task``'s schema; ``confidence``: ``image_id`` -> the prediction's per-field
    confidence (a map of paths to [0, 1], or its JSON text), for the calibration figures.

    Raises:
        DocExtractError: the config names fields the schema lacks, or a truth is not a JSON object.
    """
    from docextract.validate import validate_data

    config = config or EvalConfig()
    scorer = DocumentScorer(field_tree(task.json_schema), config, task.json_schema)
    expected = parse_truth(truth, truth_name or "truth")
    totals = Aggregator(scorer)
    for image_id in sorted(set(predictions) | set(expected)):
        has_prediction, has_truth = image_id in predictions, image_id in expected
        totals.add_row(has_prediction=has_prediction, has_truth=has_truth)
        data = None
        if has_prediction:
            output = predictions[image_id]
            parses, data = _parse(output) if output is not None else (False, None)
            totals.add_prediction(
                output_present=output is not None,
                json_valid=parses,
                schema_valid=parses and validate_data(data, task).valid,
            )
        if has_truth:
            conf = read_confidence(confidence.get(image_id)) if confidence and has_prediction else None
            totals.add_document(image_id, scorer.score(data, expected[image_id]), conf)
    return totals.report(task=task.name, predictions=predictions_name, truth=truth_name)


def evaluate_files(
    predictions: str | Path, truth: str | Path, task: TaskSpec, config: EvalConfig | None = None
) -> EvalReport:
    """:func:`evaluate` on files or folders (see :mod:`docextract.evaluation.loading`); the predictions'
    per-field confidence is read with them when they carry it."""
    outputs, confidence = load_predictions(predictions)
    return evaluate(
        outputs,
        load_outputs(truth),
        task,
        config,
        predictions_name=str(predictions),
        truth_name=str(truth),
        confidence=confidence,
    )


def write_report(report: EvalReport, out_dir: str | Path, *, stem: str = "eval") -> tuple[Path, Path]:
    """Write ``<stem>.json`` (every figure) and ``<stem>.png`` (the chart) into ``out_dir``; return both paths."""
    from docextract.evaluation.chart import write_chart

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
        json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        write_chart(report, png_path)
    except OSError as exc:
        raise DocExtractError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    return json_path, png_path
