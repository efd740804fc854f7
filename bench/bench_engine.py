"""Benchmark the engine layer: ExtractionEngine vs the same work sent to vLLM's AsyncLLM directly.

Both paths run in one process on one engine: the same images, the same prompt
text (built once with the model's chat template), the same schema as
``StructuredOutputsParams`` and the same sampling. The direct path calls
``AsyncLLM.generate`` and ``json.loads``; the docextract path calls
``ExtractionEngine.extract`` (prompt building, generation, parsing, mapping
back optional fields, jsonschema + Pydantic validation, typed result). The
figure we watch is ``docextract_images_per_s / direct_images_per_s``: what the
shared core costs on top of vLLM. A third path runs docextract with per-field confidence
off (``ExtractionConfig.confidence``): ``ratio_confidence_over_no_confidence`` is what the
confidence costs (it reads vLLM's outputs step by step, with the sampled tokens' log-probabilities).

On a random-weight model (default: the 100 M-parameter ``bench`` model built
offline) the numbers measure cost, not accuracy. Runs on a busy 2-core machine
vary by up to 2x: compare figures from one run only.

Usage:
    python bench/bench_engine.py [--model DIR] [--images 32] [--rounds 2] [--out bench/results/engine.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def _images(n: int, side: int):
    from PIL import Image, ImageDraw

    out = []
    for i in range(n):
        img = Image.new("RGB", (side, side), (255 - 5 * i % 255, 40 + 3 * i % 200, 90))
        ImageDraw.Draw(img).text((10, 10 + i % 50), f"price {i}.99 EUR", fill="black")
        out.append(img)
    return out


async def _direct(engine, prompts, schema) -> tuple[float, int, int]:
    """Send prompts straight to AsyncLLM; return (seconds, valid JSON count, completion tokens)."""
    params = engine.sampling_params(schema)
    started = time.perf_counter()

    async def one(prompt):
        final = None
        async for output in engine.llm.generate(prompt, params, uuid.uuid4().hex):
            final = output
        text = final.outputs[0].text
        try:
            json.loads(text, strict=False)
            ok = final.outputs[0].finish_reason == "stop"
        except ValueError:
            ok = False
        return ok, len(final.outputs[0].token_ids)

    results = await asyncio.gather(*(one(p) for p in prompts))
    return time.perf_counter() - started, sum(ok for ok, _ in results), sum(t for _, t in results)


async def _docextract(engine, images, task, confidence: bool = True) -> tuple[float, int, int]:
    engine.config.confidence = confidence
    started = time.perf_counter()
    results = await asyncio.gather(*(engine.extract([img], task, source=f"img{i}.png") for i, img in enumerate(images)))
    return (
        time.perf_counter() - started,
        sum(r.valid for r in results),
        sum(r.usage.completion_tokens for r in results),
    )


async def run(args) -> dict:
    from docextract.config import ExtractionConfig
    from docextract.engine import ExtractionEngine
    from docextract.tasks import get_builtin_task

    config = ExtractionConfig(
        model=args.model,
        max_model_len=4096,
        enforce_eager=True,
        sampling={"max_tokens": args.max_tokens},
        preprocess={"max_pixels": args.side * args.side},
        # Both paths send the same prompts: with prefix caching, whichever runs second would
        # skip the prefill (images included) and look faster.
        engine_kwargs={"enable_prefix_caching": False},
    )
    started = time.perf_counter()
    engine = ExtractionEngine(config)
    start_s = time.perf_counter() - started
    task = get_builtin_task(args.task)
    images = _images(args.images, args.side)
    prompts = [engine.build_prompt(task, [img]) for img in images]
    await _direct(engine, prompts[:2], task.engine_schema)  # warm-up: grammar compile, first batches
    rounds = []
    for _ in range(args.rounds):
        # Alternate the order so neither path always runs on a warmer machine.
        paths = ("direct", "docextract", "docextract_no_confidence")
        for name in paths if len(rounds) % 2 == 0 else paths[::-1]:
            if name == "direct":
                seconds, valid, tokens = await _direct(engine, prompts, task.engine_schema)
            else:
                seconds, valid, tokens = await _docextract(engine, images, task, name == "docextract")
            rounds.append({"path": name, "seconds": seconds, "valid": valid, "completion_tokens": tokens})
    engine.shutdown()

    def summary(path: str) -> dict:
        rows = [r for r in rounds if r["path"] == path]
        rates = [args.images / r["seconds"] for r in rows]
        return {
            "images_per_s_median": statistics.median(rates),
            "images_per_s_all": rates,
            "valid": [r["valid"] for r in rows],
            "completion_tokens": [r["completion_tokens"] for r in rows],
        }

    direct, ours, plain = summary("direct"), summary("docextract"), summary("docextract_no_confidence")
    return {
        "benchmark": "engine",
        "model": args.model,
        "task": args.task,
        "images": args.images,
        "image_side": args.side,
        "max_tokens": args.max_tokens,
        "engine_start_s": start_s,
        "direct": direct,
        "docextract": ours,
        "docextract_no_confidence": plain,
        "ratio_docextract_over_direct": ours["images_per_s_median"] / direct["images_per_s_median"],
        "ratio_confidence_over_no_confidence": ours["images_per_s_median"] / plain["images_per_s_median"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "random-weight model: cost, not accuracy; compare only within one run",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: build the bench model in .cache/)")
    parser.add_argument("--task", default="price_tag")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--side", type=int, default=448, help="image side in pixels")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine.json"))
    args = parser.parse_args()
    if not args.model:
        from docextract.testing.tiny_model import BENCH, build_tiny_model

        args.model = str(build_tiny_model(ROOT / ".cache" / "bench-qwen2vl", BENCH))
    figures = asyncio.run(run(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    d, o = figures["direct"], figures["docextract"]
    print(f"engine start: {figures['engine_start_s']:.1f} s")
    print(f"{'path':<12}{'images/s':>10}  valid")
    print(f"{'vLLM direct':<12}{d['images_per_s_median']:>10.2f}  {d['valid']}/{args.images}")
    print(f"{'docextract':<12}{o['images_per_s_median']:>10.2f}  {o['valid']}/{args.images}")
    p = figures["docextract_no_confidence"]
    print(f"{'no confid.':<12}{p['images_per_s_median']:>10.2f}  {p['valid']}/{args.images}")
    print(f"ratio docextract/direct: {figures['ratio_docextract_over_direct']:.3f}")
    print(f"ratio confidence/no confidence: {figures['ratio_confidence_over_no_confidence']:.3f}  -> {out}")


if __name__ == "__main__":
    main()
