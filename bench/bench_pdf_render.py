"""Benchmark PDF rendering: pdfium vs poppler, raster and vector pages, 72 and 150 dpi.

Renders generated N-page documents (letter pages: full-page 200-dpi JPEG scans,
or shapes and text) through :func:`docextract.preprocess.pdf.render_pdf_pages` with each
renderer, and, as a reference for the cost of running pdfium in a separate
process, with pypdfium2 called directly in this process. Prints a table and
writes the figures as JSON. The pdfium worker is started before timing.

Usage:
    python bench/bench_pdf_render.py [--pages 20] [--repeats 5] [--out bench/results/pdf_render.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# One PDF writer for tests and benchmarks: it lives with the tests.
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pypdfium2  # noqa: E402
from docfactory import make_pdf, raster_page, vector_page  # noqa: E402

from docextract.preprocess.pdf.api import render_pdf_pages  # noqa: E402

DPIS = (72, 150)


def render_in_process(data: bytes, dpi: int) -> int:
    """pypdfium2 with no isolation and no limits: the floor the worker is measured against."""
    doc = pypdfium2.PdfDocument(data)
    try:
        for page in doc:
            page.render(scale=dpi / 72, rev_byteorder=True).to_pil().convert("RGB")
        return len(doc)
    finally:
        doc.close()


def time_it(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20, help="pages per document")
    parser.add_argument("--repeats", type=int, default=5, help="timed renders per cell (median reported)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pdf_render.json")
    args = parser.parse_args(argv)

    docs = {
        "raster": make_pdf([raster_page(seed=i) for i in range(args.pages)]),
        "vector": make_pdf([vector_page() for _ in range(args.pages)]),
    }
    renderers: dict[str, Callable[[bytes, int], object]] = {
        "pdfium": lambda data, dpi: render_pdf_pages(data, dpi=dpi, renderer="pdfium", max_pages=None),
        "pdfium-inprocess": render_in_process,
    }
    if shutil.which("pdftoppm"):
        renderers["poppler"] = lambda data, dpi: render_pdf_pages(data, dpi=dpi, renderer="poppler", max_pages=None)
    else:
        print("poppler-utils not installed: poppler skipped", file=sys.stderr)

    for _name, render in renderers.items():  # warm up: worker start, imports, caches
        render(docs["vector"], 72)

    rows = []
    for kind, data in docs.items():
        for dpi in DPIS:
            for renderer, render in renderers.items():
                times = time_it(lambda render=render, data=data, dpi=dpi: render(data, dpi), args.repeats)
                median = statistics.median(times)
                rows.append(
                    {
                        "document": kind,
                        "dpi": dpi,
                        "renderer": renderer,
                        "pages": args.pages,
                        "seconds_per_document": round(median, 4),
                        "seconds_min": round(min(times), 4),
                        "seconds_max": round(max(times), 4),
                        "pages_per_second": round(args.pages / median, 1),
                    }
                )

    print(f"{'document':8} {'dpi':>4} {'renderer':17} {'s/doc (median)':>15} {'min':>7} {'max':>7} {'pages/s':>8}")
    for r in rows:
        print(
            f"{r['document']:8} {r['dpi']:>4} {r['renderer']:17} {r['seconds_per_document']:>15.3f} "
            f"{r['seconds_min']:>7.3f} {r['seconds_max']:>7.3f} {r['pages_per_second']:>8.1f}"
        )
    speedups = {}
    for kind in docs:
        for dpi in DPIS:
            cell = {r["renderer"]: r["seconds_per_document"] for r in rows if r["document"] == kind and r["dpi"] == dpi}
            if "poppler" in cell:
                speedups[f"{kind}@{dpi}"] = round(cell["poppler"] / cell["pdfium"], 2)
    if speedups:
        print("poppler time / pdfium time:", ", ".join(f"{k} {v}x" for k, v in speedups.items()))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "pdf_render",
        "pages_per_document": args.pages,
        "repeats": args.repeats,
        "page_size_pt": [612, 792],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {
            "pypdfium2": pypdfium2.version.PYPDFIUM_INFO.version,
            "pdfium": str(pypdfium2.version.PDFIUM_INFO),
            "poppler": _poppler_version(),
        },
        "note": "seconds_per_document is the median; the pdfium worker process was started before timing",
        "results": rows,
        "poppler_over_pdfium": speedups,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def _poppler_version() -> str | None:
    import subprocess

    if not shutil.which("pdftoppm"):
        return None
    out = subprocess.run(["pdftoppm", "-v"], capture_output=True, text=True)
    return (out.stderr or out.stdout).splitlines()[0].split()[-1]


if __name__ == "__main__":
    main()
