"""Adding documents up: per-field counts, micro and macro averages, documents, validity, worst examples.

* per field: ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
  ``f1 = 2 tp / (2 tp + fp + fn)`` (``fp`` and ``fn`` include mismatches),
  ``accuracy = (tp + tn) / instances``, ``mean_score`` = mean score over the
  instances that are not ``tn``;
* **micro**: the same formulas over the counts of all fields together (every
  field instance weighs the same);
* **macro**: the unweighted mean over fields of each field's figure, over the
  fields where it is defined (every field weighs the same);
* arrays: ``precision = found / predicted items``, ``recall = found / expected
  items``, F1 from those two;
* per document: each document's precision, recall, F1 and accuracy from its
  own counts, averaged over the documents where defined (``documents.mean_*``);
* the **headline** is the figure the profile puts first: ``micro.f1``, or for
  ``extractbench`` ``documents.mean_accuracy`` (its value metric is a
  per-document average; under ``nulls: value`` accuracy, precision and recall
  coincide within a predicted object);
* calibration (:mod:`docextract.evaluation.calibration`) when predictions carry
  confidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from docextract.evaluation.calibration import CalibrationTally
from docextract.evaluation.report import (
    ArrayReport,
    DocumentCounts,
    EvalReport,
    Example,
    FieldReport,
    Figures,
    RowCounts,
    Totals,
    Validity,
)
from docextract.evaluation.scoring import DocumentScore, DocumentScorer, FieldResult

__all__ = ["Aggregator", "ratio"]


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when there is nothing to divide by."""
    return numerator / denominator if denominator else None


