"""Benchmark peak memory against page count, online and in batch (issue 14).

For generated letter-size PDFs of 10, 100 and 500 pages (shapes and text, rendered
at the default 150 dpi: 1275 x 1650 pixels, 6.3 MB of RGB per full-size page),
each measurement runs in a fresh Python process and reports that process's peak
resident memory (``ru_maxrss``) above its baseline (imports done, the pdfium worker
started, one page rendered). The pdfium worker is a separate process, the same
size whatever the document.

* ``online``: :func:`docextract.preprocess.documents.load_document` on the whole
  document (``pdf_max_pages=None``), what a request pays: each page is rendered and
  scaled down to ``max_pixels`` before the next is rendered, so the peak is one
  full-size page plus the document's model-ready pages (which the request keeps: they
  are its prompt; "beyond the model-ready pages" is what rendering costs on top).
* ``online, all pages first``: the previous behaviour, for comparison: every page
  rendered full-size (:func:`render_pdf_pages`), then scaled down.
* ``batch``: the CPU stages as the batch pipeline runs them: ``expand_files`` (one
  row per page), then ``preprocess_rows`` on blocks of 4 rows, one after another in
  one process (a Ray worker running task after task; each task's output leaves for
  the object store).
* ``batch, one block``: the previous behaviour, for comparison: every page row of
  the document preprocessed in one task, its output (all pages as PNG) held at once.

Usage:
    python bench/bench_memory.py [--pages 10 100 500] [--out bench/results/memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# One PDF writer for tests and benchmarks: it lives with the tests.
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

MODES = ("online", "online_all_pages_first", "batch", "batch_one_block")
LABELS = {
    "online": "online (page by page)",
    "online_all_pages_first": "online, all pages first (before)",
    "batch": "batch (4-row tasks)",
    "batch_one_block": "batch, one block (before)",
}
ROWS_PER_TASK = 4  # batch.pipeline._ROWS_PER_PREPROCESS_BLOCK


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(path: str, mode: str) -> dict[str, float]:
    """Runs in a child process: one mode on one document; returns peak and baseline MB."""
    import pyarrow as pa

    from batch.inputs import expand_files
    from batch.preprocess import preprocess_rows
    from docextract.config import PreprocessOptions
    from docextract.preprocess.documents import load_document
    from docextract.preprocess.images import resize_to_pixel_budget
    from docextract.preprocess.pdf.api import render_pdf_pages

    options = PreprocessOptions(pdf_max_pages=None)
    render_pdf_pages(path, pages=[1], renderer=options.pdf_renderer)  # the worker started, one page
    baseline = _peak_mb()
    started = time.perf_counter()
    # The model-ready pages a request keeps (they are its prompt), as Pillow stores them: an RGB
    # image takes 4 bytes a pixel (each pixel padded to 32 bits).
    ready_mb = 0.0
    if mode == "online":
        images = [p.image for p in load_document(path, name="doc.pdf", options=options).pages]
    elif mode == "online_all_pages_first":
        rendered = render_pdf_pages(path, max_pages=None, dpi=options.pdf_dpi)
        images = [resize_to_pixel_budget(p.image, options.max_pixels, options.min_pixels) for p in rendered]
    if mode.startswith("online"):
        pages = len(images)
        ready_mb = sum(i.width * i.height * 4 for i in images) / 1024**2
    else:
        item = {"source": "doc.pdf", "path": path, "meta": "{}"}
        rows = expand_files(pa.Table.from_pylist([item]), mode="per_page", pages=None, options=options, done=frozenset())
        step = ROWS_PER_TASK if mode == "batch" else rows.num_rows
        pages = 0
        for offset in range(0, rows.num_rows, step):
            ready = preprocess_rows(rows.slice(offset, step), options=options)
            assert not any(ready.column("error").to_pylist())
            pages += ready.num_rows
            del ready  # shipped to the object store; the task holds it no longer
    return {
        "pages": pages,
        "baseline_mb": baseline,
        "peak_mb": _peak_mb(),
        "model_ready_mb": ready_mb,
        "seconds": time.perf_counter() - started,
    }


def run_child(path: str, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", path, mode], capture_output=True, text=True, check=True, timeout=1800
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "memory.json"))
    parser.add_argument("--measure", nargs=2, metavar=("PDF", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    from docfactory import make_pdf, vector_page

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for count in args.pages:
            path = os.path.join(tmp, f"doc{count}.pdf")
            Path(path).write_bytes(make_pdf([vector_page(shapes=20)] * count))
            for mode in args.modes:
                figures = run_child(path, mode)
                grown = figures["peak_mb"] - figures["baseline_mb"]
                # Beyond the pages the request keeps anyway: what rendering itself costs.
                beyond = grown - figures["model_ready_mb"]
                results.append({"mode": mode, **figures, "growth_mb": grown, "beyond_model_ready_mb": beyond})
                print(
                    f"{count:4d} pages  {LABELS[mode]:34s} peak {figures['peak_mb']:7.0f} MB"
                    f"  (+{grown:6.0f} MB over baseline, {beyond:+6.0f} MB beyond the model-ready pages)"
                    f"  {figures['seconds']:6.1f} s",
                    flush=True,
                )
    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "page": "letter, vector shapes and text, 150 dpi: 1275 x 1650 px full-size; max_pixels 1280*28*28",
        "rows_per_task": ROWS_PER_TASK,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
