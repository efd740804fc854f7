"""Field-level accuracy of extractions against ground truth: ``docextract eval``.

Pure (no Ray, vLLM or torch); scipy, rapidfuzz and matplotlib are imported when used.
Modules, in the order data flows:

* :mod:`~docextract.evaluation.loading`: ``image_id`` -> ``output`` from Parquet (labelr layout),
  JSON lines, or a folder of them (a batch output folder);
* :mod:`~docextract.evaluation.fields`: the task's JSON Schema as a tree of typed field paths;
* :mod:`~docextract.evaluation.config`: :class:`EvalConfig`, how each field type is compared;
* :mod:`~docextract.evaluation.values`: numbers, dates and JSON read by content;
* :mod:`~docextract.evaluation.comparators`: the comparators, a registry keyed by field type;
* :mod:`~docextract.evaluation.similarity`: item similarity, many pairs at once (numpy);
* :mod:`~docextract.evaluation.matching`: array items paired by best assignment, near-linear on long arrays;
* :mod:`~docextract.evaluation.scoring`: one document's outcomes (the definitions are there);
* :mod:`~docextract.evaluation.aggregate`: counts, micro/macro/per-document averages, worst examples;
* :mod:`~docextract.evaluation.calibration`: accuracy per confidence bin, expected calibration error;
* :mod:`~docextract.evaluation.evaluate`: the join and validity; writing the report;
* :mod:`~docextract.evaluation.report`, :mod:`~docextract.evaluation.table`,
  :mod:`~docextract.evaluation.chart`: the report as JSON, text and PNG.
"""

from __future__ import annotations

from docextract.evaluation.config import PROFILES, DateRule, EvalConfig, NumberRule, StringRule, load_eval_config
from docextract.evaluation.evaluate import check_config, evaluate, evaluate_files, load_truth, write_report
from docextract.evaluation.loading import load_outputs, load_predictions
from docextract.evaluation.report import EvalReport
from docextract.evaluation.table import format_table

__all__ = [
    "PROFILES",
    "DateRule",
    "EvalConfig",
    "EvalReport",
    "NumberRule",
    "StringRule",
    "check_config",
    "evaluate",
    "evaluate_files",
    "format_table",
    "load_eval_config",
    "load_outputs",
    "load_predictions",
    "load_truth",
    "write_report",
]
