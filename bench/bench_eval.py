"""Benchmark item matching in ``docextract eval`` on long tables: time and peak memory per size.

One document whose ``line_items`` (description, quantity, amount) has N rows;
the prediction holds the same rows shuffled, with 5% of the amounts misread,
1% of the rows dropped and 1% invented (the shape of a real long statement
read by a good model). Each size is scored with
:func:`docextract.evaluation.evaluate` in a fresh process, so the peak
resident memory (``ru_maxrss``, and its growth over the process before
scoring) is that size's own; tracemalloc's peak (Python and numpy
allocations, from a second, traced run) is written too. Time excludes imports. Prints a table and writes the
figures as JSON.

Usage:
    python bench/bench_eval.py [--rows 100 1000 10000 20000] [--out bench/results/eval.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

SCHEMA = {
    "type": "object",
    "properties": {
        "statement_id": {"type": "string"},
        "line_items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string"},
                    "quantity": {"type": "number"},
                    "amount": {"type": "number"},
                },
                "required": ["description", "quantity", "amount"],
            },
        },
    },
    "required": ["statement_id", "line_items"],
}


def make_pair(rows: int, seed: int = 0) -> tuple[dict, dict]:
    """A truth of ``rows`` line items and its perturbed prediction (see the module docstring)."""
    rng = random.Random(seed)
    truth = [
        {"description": f"item {k} {rng.choice(['bolt', 'nut', 'gear', 'cable'])}", "quantity": rng.randint(1, 5),
         "amount": round(rng.uniform(1, 5000), 2)}
        for k in range(rows)
    ]  # fmt: skip
    predicted = [dict(item) for item in truth if rng.random() >= 0.01]
    for item in predicted:
        if rng.random() < 0.05:
            item["amount"] = round(item["amount"] + rng.choice([-1, 1]) * rng.uniform(1, 100), 2)
    predicted += [
        {"description": f"invented {k}", "quantity": 1, "amount": round(rng.uniform(1, 99), 2)}
        for k in range(max(1, rows // 100))
    ]
    rng.shuffle(predicted)
    return {"statement_id": "S-1", "line_items": predicted}, {"statement_id": "S-1", "line_items": truth}


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def measure(rows: int) -> dict:
    """Score one document of ``rows`` items; run in a child process. Timed without tracing (after a
    warm-up that imports everything), then once more under tracemalloc for the traced peak."""
    import tracemalloc

    from docextract.evaluation import evaluate
    from docextract.tasks import task_from_schema

    task = task_from_schema(SCHEMA, "Read the statement.", name="statement")
    evaluate(*({"doc": d} for d in make_pair(10)), task)  # imports scipy, rapidfuzz, jsonschema
    predicted, truth = make_pair(rows)
    baseline = _rss_mb()
    start = time.perf_counter()
    report = evaluate({"doc": predicted}, {"doc": truth}, task)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    evaluate({"doc": predicted}, {"doc": truth}, task)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (items,) = report.arrays
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak, 1),
        "rss_before_mb": round(baseline, 1),
        "peak_rss_growth_mb": round(peak - baseline, 1),
        "traced_peak_mb": round(traced_peak / 2**20, 1),
        "predicted_items": items.predicted_items,
        "expected_items": items.expected_items,
        "found": items.found,
        "amount_f1": next(f.f1 for f in report.fields if f.path == "line_items[].amount"),
    }


def _child(rows: int, queue) -> None:
    queue.put(measure(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 1000, 10000, 20000])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "eval.json"))
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    results = []
    print(
        f"{'rows':>7} {'seconds':>8} {'peak RSS MB':>12} {'growth MB':>10} {'traced MB':>10} {'found':>13} {'amount F1':>10}"
    )
    for rows in args.rows:
        queue = context.Queue()
        child = context.Process(target=_child, args=(rows, queue))
        child.start()
        result = queue.get()
        child.join()
        results.append(result)
        print(
            f"{rows:>7} {result['seconds']:>8.2f} {result['peak_rss_mb']:>12.1f} {result['peak_rss_growth_mb']:>10.1f} "
            f"{result['traced_peak_mb']:>10.1f} "
            f"{result['found']:>6}/{result['expected_items']:<6} {result['amount_f1']:>10.4f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"benchmark": "eval item matching", "python": platform.python_version(), "machine": platform.machine(),
             "cpu_count": multiprocessing.cpu_count(), "results": results},
            indent=2,
        ) + "\n"
    )  # fmt: skip
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
