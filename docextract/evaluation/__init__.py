"""Field-level accuracy of extractions against ground truth: ``docextract eval``.

Pure (no Ray, vLLM or torch); scipy, rapidfuzz and matplotlib are imported when used.
Modules, in the order data flows:

* :mod:`~docextract.evaluation.loading`: ``image_id`` -> ``output`` from Parquet (labelr layout),
  JSON lines, or a folder of them (a batch output folder);
* :mod:`~docextract.evaluation.fields`: the task's JSON Schema as a tree of typed field paths;
* :mod:`~docextract.evaluation.config`: :class:`EvalConfig`, how each field type is compared;
* :mod:`~docextract.evaluation.comparators`: the comparators, a registry keyed by field type;
* :mod:`~docextract.evaluation.matching`: array items paired by best assignment;
* :mod:`~docextract.evaluation.scoring`: one document's outcomes (the definitions are there);
* :mod:`~docextract.evaluation.aggregate`: counts, micro/macro averages, worst examples;
* :mod:`~docextract.evaluation.evaluate`: the join and validity; writing the report;
* :mod:`~docextract.evaluation.report`, :mod:`~docextract.evaluation.table`,
  :mod:`~docextract.evaluation.chart`: the report as JSON, text and PNG.
"""

from __future__ import annotations

from docextract.evaluation.config import DateRule, EvalConfig, NumberRule, StringRule, load_eval_config
from docextract.evaluation.evaluate import check_config, evaluate, evaluate_files, load_truth, write_report
from docextract.evaluation.loading import load_outputs
from docextract.evaluation.report import EvalReport
from docextract.evaluation.table import format_table

__all__ = [
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
    "load_truth",
    "write_report",
]
