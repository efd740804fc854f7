"""Benchmark the online service: HTTP through Ray Serve vs the same work on an engine in one process.

Path 1 (``http``): the docextract app on a local (embedded) Ray, one model,
one replica; clients POST images to ``/v1/extract`` (multipart) at concurrency
1, 4 and 16. Path 2 (``direct``): after Serve and Ray are shut down, one
``ExtractionEngine`` in this process gets the same images (decoded with the
same preprocessing, in a thread, as the ingress does) through
``extract_document`` at the same concurrency. Both use the same config, with
the same CPUs for the engine (the replica reserves all the machine's cores, so
Ray gives its process as many OpenMP threads as the direct engine has).

For each level: throughput (requests/s), p50 and p99 latency (seconds,
client-side), and validity. The figure we watch is ``ratio_http_over_direct``
(throughput): what HTTP, Serve's proxy and handles and the ingress cost on top
of the engine. With few requests per level, p99 is close to the maximum.

Every request gets a different image (no prefix-cache hits between requests
or paths; prefix caching is also off, as in ``bench_engine.py``). On the
random-weight ``bench`` model (default) the figures measure cost, not
accuracy; runs on a busy 2-core machine vary by up to 2x: compare within one run.

Usage:
    python bench/bench_serve.py [--model DIR] [--levels 1,4,16] [--requests 6,12,32] [--out bench/results/serve.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # free_port
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway loopback Ray


def _image_png(i: int, side: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (side, side), ((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 90) % 256))
    ImageDraw.Draw(img).text((10, 10 + i % 300), f"price {i}.99 EUR", fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _summary(latencies: list[float], seconds: float, valid: int, tokens: int) -> dict:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "requests": len(latencies),
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "latency_p50_s": statistics.median(ordered),
        "latency_p99_s": pct(99),
        "valid": valid,
        "completion_tokens": tokens,
    }


async def _run_level(one, images: list[bytes], concurrency: int) -> dict:
    """Send ``images`` through ``one(image) -> (valid, tokens)`` with at most ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def timed(image: bytes) -> tuple[bool, int]:
        async with gate:
            started = time.perf_counter()
            outcome = await one(image)
            latencies.append(time.perf_counter() - started)
            return outcome

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(timed(image) for image in images))
    seconds = time.perf_counter() - started
    return _summary(latencies, seconds, sum(v for v, _ in outcomes), sum(t for _, t in outcomes))


def _config(args) -> dict:
    return {
        "model": args.model,
        "served_model_name": "bench",
        "max_model_len": 4096,
        "enforce_eager": True,
        "sampling": {"max_tokens": args.max_tokens},
        "preprocess": {"max_pixels": args.side * args.side},
        "engine_kwargs": {"enable_prefix_caching": False},
        "placement": {"cpus_per_engine": os.cpu_count() or 1},
    }


def _batches(args, offset: int) -> list[list[bytes]]:
    out, i = [], offset
    for n in args.requests:
        out.append([_image_png(i + k, args.side) for k in range(n)])
        i += n
    return out


async def _http_path(args, base_url: str) -> dict:
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=httpx.Limits(max_connections=64)) as client:

        async def one(image: bytes) -> tuple[bool, int]:
            response = await client.post(
                "/v1/extract", files={"file": ("page.png", image, "image/png")}, data={"task": args.task}
            )
            response.raise_for_status()
            (result,) = response.json()["results"]
            return result["valid"], result["usage"]["completion_tokens"]

        await _run_level(one, [_image_png(10_000 + k, args.side) for k in range(2)], 2)  # warm-up
        return {
            str(level): await _run_level(one, batch, level)
            for level, batch in zip(args.levels, _batches(args, 0), strict=True)
        }


