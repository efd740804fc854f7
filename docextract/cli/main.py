"""The ``docextract`` command.

Subcommands:

* ``extract PATH... --task NAME``: run extractions in this process (no Ray), one
  JSON line per image or PDF page (or per document with ``--mode document``);
* ``tasks``: list the built-in tasks and their schemas;
* ``schema check FILE|TASK``: the schema compiler's coverage report as a table: each
  keyword at each JSON path enforced by the grammar, validated after generation, an
  annotation, or refused (exit code 1 only for a refused schema);
* ``serve ...``: the online service on Ray Serve (``serve/cli.py`` owns its options);
* ``batch ...``: the Ray Data batch job (same as ``python -m batch.run``);
* ``eval PREDICTIONS TRUTH --task NAME``: field-level accuracy against ground
  truth (:mod:`docextract.evaluation`): a table, ``eval.json`` and ``eval.png``;
* ``tiny-model DIR``: build the random-weight test model.

Exit codes: 0 when every input gave a schema-valid result (``eval``: the
report was written); 1 when some input failed or some output is invalid (each
reported on stderr); 2 for a usage, task, config, input or model error,
reported as one line with no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from docextract.cli.options import add_config_arguments, add_task_arguments, config_and_task, page_selection
from docextract.config import DOCUMENT_MODES, PER_PAGE, ExtractionConfig
from docextract.errors import DocExtractError
from docextract.schema.rules import BACKENDS as SUPPORTED_BACKENDS

if TYPE_CHECKING:
    from docextract.tasks import TaskSpec

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docextract",
        description="Schema-guaranteed JSON from images and PDFs with vLLM constrained decoding.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show engine logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = sub.add_parser(
        "extract",
        help="extract JSON from images/PDFs in this process",
        description="Run a task on images and PDFs and print one JSON line per image or page.",
    )
    extract.add_argument("paths", nargs="+", metavar="PATH", help="image or PDF files")
    add_task_arguments(extract)
    extract.add_argument("--output", "-o", metavar="FILE.jsonl", help="write JSON lines here instead of stdout")
    extract.add_argument(
        "--mode",
        choices=DOCUMENT_MODES,
        default=PER_PAGE,
        help="PDFs: one result per page, or one for the whole document (default: per_page)",
    )
    extract.add_argument("--pages", type=page_selection, help="PDF pages to use, e.g. 1,3-5")
    add_config_arguments(extract, ExtractionConfig)

    tasks = sub.add_parser("tasks", help="list tasks and their schemas")
    tasks.add_argument("name", nargs="?", help="print this task's labelr config.json (instructions + json_schema)")
    tasks.add_argument("--json", action="store_true", help="list as JSON")

    schema = sub.add_parser("schema", help="check a JSON Schema before any run")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True, metavar="SUBCOMMAND")
    check = schema_sub.add_parser(
        "check",
        help="which keywords the grammar enforces, which are validated after, which are refused",
        description="Print the schema compiler's coverage report for FILE|TASK (a schema .json, a labelr "
        "config.json, a built-in task or module:Class). Exit code 1 only when the schema is refused.",
    )
    check.add_argument("ref", metavar="FILE|TASK")
    check.add_argument(
        "--structured-output-backend",
        choices=SUPPORTED_BACKENDS,
        default=ExtractionConfig.model_fields["structured_output_backend"].default,
        help="the grammar backend to check for (default: %(default)s)",
    )
    check.add_argument(
        "--schema-store",
        action="append",
        default=[],
        metavar="PATH",
        help=ExtractionConfig.model_fields["schema_store"].description,
    )
    check.add_argument("--all", action="store_true", help="list enforced keywords too (default: a count)")
    check.add_argument("--json", action="store_true", help="print the report as JSON (as POST /v1/schema/check)")

    # `serve` and `batch` belong to their own packages; main() hands them the rest of the line.
    for name, help_text in (("serve", "run the online service (Ray Serve)"), ("batch", "run a batch job (Ray Data)")):
        sub.add_parser(name, help=help_text, add_help=False)  # parsed by main(), listed here for --help

    evaluation = sub.add_parser(
        "eval",
        help="score predictions against ground truth, field by field",
        description="Field-level accuracy of PREDICTIONS against TRUTH, joined on image_id: prints a table, "
        "writes eval.json (every figure) and eval.png (per-field chart).",
    )
    evaluation.add_argument(
        "predictions", metavar="PREDICTIONS", help="Parquet (labelr layout), JSON lines, or a folder of them"
    )
    evaluation.add_argument("truth", metavar="TRUTH", help="the expected outputs, in the same formats")
    which = evaluation.add_mutually_exclusive_group()
    which.add_argument(
        "--task",
        help="built-in task name, labelr config.json, schema .json, or module:Class "
        "(default: the labelr config.json beside PREDICTIONS or TRUTH)",
    )
    which.add_argument("--schema", metavar="FILE", help="a JSON Schema file (or labelr config.json)")
    evaluation.add_argument(
        "--eval-config", metavar="FILE", help="EvalConfig as YAML/JSON: rules per field type and per field"
    )
    evaluation.add_argument(
        "--out", metavar="DIR", help="where eval.json and eval.png go (default: PREDICTIONS' folder)"
    )
    evaluation.add_argument("--worst", type=int, metavar="N", help="worst examples listed per field (default: 5)")

    tiny = sub.add_parser("tiny-model", help="build the random-weight test model (offline, seconds)")
    tiny.add_argument("dir", help="output directory")
    tiny.add_argument("--size", choices=["tiny", "bench"], default="tiny", help="tiny (tests) or bench (benchmarks)")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--overwrite", action="store_true")
    return parser


def _quiet_engine_logs(verbose: bool) -> None:
    # stdout carries results (JSON lines); vLLM logs to stdout unless told otherwise.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if verbose:
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("vllm", "transformers", "xgrammar"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _report(message: str) -> None:
    print(f"docextract: {message}", file=sys.stderr, flush=True)


def _cmd_tasks(args: argparse.Namespace) -> int:
    from docextract.tasks import builtin_task_names, load_task

    if args.name:
        task = load_task(args.name)
        print(json.dumps(task.labelr_config(), indent=2, ensure_ascii=False))
        return EXIT_OK
    tasks = [load_task(name) for name in builtin_task_names()]
    if args.json:
        listing = [
            {
                "name": t.name,
                "version": t.version,
                "description": t.description,
                "instructions": t.instructions,
                "json_schema": t.json_schema,
            }
            for t in tasks
        ]
        print(json.dumps(listing, indent=2, ensure_ascii=False))
        return EXIT_OK
    for task in tasks:
        fields = ", ".join(task.json_schema.get("properties", {}))
        print(f"{task.name} (v{task.version}): {task.description}")
        print(f"    fields: {fields}")
    print("\n`docextract tasks NAME` prints a task's instructions and JSON Schema.")
    return EXIT_OK


def _schema_of(ref: str) -> object:
    """The JSON Schema ``ref`` names, not yet compiled: a refused schema still gets its report."""
    from docextract.tasks import _read_json, load_task

    path = Path(ref)
    if path.suffix.lower() == ".json" or path.is_file():
        content = _read_json(path)
        return content["json_schema"] if isinstance(content, dict) and "json_schema" in content else content
    return load_task(ref, instructions="-").json_schema


def _cmd_schema(args: argparse.Namespace) -> int:
    from docextract.schema.compiler import check_coverage

    report = check_coverage(_schema_of(args.ref), args.structured_output_backend, args.schema_store)
    if args.json:
        from docextract.schema.report import report_json

        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        from docextract.schema.report import report_table

        print(report_table(report, show_enforced=args.all))
    return EXIT_OK if report.accepted else EXIT_FAILED


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from docextract.testing.tiny_model import BENCH, TINY, build_tiny_model

    started = time.perf_counter()
    path = build_tiny_model(args.dir, BENCH if args.size == "bench" else TINY, seed=args.seed, overwrite=args.overwrite)
    _report(f"{args.size} model ready in {path} ({time.perf_counter() - started:.1f} s); its weights are random")
    print(path)
    return EXIT_OK


async def _run_extract(args: argparse.Namespace, config: ExtractionConfig, task: TaskSpec, out: IO[str]) -> int:
    from docextract.engine import ExtractionEngine
    from docextract.preprocess.documents import load_document

    # Inputs are read before the engine starts, so a bad file fails in a second, not after model load.
    documents, failures = [], 0
    for path in args.paths:
        started = time.perf_counter()
        try:
            document = load_document(path, options=config.preprocess, pages=args.pages)
        except DocExtractError as exc:
            _report(f"error: {exc.message}")
            failures += 1
            continue
        documents.append((document, time.perf_counter() - started))
    if not documents:
        return EXIT_FAILED

    engine = ExtractionEngine(config)
    try:
        invalid = 0
        results = await asyncio.gather(
            *(engine.extract_document(d, task, mode=args.mode, preprocess_s=s) for d, s in documents)
        )
        for result in (r for batch in results for r in batch):
            out.write(result.model_dump_json() + "\n")
            out.flush()
            for warning in result.warnings:
                _report(f"warning: {result.id}: {warning.message} ({warning.kind})")
            if result.error:
                _report(f"error: {result.id}: {result.error}")
                failures += 1
            elif not result.valid:
                invalid += 1
                why = "; ".join(e.describe() for e in result.errors[:3])
                _report(f"invalid output for {result.id}: {why}")
    finally:
        engine.shutdown()
    return EXIT_OK if not (failures or invalid) else EXIT_FAILED


def _cmd_extract(args: argparse.Namespace) -> int:
    config, task = config_and_task(args)
    for warning in task.warnings:
        _report(f"warning: {warning}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            return asyncio.run(_run_extract(args, config, task, out))
    return asyncio.run(_run_extract(args, config, task, sys.stdout))


def _folder(path: str) -> Path:
    return Path(path) if Path(path).is_dir() else Path(path).parent


def _eval_task(args: argparse.Namespace) -> TaskSpec:
    """``--task``/``--schema``, else a labelr ``config.json`` beside the predictions or the truth
    (a batch output folder and a labelr dataset both carry one)."""
    from docextract.errors import TaskError
    from docextract.tasks import load_task

    if args.task or args.schema:
        return load_task(args.task or args.schema)
    for side in (args.predictions, args.truth):
        config = _folder(side) / "config.json"
        try:
            labelr = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None
        except (OSError, ValueError):
            labelr = None
        if isinstance(labelr, dict) and "json_schema" in labelr:
            _report(f"task from {config}")
            return load_task(str(config))
    raise TaskError("give --task or --schema: no labelr config.json beside PREDICTIONS or TRUTH")


def _cmd_eval(args: argparse.Namespace) -> int:
    from docextract.evaluation import evaluate_files, format_table, load_eval_config, write_report

    overrides = {"worst_examples": args.worst} if args.worst is not None else {}
    config = load_eval_config(args.eval_config, **overrides)
    task = _eval_task(args)
    report = evaluate_files(args.predictions, args.truth, task, config)
    paths = write_report(report, args.out or _folder(args.predictions))
    print(format_table(report), flush=True)
    _report(f"report written to {paths[0]} and {paths[1]}")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from serve.cli import main as serve_main

    return serve_main(args.argv)


def _cmd_batch(args: argparse.Namespace) -> int:
    from batch.run import main as batch_main

    return batch_main(args.argv)


_DOORS = ("serve", "batch")
_COMMANDS = {
    "extract": _cmd_extract,
    "tasks": _cmd_tasks,
    "eval": _cmd_eval,
    "tiny-model": _cmd_tiny_model,
    "serve": _cmd_serve,
    "batch": _cmd_batch,
    "schema": _cmd_schema,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``docextract`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in _DOORS:
        # Everything after the command, `--help` included, is the front door's to parse.
        at = argv.index(command)
        args = argparse.Namespace(verbose=bool({"-v", "--verbose"} & set(argv[:at])), argv=argv[at + 1 :])
        args.command = command
    else:
        args = build_parser().parse_args(argv)
    _quiet_engine_logs(args.verbose)
    try:
        return _COMMANDS[args.command](args)
    except DocExtractError as exc:
        _report(f"error: {exc.message}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _report("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
