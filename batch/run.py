"""``python -m batch.run`` (or ``docextract batch``): run a batch extraction job.

Locally it starts an embedded Ray (or joins ``RAY_ADDRESS``/``--address``);
on a cluster submit it as a job::

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python -m batch.run --input /data/scans --output /data/out --task invoice --model Qwen/Qwen2.5-VL-3B-Instruct

(``ray job submit`` sets ``RAY_ADDRESS`` for the job's driver, and uploads
the working directory minus what ``.gitignore`` lists.)

Every engine, sampling and preprocessing option is generated from
:class:`~docextract.config.ExtractionConfig` (same flags as
``docextract extract``); the job's own options are :class:`~batch.options.BatchOptions`.

With ``--truth PATH`` (and optionally ``--eval-config FILE``) the whole
output folder is then scored against the truth (:mod:`docextract.evaluation`):
the table is printed and ``eval.json`` and ``eval.png`` are written beside the
parts. The truth and the config are read before the job starts.

Exit codes: 0 the job ran to the end (rows that failed are in the output with
their error, and counted in the summary); 1 the pipeline itself failed (what
was finished is kept: run again to resume); 2 a usage, config, task, input or
model error, reported as one line (also when the evaluation after a finished
run fails).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch.options import BatchOptions
from docextract.cli.options import (
    add_config_arguments,
    add_model_options,
    add_task_arguments,
    config_and_task,
    given_options,
    page_selection,
)
from docextract.config import ExtractionConfig
from docextract.errors import DocExtractError, validation_problems

if TYPE_CHECKING:
    from batch.summary import JobSummary
    from docextract.evaluation import EvalConfig
    from docextract.tasks import TaskSpec

__all__ = ["build_parser", "main", "run_job"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_JOB = "job"  # dest prefix of BatchOptions' options
# Only what the field's type does not say; help and defaults come from BatchOptions.
_OPTION_OVERRIDES: dict[str, dict[str, Any]] = {
    "inputs": {"flag": "--input", "action": "append", "type": str, "metavar": "PATH"},
    "output": {"metavar": "DIR"},
    "pages": {"type": page_selection, "metavar": "PAGES"},
    "image_column": {"metavar": "NAME"},
    "id_column": {"metavar": "NAME"},
    "address": {"metavar": "ADDRESS"},
    "num_cpus": {"metavar": "N"},
    "num_actors": {"metavar": "N"},
    "min_actors": {"metavar": "N"},
    "max_actors": {"metavar": "N"},
    "batch_size": {"metavar": "N"},
    "max_in_flight": {"metavar": "N"},
    "preprocess_cpus": {"metavar": "CPUS"},
    "include_images": {"show_default": False},
    "retry_errors": {"show_default": False},
    "part_rows": {"metavar": "N"},
    "flush_s": {"flag": "--flush-seconds", "metavar": "S"},
    "truth": {"metavar": "PATH"},
    "eval_config": {"metavar": "FILE"},
}


def _report(message: str) -> None:
    print(f"docextract batch: {message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch.run",
        description="Extract schema-guaranteed JSON from image/PDF folders and Parquet datasets with Ray Data.",
    )
    add_model_options(parser, BatchOptions, title="job (BatchOptions)", dest_prefix=_JOB, overrides=_OPTION_OVERRIDES)
    add_task_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="show engine logs")
    add_config_arguments(parser, ExtractionConfig)
    return parser


def _batch_options(args: argparse.Namespace) -> BatchOptions:
    from pydantic import ValidationError

    try:
        return BatchOptions(**given_options(args, _JOB))
    except ValidationError as exc:
        raise DocExtractError(f"invalid options: {validation_problems(exc, root='(options)')}") from None


def _quiet_engine_logs(verbose: bool) -> None:
    # Set before Ray starts: init_ray forwards VLLM_* and TQDM_* to the workers.
    if not verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def _stop_on_sigterm() -> Any:
    """``ray job stop`` sends SIGTERM: unwind (so finished results are written), then exit 143.
    Returns the previous handler."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)