@dataclass
class _FieldTally:
    tp: int = 0
    mismatch: int = 0
    fp_only: int = 0
    fn_only: int = 0
    tn: int = 0
    score_sum: float = 0.0

    def add(self, result: FieldResult) -> None:
        if result.outcome == "tp":
            self.tp += 1
        elif result.outcome == "mismatch":
            self.mismatch += 1
        elif result.outcome == "fp":
            self.fp_only += 1
        elif result.outcome == "fn":
            self.fn_only += 1
        else:
            self.tn += 1
        self.score_sum += result.score or 0.0

    def merge(self, other: _FieldTally) -> None:
        for name in ("tp", "mismatch", "fp_only", "fn_only", "tn", "score_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def totals(self) -> dict[str, Any]:
        fp, fn = self.fp_only + self.mismatch, self.fn_only + self.mismatch
        scored = self.tp + self.mismatch + self.fp_only + self.fn_only
        instances = scored + self.tn
        return {
            "precision": ratio(self.tp, self.tp + fp),
            "recall": ratio(self.tp, self.tp + fn),
            "f1": ratio(2 * self.tp, 2 * self.tp + fp + fn),
            "accuracy": ratio(self.tp + self.tn, instances),
            "mean_score": ratio(self.score_sum, scored),
            "instances": instances,
            "expected": self.tp + fn,
            "predicted": self.tp + fp,
            "tp": self.tp,
            "fp": fp,
            "fn": fn,
            "tn": self.tn,
            "mismatches": self.mismatch,
        }


_FIGURES = ("precision", "recall", "f1", "accuracy", "mean_score")


def _macro(fields: list[FieldReport]) -> Figures:
    means: dict[str, float | None] = {}
    for name in _FIGURES:
        values = [getattr(f, name) for f in fields if getattr(f, name) is not None]
        means[name] = ratio(sum(values), len(values))
    return Figures(**means)


class Aggregator:
    """Collects rows (:meth:`add_prediction`, :meth:`add_document`, :meth:`add_row`) into an :class:`EvalReport`."""

    def __init__(self, scorer: DocumentScorer) -> None:
        self.scorer = scorer
        self.fields = {path: _FieldTally() for path in scorer.rules}
        self.arrays: dict[str, list[int]] = {}  # path -> [predicted, expected, found]
        self.worst: dict[str, list[tuple[float, str, str, FieldResult]]] = {path: [] for path in scorer.rules}
        self.rows = {"both": 0, "only_predictions": 0, "only_truth": 0}
        self.validity = {"predictions": 0, "null_outputs": 0, "json_valid": 0, "schema_valid": 0}
        self.documents = {"evaluated": 0, "exact_match": 0}
        self.per_document: dict[str, list[float]] = {name: [] for name in ("precision", "recall", "f1", "accuracy")}
        config = scorer.config
        self.calibration = CalibrationTally(config.confidence_bins, config.worst_examples)

    def add_row(self, *, has_prediction: bool, has_truth: bool) -> None:
        """Count one joined row by which sides it has."""
        key = "both" if has_prediction and has_truth else "only_predictions" if has_prediction else "only_truth"
        self.rows[key] += 1

    def add_prediction(self, *, output_present: bool, json_valid: bool, schema_valid: bool) -> None:
        """Count one prediction row's output for the validity figures."""
        self.validity["predictions"] += 1
        self.validity["null_outputs"] += not output_present
        self.validity["json_valid"] += json_valid
        self.validity["schema_valid"] += schema_valid

    def add_document(self, image_id: str, score: DocumentScore, confidence: Mapping[str, float] | None = None) -> None:
        """Add one scored document (a row with truth), with its prediction's per-field confidence if any."""
        self.documents["evaluated"] += 1
        self.documents["exact_match"] += score.exact
        document = _FieldTally()
        for result in score.fields:
            self.fields[result.path].add(result)
            document.add(result)
            conf = self.calibration.add(image_id, result, confidence)
            if result.outcome != "tn" and (result.score or 0.0) < 1.0:
                self._keep_example(image_id, result, conf)
        figures = document.totals()
        for name, values in self.per_document.items():
            if figures[name] is not None:
                values.append(figures[name])
        for counts in score.items:
            tally = self.arrays.setdefault(counts.path, [0, 0, 0])
            tally[0] += counts.predicted
            tally[1] += counts.expected
            tally[2] += counts.found

    def _keep_example(self, image_id: str, result: FieldResult, confidence: float | None) -> None:
        limit = self.scorer.config.worst_examples
        if limit == 0:
            return
        kept = self.worst[result.path]
        kept.append((result.score or 0.0, image_id, result.location, result, confidence))
        if len(kept) > 4 * limit + 16:  # trim now and then: memory stays bounded on large datasets
            kept.sort(key=lambda k: k[:3])
            del kept[limit:]

    def report(self, *, task: str, predictions: str | None = None, truth: str | None = None) -> EvalReport:
        """Every figure of the rows added so far."""
        fields = [
            FieldReport(path=path, type=rule.kind, method=rule.method, **self.fields[path].totals())
            for path, rule in self.scorer.rules.items()
        ]
        overall = _FieldTally()
        for tally in self.fields.values():
            overall.merge(tally)
        arrays = []
        for path, (predicted, expected, found) in self.arrays.items():
            precision, recall = ratio(found, predicted), ratio(found, expected)
            arrays.append(
                ArrayReport(
                    path=path,
                    predicted_items=predicted,
                    expected_items=expected,
                    found=found,
                    precision=precision,
                    recall=recall,
                    f1=ratio(2 * found, predicted + expected),
                )
            )
        total = sum(self.rows.values())
        worst = {}
        for path, kept in self.worst.items():
            kept.sort(key=lambda k: k[:3])
            if kept:
                worst[path] = [
                    Example(
                        image_id=image_id,
                        location=location,
                        outcome=r.outcome,
                        score=score,
                        predicted=r.predicted,
                        expected=r.expected,
                        confidence=confidence,
                    )
                    for score, image_id, location, r, confidence in kept[: self.scorer.config.worst_examples]
                ]
        evaluated = self.documents["evaluated"]
        means = {f"mean_{name}": ratio(sum(v), len(v)) for name, v in self.per_document.items()}
        micro = Totals(**overall.totals())
        config = self.scorer.config
        headline = "documents.mean_accuracy" if config.profile == "extractbench" else "micro.f1"
        return EvalReport(
            task=task,
            predictions=predictions,
            truth=truth,
            config=config,
            definition=config.definition,
            headline=headline,
            headline_value=means["mean_accuracy"] if config.profile == "extractbench" else micro.f1,
            rows=RowCounts(total=total, **self.rows),
            validity=Validity(
                rows=total,
                **self.validity,
                json_valid_rate=ratio(self.validity["json_valid"], total),
                schema_valid_rate=ratio(self.validity["schema_valid"], total),
            ),
            documents=DocumentCounts(
                evaluated=evaluated,
                exact_match=self.documents["exact_match"],
                exact_match_rate=ratio(self.documents["exact_match"], evaluated),
                **means,
            ),
            micro=micro,
            macro=_macro(fields),
            fields=fields,
            arrays=arrays,
            worst=worst,
            calibration=self.calibration.report(),
        )
