"""Schema coverage on real-world schemas: how many a user can send, and whether ``valid`` tells the truth.

The corpus is built by ``scripts/fetch_schema_corpus.py`` from the sources listed in
``bench/schema_corpus_manifest.json`` (repository, commit, path). For each backend
(xgrammar, guidance) every schema goes through the real compile path
(:func:`docextract.tasks.task_from_schema`: the schema compiler, with the backend's own
grammar compiler) and, if accepted, one real generation on the tiny random-weight model
(:class:`docextract.engine.ExtractionEngine`, the engine every door ends in). Recorded:

* accepted / refused (and why) / rejected by the engine (a 4xx) / engine errors (a 5xx);
* outputs that finished (``finish_reason: stop``) and, for each, whether the result's
  ``valid`` equals an independent jsonschema check of its ``data`` against the user's
  schema (``wrongly_valid`` must be 0);
* how many keywords the grammar enforced, how many were validated after, and the fallbacks;
* compile time for a schema seen first and seen again (the report cache).

Figures are written to ``bench/results/schema_coverage.json``. Run under
``flock /tmp/docextract-heavy.lock`` on a shared machine.

Usage:
    python scripts/fetch_schema_corpus.py --repo SchemaStore/schemastore=GIT_DIR
    python bench/bench_schema_coverage.py [--model DIR] [--max-tokens 256] [--backends xgrammar,guidance]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TQDM_DISABLE", "1")


def _corpus() -> list[tuple[str, object]]:
    manifest = json.loads((ROOT / "bench" / "schema_corpus_manifest.json").read_text())["sources"]
    out = []
    for entry in manifest:
        path = ROOT / "bench" / "corpus" / entry["repo"].replace("/", "__") / entry["path"]
        if not path.is_file():
            raise SystemExit(f"{path} missing: run scripts/fetch_schema_corpus.py first")
        out.append((f"{entry['repo']}:{entry['path']}", json.loads(path.read_text(encoding="utf-8-sig"))))
    return out


def _independent_valid(schema: object, data: object) -> bool:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(data)


def _remote_ref(reason: str | None) -> bool:
    return bool(reason) and "is not local" in reason


async def _run_backend(backend: str, corpus, model: str, max_tokens: int, concurrency: int) -> dict:
    from PIL import Image

    from docextract.config import ExtractionConfig
    from docextract.engine import ExtractionEngine
    from docextract.errors import SchemaError
    from docextract.requests import ExtractionRequest
    from docextract.schema.compiler import check_coverage, clear_cache
    from docextract.tasks import task_from_schema

    clear_cache()
    counts = collections.Counter()
    refused: list[dict] = []
    first_ms, repeat_ms = [], []
    tasks = []
    keyword_counts = collections.Counter()
    for name, schema in corpus:
        started = time.perf_counter()
        try:
            task = task_from_schema(schema, name="corpus", backend=backend)
        except SchemaError as exc:
            counts["refused"] += 1
            counts["refused_remote_ref" if _remote_ref(exc.message) else "refused_other"] += 1
            refused.append({"schema": name, "reason": exc.message[:300]})
            continue
        first_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        check_coverage(schema, backend)
        repeat_ms.append((time.perf_counter() - started) * 1000)
        report = task.report()
        keyword_counts.update(report.counts())
        if report.fallback:
            counts[f"fallback_{report.fallback}"] += 1
        counts["accepted"] += 1
        tasks.append((name, schema, task))

    config = ExtractionConfig(
        model=model,
        max_model_len=32768,  # the schema is shown in the prompt; large ones pass 4096 tokens
        enforce_eager=True,
        structured_output_backend=backend,
        # No per-request seed: vLLM 0.32 on the CPU kills the engine when a seeded request's prefill is
        # chunked ("CPU Generator does not use offset"), and schemas in the prompt make long prefills.
        sampling={"max_tokens": max_tokens, "temperature": 1.0},
        preprocess={"max_pixels": 224 * 224},
    )
    engine_started = time.perf_counter()
    engine = ExtractionEngine(config)
    engine_start_s = time.perf_counter() - engine_started
    image = Image.new("RGB", (96, 96), (200, 60, 60))
    gate = asyncio.Semaphore(concurrency)
    outcomes: list[dict] = []

    async def one(name, schema, task):
        async with gate:
            result = await engine.run(ExtractionRequest(task=task, images=[image], source=name))
        row = {"schema": name, "error_kind": result.error_kind, "finish_reason": result.finish_reason}
        if result.error is not None:
            row["error"] = result.error[:300]
        if result.error is None and result.finish_reason == "stop":
            independent = _independent_valid(schema, result.data)
            row.update(valid=result.valid, independent_valid=independent)
        outcomes.append(row)

    generation_started = time.perf_counter()
    try:
        await asyncio.gather(*(one(*t) for t in tasks))
    finally:
        engine.shutdown()
    generation_s = time.perf_counter() - generation_started
    finished = [o for o in outcomes if "valid" in o]
    for o in outcomes:
        if o["error_kind"] is None:
            counts["generated"] += 1
        elif o["error_kind"] in ("rejected_by_engine", "invalid_request", "too_many_images"):
            counts["rejected_by_engine_4xx"] += 1
        else:
            counts["engine_error_5xx"] += 1
    total = len(corpus)
    self_contained = total - counts["refused_remote_ref"]
    return {
        "backend": backend,
        "schemas": total,
        "accepted": counts["accepted"],
        "accepted_pct": round(100 * counts["accepted"] / total, 1),
        "self_contained_schemas": self_contained,
        "accepted_pct_of_self_contained": round(100 * counts["accepted"] / self_contained, 1),
        "refused": counts["refused"],
        "refused_remote_ref": counts["refused_remote_ref"],
        "refused_other": counts["refused_other"],
        "fallback_relaxed": counts["fallback_relaxed"],
        "fallback_unconstrained": counts["fallback_unconstrained"],
        "rejected_by_engine_4xx": counts["rejected_by_engine_4xx"],
        "engine_error_5xx": counts["engine_error_5xx"],
        "finished": len(finished),
        "cut_by_max_tokens": sum(1 for o in outcomes if o["finish_reason"] == "length"),
        "finished_valid": sum(1 for o in finished if o["valid"]),
        "valid_agrees_with_jsonschema": sum(1 for o in finished if o["valid"] == o["independent_valid"]),
        "wrongly_valid": sum(1 for o in finished if o["valid"] and not o["independent_valid"]),
        "wrongly_invalid": sum(1 for o in finished if not o["valid"] and o["independent_valid"]),
        "keywords": dict(keyword_counts),
        "compile_ms_first_median": round(statistics.median(first_ms), 2) if first_ms else None,
        "compile_ms_repeat_median": round(statistics.median(repeat_ms), 4) if repeat_ms else None,
        "engine_start_s": round(engine_start_s, 1),
        "generation_s": round(generation_s, 1),
        "refusals": refused,
        "disagreements": [o for o in finished if o["valid"] != o["independent_valid"]],
        "engine_errors": [o for o in outcomes if o["error_kind"] is not None],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model directory (default: build the tiny test model in .cache/)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="xgrammar,guidance")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "schema_coverage.json"))
    args = parser.parse_args()
    model = args.model
    if model is None:
        from docextract.testing.tiny_model import build_tiny_model

        target = ROOT / ".cache" / "tiny-qwen2vl"
        model = str(target if (target / "config.json").exists() else build_tiny_model(target))
    corpus = _corpus()
    results = []
    for backend in args.backends.split(","):
        figures = asyncio.run(_run_backend(backend, corpus, model, args.max_tokens, args.concurrency))
        summary = {k: v for k, v in figures.items() if k not in ("refusals", "disagreements", "keywords")}
        print(json.dumps(summary), flush=True)
        results.append(figures)
    out = {
        "benchmark": "schema_coverage",
        "corpus": "bench/schema_corpus_manifest.json",
        "model": "tiny random-weight Qwen2-VL (docextract.testing.tiny_model)",
        "max_tokens": args.max_tokens,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