def run_http(args) -> tuple[dict, float]:
    import ray
    from ray import serve as ray_serve
    from raycluster import free_port

    from docextract.cluster.runtime import init_ray
    from serve.app import build_app

    cpus = os.cpu_count() or 1
    init_ray(num_cpus=cpus + 2)  # the replica takes every core; the ingress and proxy take none
    port = free_port()
    try:
        ray_serve.start(http_options={"host": "127.0.0.1", "port": port})
        started = time.perf_counter()
        ray_serve.run(build_app({"models": [_config(args)]}), name="bench", route_prefix="/")
        deploy_s = time.perf_counter() - started
        return asyncio.run(_http_path(args, f"http://127.0.0.1:{port}")), deploy_s
    finally:
        ray_serve.shutdown()
        ray.shutdown()


async def _direct_path(args) -> tuple[dict, float]:
    from docextract.config import ExtractionConfig
    from docextract.engine import ExtractionEngine
    from docextract.preprocess.documents import load_document
    from docextract.tasks import get_builtin_task

    config = ExtractionConfig.model_validate(_config(args))
    started = time.perf_counter()
    engine = ExtractionEngine(config)
    start_s = time.perf_counter() - started
    task = get_builtin_task(args.task)
    try:

        async def one(image: bytes) -> tuple[bool, int]:
            document = await asyncio.to_thread(load_document, image, name="page.png", options=config.preprocess)
            (result,) = await engine.extract_document(document, task)
            return result.valid, result.usage.completion_tokens

        await _run_level(one, [_image_png(20_000 + k, args.side) for k in range(2)], 2)  # warm-up
        levels = {
            str(level): await _run_level(one, batch, level)
            for level, batch in zip(args.levels, _batches(args, 0), strict=True)
        }
    finally:
        engine.shutdown()
    return levels, start_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: build the bench model in .cache/)")
    parser.add_argument("--task", default="price_tag")
    parser.add_argument("--levels", default="1,4,16", help="client concurrency levels")
    parser.add_argument("--requests", default="6,12,32", help="requests per level")
    parser.add_argument("--side", type=int, default=448, help="image side in pixels")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--direct-first", action="store_true", help="measure the direct engine before HTTP")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve.json"))
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    args.requests = [int(x) for x in args.requests.split(",")]
    if len(args.levels) != len(args.requests):
        parser.error("--levels and --requests need as many entries")
    if not args.model:
        from docextract.testing.tiny_model import BENCH, build_tiny_model

        args.model = str(build_tiny_model(ROOT / ".cache" / "bench-qwen2vl", BENCH))

    # Two engines one after the other: the machine may be busier during one of them. Run both
    # orders (--direct-first) when a figure looks off.
    if args.direct_first:
        direct, engine_start_s = asyncio.run(_direct_path(args))
        http, deploy_s = run_http(args)
    else:
        http, deploy_s = run_http(args)
        direct, engine_start_s = asyncio.run(_direct_path(args))
    figures = {
        "benchmark": "serve",
        "model": args.model,
        "task": args.task,
        "image_side": args.side,
        "max_tokens": args.max_tokens,
        "route": "POST /v1/extract (multipart), one replica",
        "order": "direct, http" if args.direct_first else "http, direct",
        "serve_deploy_s": deploy_s,
        "engine_start_s": engine_start_s,
        "levels": {
            level: {
                "http": http[level],
                "direct": direct[level],
                "ratio_http_over_direct": http[level]["requests_per_s"] / direct[level]["requests_per_s"],
            }
            for level in http
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "random-weight model: cost, not accuracy; compare only within one run",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"serve deploy: {deploy_s:.1f} s, direct engine start: {engine_start_s:.1f} s")
    print(f"{'conc':>4} {'path':<7}{'req/s':>8}{'p50 s':>8}{'p99 s':>8}  valid   ratio http/direct")
    for level, row in figures["levels"].items():
        for name in ("http", "direct"):
            r = row[name]
            ratio = f"{row['ratio_http_over_direct']:.3f}" if name == "http" else ""
            print(
                f"{level:>4} {name:<7}{r['requests_per_s']:>8.2f}{r['latency_p50_s']:>8.2f}{r['latency_p99_s']:>8.2f}"
                f"  {r['valid']}/{r['requests']}   {ratio}"
            )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
