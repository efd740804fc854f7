"""Benchmark the batch pipeline against raw vLLM offline and Ray Data LLM on the same images.

The same N generated images (PNG files, ``--side`` pixels square), the same
small fixed schema, the same prompt text (the model's chat template through
:mod:`docextract.prompts`), the same engine arguments (prefix caching off),
greedy decoding capped at ``--max-tokens``, through:

* ``pipeline``: ``python -m batch.run`` on an embedded local Ray: CPU tasks
  read, decode and resize; one engine actor (``ExtractionEngine``) generates;
  the driver writes Parquet parts;
* ``raw_vllm``: ``vllm.LLM.generate`` on all prompts in one process (images
  loaded with the same preprocessing, in the timed section);
* ``raydata_llm``: Ray Data LLM's ``vLLMEngineProcessorConfig`` processor.
  Its multimodal stage is tried first as documented (``prepare_multimodal_stage``
  + ``chat_template_stage``); where that cannot run, the reason is recorded and
  the processor runs again with those stages off, given the prompt text and the
  images by hand (``prompt`` + ``multimodal_data`` columns).

Three sets, in one run: every path on ``--images`` (96) images; pipeline and
raw vLLM on ``--scale-images`` (384), to show the end-to-end ratio approach the
generating one as the run grows; the pipeline on ``--cpu-images`` (32)
1-megapixel pages, for the engine actor's own CPU per page
(``host_cpu_ms_per_1mp_page``: its process CPU from engine up to its last
batch, over the pages; the model's compute is in vLLM's engine process, not
counted; ``..._after_first_call``: the same without the first call's share,
which holds the host's one-off work; ``host_ray_loop_cpu_ms_per_1mp_page``: of
it, Ray's task loop on the actor's main thread, by time, and
``host_cpu_ms_per_1mp_page_less_ray_loop`` the rest), and ``front_end`` on the same pages: the
engine host's own CPU per page without Ray (see :func:`run_front_end`), as pages
are sent now and as they were before. On a CPU the engine takes seconds per
1-megapixel page, so the actor's figure also carries its Ray worker's threads
(by time, not by page) several times over; the front end's is the part that
grows with pages. ``targets`` says which of issue 15's figures are met. A set
given 0 images is skipped (``--images 0 --scale-images 0``: the 1-megapixel set
alone).

Each path runs in its own process (one engine in memory at a time) and reports
``end_to_end_images_per_s`` (from the process's start, engine start included,
until the last result is written: raw vLLM's clock stops when ``generate``
returns, the pipeline's when its summary is written; Ray's and the engine's
teardown after that is ``teardown_s``) and ``generating_images_per_s`` (the
engine's busy window: for raw vLLM the ``generate`` call, prompts and images
ready; for the pipeline from the first request submitted to the last one
finished, from the rows' ``finished_at`` and ``generation_s``; for Ray Data LLM
the same window estimated in its postprocess step from ``time_taken_llm``, so a
little long). The pipeline also reports its start-up: the task compiled, Ray
connected, the first request (the engine up), the first result at the driver.

On CPU the engine's threads follow ``OMP_NUM_THREADS``; Ray sets it to an
actor's CPUs, so both Ray paths give their engine every core (as the raw
process has) and the embedded Ray two more logical CPUs for the CPU stages.
``--max-in-flight`` defaults to 128: raw vLLM has every image in flight.
The model has random weights (``docextract tiny-model --size bench``, 99 M
parameters, not terse), so outputs often stop at ``--max-tokens``: the figures
measure cost, not accuracy. Runs on a busy 2-core machine vary by up to 2x:
compare figures from one run only.

Usage:
    python bench/bench_batch.py [--model DIR] [--images 96] [--side 448] [--max-tokens 64]
                                [--scale-images 384] [--cpu-images 32] [--cpu-side 1024]
                                [--paths pipeline,raw_vllm,raydata_llm] [--out bench/results/batch.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

RESULT_PREFIX = "BENCH_RESULT "

#: Small and bounded: every field has a limit, so a random model's output ends early or at max_tokens.
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "maxLength": 16},
        "count": {"type": "integer", "minimum": 0, "maximum": 99},
        "on_sale": {"type": "boolean"},
    },
    "required": ["label", "count", "on_sale"],
    "additionalProperties": False,
}
INSTRUCTIONS = "Read the price tag: its label, how many items it shows, and whether it is on sale."


# --- shared setup ----------------------------------------------------------------------------


def _make_images(folder: Path, n: int, side: int) -> None:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.new("RGB", (side, side), (255 - 5 * i % 255, 40 + 3 * i % 200, 90))
        ImageDraw.Draw(img).text((10, 10 + i % 50), f"price {i}.99 EUR", fill="black")
        img.save(folder / f"tag{i:04d}.png")


def _config(args: argparse.Namespace) -> Any:
    from docextract.config import ExtractionConfig

    return ExtractionConfig(
        model=args.model,
        max_model_len=4096,
        enforce_eager=True,
        sampling={"max_tokens": args.max_tokens},
        preprocess={"max_pixels": args.side * args.side},
        engine_kwargs={"enable_prefix_caching": False},
    )


def _engine_args(config: Any) -> dict[str, Any]:
    """Exactly the vLLM arguments ``ExtractionEngine`` would use, without starting one."""
    from docextract.engine import ExtractionEngine, cpu_only
    from docextract.models.source import resolve_model

    stub = ExtractionEngine.__new__(ExtractionEngine)
    stub.config, stub.model_path, stub._cpu = config, resolve_model(config.model), cpu_only()
    return stub.engine_args()


def _prompts(args: argparse.Namespace, config: Any, task: Any) -> tuple[list[str], list[Any]]:
    """(prompt texts, model-ready images) as the engine builds them."""
    from transformers import AutoProcessor

    from docextract.preprocess.documents import load_document
    from docextract.prompts import build_messages, render_prompt

    processor = AutoProcessor.from_pretrained(args.model)
    text = render_prompt(processor, build_messages(task, 1, include_schema=config.include_schema_in_prompt))
    paths = sorted(Path(args.images_dir).glob("*.png"))
    images = [load_document(p, options=config.preprocess).pages[0].image for p in paths]
    return [text] * len(images), images


def _is_valid(text: str, finish_reason: str | None) -> bool:
    """Parses and conforms; cut at max_tokens is invalid (Ray Data LLM reports no finish reason:
    there a cut output fails to parse)."""
    import jsonschema

    try:
        jsonschema.validate(json.loads(text, strict=False), SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False
    return finish_reason in (None, "stop")


# --- the paths, each run in its own process -------------------------------------------------


def run_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from batch.run import main as batch_main

    cores = os.cpu_count() or 2
    out = Path(args.work) / f"pipeline-out-{Path(args.images_dir).name}"
    argv = ["--input", args.images_dir, "--output", str(out), "--task", args.task_file, "--model", args.model,
            "--max-model-len", "4096", "--enforce-eager", "--max-pixels", str(args.side * args.side),
            "--max-tokens", str(args.max_tokens), "--engine-kwargs", '{"enable_prefix_caching": false}',
            "--num-cpus", str(cores + 2), "--cpus-per-engine", str(cores), "--max-in-flight", str(args.max_in_flight)]  # fmt: skip
    if args.batch_size:
        argv += ["--batch-size", str(args.batch_size)]
    from bench.thread_cpu import ThreadSampler

    started = time.time()
    # The engine actor's threads, from outside: what its CPU per page is made of (see _actor_threads).
    with ThreadSampler("ray::MapWorker", "ExtractionActor") as sampler:
        code = batch_main(argv)
    exited = time.time()
    if code != 0:
        raise RuntimeError(f"batch.run exited with {code}")
    summary = json.loads((out / "summary.json").read_text())
    run = summary["run"]
    rows = _rows(out)
    # End to end: until the last result is written (the summary's end), as raw vLLM's clock stops
    # when generate returns; Ray's and the engine's teardown after it are reported apart.
    written = run["started_at"] + run["wall_s"]
    before_job = run["started_at"] - started  # imports, config, the task's schema compiled
    return {
        "end_to_end_s": written - started,
        "end_to_end_images_per_s": run["rows"] / (written - started),
        "generating_images_per_s": run["generating_images_per_s"],
        "startup": {
            "task_and_config_s": before_job,
            "ray_ready_s": before_job + run["ray_ready_s"],
            "first_request_s": before_job + run["first_request_s"],
            "first_result_s": before_job + run["first_result_s"],
        },
        "first_result_s": before_job + run["first_result_s"],
        "host_cpu_ms_per_page": run["host_cpu_ms_per_row"],
        "host_cpu_ms_per_page_after_first_call": _host_cpu_after_first_call(rows),
        "host_ray_loop_cpu_ms_per_page": run.get("host_ray_loop_cpu_ms_per_row"),
        "host_ray_loop_cpu_ms_per_page_after_first_call": _host_cpu_after_first_call(rows, "host_ray_loop_cpu_s"),
        "actor_threads": _actor_threads(sampler, run["started_at"] + run["first_request_s"], rows),
        "teardown_s": exited - written,
        "rows": summary["rows"],
        "valid": summary["valid"],
        "completion_tokens": summary["completion_tokens"],
        "settings": {"batch_size": run["batch_size"], "max_in_flight": args.max_in_flight, "cpus_per_engine": cores},
    }


def _rows(out: Path) -> list[dict[str, Any]]:
    """The output's rows, the columns the host figures read (once, for every figure below)."""
    import pyarrow.parquet as pq

    columns = ["host_cpu_s", "host_ray_loop_cpu_s", "finished_at"]
    return [r for f in sorted(out.glob("*.parquet")) for r in pq.read_table(f, columns=columns).to_pylist()]