def run_job(options: BatchOptions, config: ExtractionConfig, task: TaskSpec) -> JobSummary:
    """Plan the inputs, connect to Ray, run the pipeline; return the :class:`~batch.summary.JobSummary`."""
    import ray

    from batch.inputs import plan_inputs
    from batch.outputs import write_config
    from batch.pipeline import build_dataset, run_pipeline
    from batch.resume import done_ids, prepare_output
    from docextract.cluster.runtime import init_ray

    started_at = time.time()
    out_dir = Path(options.output)
    # Inputs and the output folder are checked before Ray or the engine start: a typo fails in a second.
    plan = plan_inputs(options.inputs, options)
    for source in plan.sources:
        if source.skipped:
            shown = ", ".join(source.skipped[:5]) + (", ..." if len(source.skipped) > 5 else "")
            _report(f"{source.spec}: skipped {len(source.skipped)} files that are not images or PDFs ({shown})")
    prepare_output(out_dir)
    write_config(out_dir, task.labelr_config())
    done = done_ids(out_dir, retry_errors=options.retry_errors)
    if done:
        _report(f"resuming: {len(done)} rows already in {out_dir} are skipped")

    started_ray = not ray.is_initialized()
    init_ray(options.address, num_cpus=options.num_cpus)
    ray_ready_at = time.time()
    try:
        ds = build_dataset(plan, options, config, task, frozenset(done))
        return run_pipeline(
            ds,
            options=options,
            out_dir=out_dir,
            meta_type=plan.meta_type,
            done=done,
            task=task,
            model=config.model_name,
            report=_report,
            started_at=started_at,
            ray_ready_at=ray_ready_at,
        )
    finally:
        if started_ray:
            ray.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m batch.run`` and ``docextract batch``."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    _quiet_engine_logs(args.verbose)
    try:
        options = _batch_options(args)
        config, task = config_and_task(args)
        for warning in task.warnings:
            _report(f"warning: {warning}")
        evaluation = _prepare_evaluation(options, task) if options.truth else None
    except DocExtractError as exc:
        _report(f"error: {exc.message}")
        return EXIT_USAGE
    previous = _stop_on_sigterm() if _in_main_thread() else None
    try:
        summary = run_job(options, config, task)
    except DocExtractError as exc:
        _report(f"error: {exc.message}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _report("interrupted; finished rows are kept, run again to resume")
        return 130
    except SystemExit as exc:
        _report("stopped; finished rows are kept, run again to resume")
        return int(exc.code or 1)
    except Exception as exc:  # the pipeline failed: one line, and what was written stays
        _report(f"the job failed: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"docextract batch: {summary.one_line()}", flush=True)
    return _evaluate_output(options, task, *evaluation) if evaluation else EXIT_OK


def _prepare_evaluation(options: BatchOptions, task: TaskSpec) -> tuple[EvalConfig, dict[str, Any]]:
    """The evaluation config and the truth, read and checked before the job starts: a bad truth
    file fails in a second, not after the run."""
    from docextract.evaluation import check_config, load_eval_config, load_truth

    eval_config = load_eval_config(options.eval_config)
    check_config(task, eval_config)
    return eval_config, load_truth(options.truth)


def _evaluate_output(options: BatchOptions, task: TaskSpec, eval_config: EvalConfig, truth: dict[str, Any]) -> int:
    """Score the whole output folder (earlier runs' rows included) against the truth; write the report there."""
    from batch.outputs import PART_GLOB
    from docextract.evaluation import evaluate, format_table, load_predictions, write_report

    try:
        # The parts only, whatever else is in the folder; their confidence feeds the calibration figures.
        outputs, confidence = load_predictions(options.output, pattern=PART_GLOB)
        report = evaluate(
            outputs,
            truth,
            task,
            eval_config,
            predictions_name=options.output,
            truth_name=options.truth,
            confidence=confidence,
        )
        json_path, png_path = write_report(report, options.output)
    except DocExtractError as exc:
        _report(f"the job ran, the evaluation failed: {exc.message}")
        return EXIT_USAGE
    print(format_table(report), flush=True)
    _report(f"evaluation written to {json_path} and {png_path}")
    return EXIT_OK


def _in_main_thread() -> bool:
    """Signal handlers can only be set from the main thread."""
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
