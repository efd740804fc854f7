"""Is a field's confidence worth its number? Accuracy per confidence bin and the expected calibration error.

Predictions may carry a per-field confidence (``ExtractionResult.confidence``:
``{"line_items[2].amount": 0.93, ...}``, paths in the syntax of validation
errors; a batch row's ``confidence`` column holds the same as JSON). Each
scored field instance knows the path of its predicted value
(:attr:`~docextract.evaluation.scoring.FieldResult.predicted_path`), so the
confidence joins the very pairs the accuracy figures come from: a line item is
judged against the truth item it was matched with.

* An instance counts when its predicted value has a confidence (an omitted
  key has none); it is **right** when its outcome is ``tp`` or ``tn``.
* ``confidence_bins`` (10) equal-width bins over [0, 1]: bin ``k`` holds
  confidences in ``[k/B, (k+1)/B)``, the last one 1.0 as well; per bin the
  count, the mean confidence and the accuracy.
* ``ece = sum_k count_k / N * |accuracy_k - mean_confidence_k|`` over the
  non-empty bins (Naeini et al., 2015; Guo et al., 2017).

A well-calibrated confidence has accuracy close to the confidence in every
bin: a user then picks the review threshold from this table.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Mapping
from typing import Any

from docextract.evaluation.report import Calibration, ConfidenceBin, Example
from docextract.evaluation.scoring import FieldResult

__all__ = ["CalibrationTally", "read_confidence"]


def read_confidence(value: Any) -> dict[str, float] | None:
    """A prediction's confidence map from a result object's dict or a batch row's JSON string; None when
    there is none or it is not a map of numbers in [0, 1]."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if not isinstance(value, Mapping):
        return None
    out = {}
    for path, score in value.items():
        if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score) and 0 <= score <= 1:
            out[str(path)] = float(score)
    return out


class CalibrationTally:
    """Collects ``(confidence, right)`` per field instance; :meth:`report` bins them."""

    def __init__(self, bins: int, keep: int) -> None:
        self.bins = bins
        self.keep = keep
        self.count = [0] * bins
        self.confidence_sum = [0.0] * bins
        self.right = [0] * bins
        self.errors: list[tuple[float, int, Example]] = []  # min-heap of the most confident errors
        self._seen = 0

    def add(self, image_id: str, result: FieldResult, confidence: Mapping[str, float] | None) -> float | None:
        """Count one instance if its predicted value has a confidence; return that confidence."""
        if not confidence or result.predicted_path is None:
            return None
        score = confidence.get(result.predicted_path)
        if score is None:
            return None
        k = min(int(score * self.bins), self.bins - 1)
        right = result.outcome in ("tp", "tn")
        self.count[k] += 1
        self.confidence_sum[k] += score
        self.right[k] += right
        if not right and self.keep:
            self._seen += 1
            example = Example(
                image_id=image_id,
                location=result.location,
                outcome=result.outcome,
                score=result.score or 0.0,
                predicted=result.predicted,
                expected=result.expected,
                confidence=score,
            )
            # Ties keep the earlier instance: -seen orders later ones lower.
            item = (score, -self._seen, example)
            if len(self.errors) < self.keep:
                heapq.heappush(self.errors, item)
            elif item[:2] > self.errors[0][:2]:
                heapq.heapreplace(self.errors, item)
        return score

    def report(self) -> Calibration | None:
        total = sum(self.count)
        if total == 0:
            return None
        bins = []
        ece = 0.0
        for k in range(self.bins):
            n = self.count[k]
            mean = self.confidence_sum[k] / n if n else None
            accuracy = self.right[k] / n if n else None
            if n:
                ece += n / total * abs(accuracy - mean)
            bins.append(
                ConfidenceBin(
                    lower=k / self.bins, upper=(k + 1) / self.bins, count=n, mean_confidence=mean, accuracy=accuracy
                )
            )
        errors = [example for _, _, example in sorted(self.errors, key=lambda e: (-e[0], -e[1]))]
        return Calibration(
            instances=total,
            accuracy=sum(self.right) / total,
            mean_confidence=sum(self.confidence_sum) / total,
            ece=ece,
            bins=bins,
            confident_errors=errors,
        )