def _host_cpu_after_first_call(rows: list[dict[str, Any]], column: str = "host_cpu_s") -> float | None:
    """The actor's CPU ms per page over the calls after its first (whose share holds the engine
    host's one-off work: the first image processor call, lazy imports, first allocations). A call's
    rows carry the same ``host_cpu_s``: the first call's rows are those that finished first.
    ``column``: ``host_ray_loop_cpu_s`` for the same figure of Ray's task loop alone."""
    rows = [r for r in rows if r["host_cpu_s"] is not None and r[column] is not None and r["finished_at"] is not None]
    if not rows:
        return None
    first = min(rows, key=lambda r: r["finished_at"])["host_cpu_s"]
    later = [r[column] for r in rows if r["host_cpu_s"] != first]
    return 1000 * sum(later) / len(later) if later else None


def _actor_threads(sampler: Any, engine_up: float, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The engine actor's CPU by thread, sampled from /proc, from its engine up (the first request)
    to its last result (the rows' latest ``finished_at``; the engine's shutdown after it is left out),
    in ms per page: ``main`` is Ray's task loop (the actor's calls run on Ray Data's event-loop
    thread), the Python threads carry the process's title (Ray Data's event loop, vLLM's front end and
    its thread pool), the others are native (Ray's gRPC and io threads, ZeroMQ's for vLLM's engine)."""
    finished = [r["finished_at"] for r in rows if r["finished_at"] is not None]
    window = sampler.window(engine_up, max(finished)) if finished else None
    if window is None:
        return None
    pages = len(rows)
    return {
        "window_s": window["seconds"],
        "pages": pages,
        "main_ms_per_page": 1000 * window["main_s"] / pages,
        "main_ms_per_s": 1000 * window["main_s"] / window["seconds"],
        "other_threads_ms_per_page": {k: 1000 * v / pages for k, v in window["other_threads_s"].items() if v > 0},
    }


def run_front_end(args: argparse.Namespace) -> dict[str, Any]:
    """The engine host's own CPU per page, without Ray: one ``ExtractionEngine`` in this process
    (vLLM's front end here, the model in its engine process, as in the actor), the pages made by the
    CPU stage's functions, each sent as the actor sends it (``now``: a uint8 array at the model's input
    size) and as it did before (``before``: a PIL image at the pixel budget's size, the processor
    resizing it). A warm-up round on 4 pages first, then each way once on up to 16 pages; this
    process's CPU over a round, over its pages. What the actor adds on top is Ray's: its worker's
    own threads, by time, and the first call's one-off work."""
    import asyncio

    from PIL import Image

    from batch.actor import _image
    from batch.preprocess import model_ready, pixels
    from docextract.engine import ExtractionEngine
    from docextract.models.families import model_family
    from docextract.preprocess.documents import load_document
    from docextract.requests import ExtractionRequest
    from docextract.tasks import load_task

    config = _config(args)
    task = load_task(args.task_file)
    family = model_family(config.model)
    files = sorted(Path(args.images_dir).glob("*.png"))
    budget = [load_document(str(p), options=config.preprocess).pages[0].image for p in files]
    sent = {
        "now": [pixels(model_ready(img, family, config.preprocess)) for img in budget],
        "before": [pixels(img) for img in budget],
    }

    def as_sent(way: str, page: dict[str, Any]) -> Any:
        if way == "now":
            return _image(page)
        return Image.frombuffer("RGB", (page["width"], page["height"]), page["rgb"], "raw", "RGB", 0, 1)

    engine = ExtractionEngine(config)
    rounds: dict[str, list[float]] = {"now": [], "before": []}

    async def one_round(way: str, tag: str, count: int = 16) -> float:
        pages = sent[way][:count]
        cpu = time.process_time()
        await asyncio.gather(
            *(
                engine.run(ExtractionRequest(task=task, images=[as_sent(way, p)], source=f"{tag}{i}", id=f"{tag}{i}"))
                for i, p in enumerate(pages)
            )
        )
        return 1000 * (time.process_time() - cpu) / len(pages)

    async def measure() -> None:
        await one_round("before", "warm", 4)
        for n, way in enumerate(["now", "before"]):
            rounds[way].append(await one_round(way, f"{way}{n}-"))

    try:
        asyncio.run(measure())
    finally:
        engine.shutdown()
    page = sent["now"][0]
    return {
        "pages_per_round": min(16, len(budget)),
        "model_input_size": [page["width"], page["height"]],
        "budget_size": [sent["before"][0]["width"], sent["before"][0]["height"]],
        "cpu_ms_per_page_now": min(rounds["now"]),
        "cpu_ms_per_page_before": min(rounds["before"]),
        "rounds_ms_per_page": rounds,
    }


def run_raw_vllm(args: argparse.Namespace) -> dict[str, Any]:
    # End to end starts before vLLM is imported: the Ray paths import it inside the timed run too.
    started = time.perf_counter()
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from docextract.engine import prepare_environment
    from docextract.tasks import load_task

    config = _config(args)
    task = load_task(args.task_file)
    prepare_environment()
    llm = LLM(**_engine_args(config))
    ready = time.perf_counter()
    texts, images = _prompts(args, config, task)
    params = SamplingParams(
        temperature=0.0,
        max_tokens=args.max_tokens,
        structured_outputs=StructuredOutputsParams(json=task.engine_schema, disable_any_whitespace=True),
    )
    prompts = [{"prompt": t, "multi_modal_data": {"image": [img]}} for t, img in zip(texts, images, strict=True)]
    generating = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    ended = time.perf_counter()
    return {
        "end_to_end_s": ended - started,
        "end_to_end_images_per_s": args.images / (ended - started),
        "generating_images_per_s": args.images / (ended - generating),
        "engine_start_s": ready - started,
        "prepare_s": generating - ready,
        "rows": len(outputs),
        "valid": sum(_is_valid(o.outputs[0].text, o.outputs[0].finish_reason) for o in outputs),
        "completion_tokens": sum(len(o.outputs[0].token_ids) for o in outputs),
    }


def _raydata_config(args: argparse.Namespace, config: Any, *, standard: bool) -> Any:
    from ray.data.llm import vLLMEngineProcessorConfig

    cores = os.cpu_count() or 2
    engine_kwargs = {k: v for k, v in _engine_args(config).items() if k not in ("model", "served_model_name")}
    stages: dict[str, Any] = (
        {"prepare_multimodal_stage": True, "chat_template_stage": True, "tokenize_stage": True}
        if standard
        else {"prepare_multimodal_stage": False, "chat_template_stage": False, "tokenize_stage": False}
    )
    return vLLMEngineProcessorConfig(
        model_source=str(_engine_args(config)["model"]),
        engine_kwargs=engine_kwargs,
        batch_size=args.batch_size or 16,
        concurrency=1,
        # Without a CPU bundle the engine waits for a GPU forever (ENVIRONMENT.md).
        placement_group_config={"bundles": [{"CPU": cores}]},
        # What ExtractionEngine sets for itself on a CPU (docextract.engine.prepare_environment).
        runtime_env={
            "env_vars": {
                "OMP_NUM_THREADS": str(cores),
                "HF_HUB_OFFLINE": "1",
                "VLLM_CPU_KVCACHE_SPACE": "1",
                "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            }
        },
        detokenize_stage=False,
        **stages,
    )


def run_raydata_llm(args: argparse.Namespace, *, standard: bool = False) -> dict[str, Any]:
    # End to end starts before Ray is imported and started, as the other paths' clocks do.
    started = time.perf_counter()
    import ray
    from ray.data.llm import build_processor

    from docextract.preprocess.documents import load_document
    from docextract.tasks import load_task

    cores = os.cpu_count() or 2
    config = _config(args)
    task = load_task(args.task_file)
    ray.init(num_cpus=cores + 2, include_dashboard=False, log_to_driver=True)
    processor_config = _raydata_config(args, config, standard=standard)
    sampling = {
        "temperature": 0.0,
        "max_tokens": args.max_tokens,
        # A JSON string: a nested dict would become an Arrow struct and come back with nulls added.
        "structured_outputs": {"json": json.dumps(task.engine_schema), "disable_any_whitespace": True},
    }
    if standard:
        from PIL import Image

        def preprocess(row: dict[str, Any]) -> dict[str, Any]:
            image = Image.open(row["path"]).convert("RGB")
            content = [{"type": "image", "image": image}, {"type": "text", "text": task.instructions}]
            return {"messages": [{"role": "user", "content": content}], "sampling_params": sampling}

    else:
        from transformers import AutoProcessor

        from docextract.prompts import build_messages, render_prompt

        text = render_prompt(AutoProcessor.from_pretrained(args.model), build_messages(task, 1))

        def preprocess(row: dict[str, Any]) -> dict[str, Any]:
            image = load_document(row["path"], options=config.preprocess).pages[0].image
            return {"prompt": text, "multimodal_data": {"image": [image]}, "sampling_params": sampling}

    def postprocess(row: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        took = float(row.get("time_taken_llm") or 0.0)
        return {
            "text": row["generated_text"],
            "tokens": int(row.get("num_generated_tokens") or 0),
            "submitted_at": now - took,
            "finished_at": now,
        }

    processor = build_processor(processor_config, preprocess=preprocess, postprocess=postprocess)
    paths = [{"path": str(p)} for p in sorted(Path(args.images_dir).glob("*.png"))]
    if standard:
        paths = paths[:2]  # a probe: it either runs (then rerun it with every image) or says why not
    first_at, rows = None, []
    # No prefetch, as the pipeline's driver: Ray Data hands over a block once the next is ready.
    batches = processor(ray.data.from_items(paths)).iter_batches(
        batch_size=None, batch_format="pyarrow", prefetch_batches=0
    )
    for batch in batches:
        first_at = first_at or time.perf_counter()
        rows.extend(batch.to_pylist())
    ended = time.perf_counter()
    ray.shutdown()
    if standard:
        return {
            "probe": f"ran on {len(paths)} images",
            "rows": len(rows),
            "sample_output": rows[0]["text"] if rows else None,
        }
    window = max(r["finished_at"] for r in rows) - min(r["submitted_at"] for r in rows) if rows else 0.0
    return {
        "end_to_end_s": ended - started,
        "end_to_end_images_per_s": args.images / (ended - started),
        "generating_images_per_s": len(rows) / window if window > 0 else None,
        "first_result_s": None if first_at is None else first_at - started,
        "rows": len(rows),
        "valid": sum(_is_valid(r["text"], None) for r in rows),
        "sample_output": rows[0]["text"] if rows else None,
        "completion_tokens": sum(r["tokens"] for r in rows),
        "stages": "multimodal and chat-template stages" if standard else "stages off; prompt + images given by hand",
    }


PATHS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "pipeline": run_pipeline,
    "raw_vllm": run_raw_vllm,
    "raydata_llm_standard": lambda args: run_raydata_llm(args, standard=True),
    "raydata_llm": run_raydata_llm,
    "front_end": run_front_end,
}


# --- orchestration ---------------------------------------------------------------------------


def _run_path(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one path in a fresh process; its figures, or why there are none."""
    cmd = [sys.executable, __file__, "--run", name, "--model", args.model, "--images", str(args.images),
           "--side", str(args.side), "--max-tokens", str(args.max_tokens), "--batch-size", str(args.batch_size or 0),
           "--max-in-flight", str(args.max_in_flight), "--images-dir", args.images_dir, "--task-file", args.task_file,
           "--work", args.work]  # fmt: skip
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.path_timeout)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-1500:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return {"error": f"no result within {args.path_timeout} s (killed)", "log_tail": tail}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    log = proc.stdout + proc.stderr
    return {
        "error": f"exited with {proc.returncode} after {time.perf_counter() - started:.0f} s",
        "reason": _root_cause(log),
        "log_tail": _error_lines(log),
    }


def _root_cause(log: str) -> str | None:
    """The first plain ``SomeError: message`` line of a failed run (wrappers such as
    ``ray.exceptions.RayTaskError`` come later and name the module)."""
    found = re.search(r"^(?:\x1b\[[0-9;]*m)?\s*(\w+(?:Error|Exception): .+)$", log, re.MULTILINE)
    return found.group(1).strip() if found else None


def _error_lines(log: str) -> str:
    """The lines of a failed run's log that say why (exceptions), else its tail."""
    lines = [line for line in log.splitlines() if "Error" in line or "error:" in line or "Exception" in line]
    return "\n".join(dict.fromkeys(lines[-12:])) if lines else log[-1500:]


def _run_set(args: argparse.Namespace, names: list[str], images: int, side: int) -> dict[str, Any]:
    """Every path in ``names`` on ``images`` generated images of ``side`` pixels, and their ratios."""
    run = argparse.Namespace(**{**vars(args), "images": images, "side": side})
    run.images_dir = str(Path(args.work) / f"images-{images}x{side}")
    _make_images(Path(run.images_dir), images, side)
    results = {}
    for name in names:
        print(f"running {name} on {images} images of {side} px ...", file=sys.stderr, flush=True)
        results[name] = _run_path(name, run)
    pipeline, raw, raydata = (results.get(k, {}) for k in ("pipeline", "raw_vllm", "raydata_llm"))

    def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
        return a[key] / b[key] if a.get(key) and b.get(key) else None

    figures: dict[str, Any] = {"images": images, "image_side": side, "paths": results}
    figures["ratio_pipeline_over_raw"] = ratio(pipeline, raw, "generating_images_per_s")
    figures["ratio_pipeline_over_raw_end_to_end"] = ratio(pipeline, raw, "end_to_end_images_per_s")
    figures["ratio_pipeline_over_raydata_llm_end_to_end"] = ratio(pipeline, raydata, "end_to_end_images_per_s")
    if pipeline.get("first_result_s") is not None and raw.get("engine_start_s") is not None:
        figures["first_result_after_raw_engine_start_s"] = pipeline["first_result_s"] - raw["engine_start_s"]
    # Apart, what the first figure mixes: the pipeline's engine starts its processes forked from a fork
    # server on a CPU (docextract.engine_start), raw vLLM as vLLM does by itself; so how much sooner (or
    # later) the pipeline's engine was up, and what the pipeline took from its own engine up to a result.
    if startup := pipeline.get("startup"):
        figures["first_result_after_own_engine_up_s"] = startup["first_result_s"] - startup["first_request_s"]
        if raw.get("engine_start_s") is not None:
            figures["engine_up_after_raw_engine_start_s"] = startup["first_request_s"] - raw["engine_start_s"]
    return figures


#: What issue 15 asks of one run at 96 images (and of the 1-megapixel host CPU figure).
TARGETS = {
    "first_result_after_raw_engine_start_s": ("<=", 10.0),
    "ratio_pipeline_over_raw_end_to_end": (">=", 0.95),
    "ratio_pipeline_over_raydata_llm_end_to_end": (">=", 1.0),
    "ratio_pipeline_over_raw": (">=", 0.95),
    "host_cpu_ms_per_1mp_page": ("<=", 20.0),
}


def _less(figures: dict[str, Any], whole: str, part: str) -> float | None:
    return figures[whole] - figures[part] if figures.get(whole) is not None and figures.get(part) is not None else None


def _targets(figures: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, (op, bound) in TARGETS.items():
        value = figures.get(key)
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        out[key] = {"value": value, "target": f"{op} {bound}", "met": met}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: build the bench model in .cache/)")
    parser.add_argument("--images", type=int, default=96, help="every path on this many (0: skip)")
    parser.add_argument("--side", type=int, default=448, help="image side in pixels")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="pipeline's rows per call (default: the job's)")
    parser.add_argument("--max-in-flight", type=int, default=128, help="as raw vLLM, which has every image in flight")
    parser.add_argument("--paths", default="pipeline,raw_vllm,raydata_llm", help="comma-separated: " + ",".join(PATHS))
    parser.add_argument(
        "--scale-images", type=int, default=384, help="then pipeline and raw vLLM on this many (0: skip)"
    )
    parser.add_argument("--cpu-images", type=int, default=32, help="pipeline on this many 1-megapixel pages (0: skip)")
    parser.add_argument("--cpu-side", type=int, default=1024, help="side of those pages")
    parser.add_argument("--path-timeout", type=float, default=600, help="seconds one path may take")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "batch.json"))
    # Internal: run one path in this process.
    parser.add_argument("--run", choices=list(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--images-dir", help=argparse.SUPPRESS)
    parser.add_argument("--task-file", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:
        args.batch_size = args.batch_size or None
        print(RESULT_PREFIX + json.dumps(PATHS[args.run](args)), flush=True)
        return

    if not args.model:
        from docextract.testing.tiny_model import BENCH, build_tiny_model

        args.model = str(build_tiny_model(ROOT / ".cache" / "bench-qwen2vl", BENCH))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as work:
        args.work = work
        args.task_file = str(Path(work) / "config.json")
        Path(args.task_file).write_text(json.dumps({"instructions": INSTRUCTIONS, "json_schema": SCHEMA}))
        names = [p for p in args.paths.split(",") if p]
        if "raydata_llm" in names:
            names.insert(names.index("raydata_llm"), "raydata_llm_standard")
        main_run = _run_set(args, names, args.images, args.side) if args.images else None
        scale = None
        if args.scale_images:
            scale = _run_set(args, [n for n in names if n in ("pipeline", "raw_vllm")], args.scale_images, args.side)
        host = None
        if args.cpu_images:
            host = _run_set(args, ["pipeline", "front_end"], args.cpu_images, args.cpu_side)

    host_paths = (host or {}).get("paths", {})
    figures: dict[str, Any] = {
        "benchmark": "batch",
        "model": args.model,
        "max_tokens": args.max_tokens,
        "schema": SCHEMA,
        **(main_run or {}),
        "scale": scale,
        "host_cpu": host,
        "host_cpu_ms_per_1mp_page": host_paths.get("pipeline", {}).get("host_cpu_ms_per_page"),
        "host_cpu_ms_per_1mp_page_after_first_call": host_paths.get("pipeline", {}).get(
            "host_cpu_ms_per_page_after_first_call"
        ),
        # Of the actor's figure, Ray's task loop on its main thread (a 10-ms timer: by time, not by
        # page), and what is left: the part that grows with pages, plus the other threads' time.
        "host_ray_loop_cpu_ms_per_1mp_page": host_paths.get("pipeline", {}).get("host_ray_loop_cpu_ms_per_page"),
        "host_cpu_ms_per_1mp_page_less_ray_loop": _less(
            host_paths.get("pipeline", {}), "host_cpu_ms_per_page", "host_ray_loop_cpu_ms_per_page"
        ),
        "host_cpu_ms_per_1mp_page_less_ray_loop_after_first_call": _less(
            host_paths.get("pipeline", {}),
            "host_cpu_ms_per_page_after_first_call",
            "host_ray_loop_cpu_ms_per_page_after_first_call",
        ),
        "front_end_cpu_ms_per_1mp_page": host_paths.get("front_end", {}).get("cpu_ms_per_page_now"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # Other work on the machine changes every figure: the 1/5/15-minute load, before and after.
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "note": "random-weight model: cost, not accuracy; compare only within one run",
    }
    figures["targets"] = _targets(figures)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")

    for run in (main_run, scale, host):
        if not run:
            continue
        print(f"--- {run['images']} images of {run['image_side']} px")
        print(f"{'path':<22}{'generating img/s':>18}{'end-to-end img/s':>18}{'first result s':>16}  valid")
        for name, r in run["paths"].items():
            if "cpu_ms_per_page_now" in r:
                print(f"{name:<22}  engine host CPU per page: {r['cpu_ms_per_page_now']:.1f} ms as sent now, "
                      f"{r['cpu_ms_per_page_before']:.1f} ms as sent before")  # fmt: skip
                continue
            if "error" in r or "probe" in r:
                print(f"{name:<22}  {r.get('error') or r['probe']}: {r.get('reason') or ''}")
                continue
            rate = f"{r['generating_images_per_s']:.2f}" if r.get("generating_images_per_s") else "-"
            first = f"{r['first_result_s']:.1f}" if r.get("first_result_s") is not None else "-"
            print(f"{name:<22}{rate:>18}{r['end_to_end_images_per_s']:>18.2f}{first:>16}  {r['valid']}/{r['rows']}")
        for key in (
            "ratio_pipeline_over_raw",
            "ratio_pipeline_over_raw_end_to_end",
            "ratio_pipeline_over_raydata_llm_end_to_end",
            "engine_up_after_raw_engine_start_s",
            "first_result_after_own_engine_up_s",
        ):
            if run.get(key) is not None:
                print(f"{key}: {run[key]:.3f}")
    for key, t in figures["targets"].items():
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        print(
            f"target {key}: {value} ({t['target']}): {'met' if t['met'] else 'NOT met' if t['met'] is False else '-'}"
        )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
