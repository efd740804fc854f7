"""The engine stage: a Ray Data callable class that owns one shared :class:`ExtractionEngine`.

Why an async ``__call__``: Ray Data (2.60) runs an async callable class's
calls on one event loop per actor, in a background thread. Every call's rows
are submitted to the same ``AsyncLLM`` concurrently, so vLLM batches requests
from several Ray Data batches together (continuous batching). The actor takes
``ceil(max_in_flight / batch_size) + 1`` calls at once (Ray's
``max_concurrency``, set by :mod:`batch.pipeline`); a semaphore caps the
requests in vLLM at ``max_in_flight``, and the extra call means the next
batch is already waiting for a slot when one finishes, so the engine never
drains between batches.

Slow start: the actor's first call runs alone; the calls Ray Data sends beside
it wait until it is done. A saturated engine shares every step among all it
holds, so with ``max_in_flight`` requests admitted at once the first call's
rows finish only after most of them (measured on the CPU: 21 s after the engine
was up, with 64); alone, the first batch comes back within seconds, so a job
shows (and writes) results almost as soon as its engine is up. The cost is that
window, at a lower occupancy: on a GPU, about one request's duration.

The host process: vLLM's front end (the image processor, detokenizing) runs in
this process, the model in the engine's own process. Both run at the normal priority where the
process may ask for it (:func:`~docextract.host_threads.normal_priority`; Ray
starts its workers at nice 15, as the CPU stages'). This process's CPU time
is what bounds how fast one engine can be fed, so pages arrive as raw pixels at
the size the model's image processor would resize them to (:mod:`batch.preprocess`:
its resize is then skipped) and go to vLLM as arrays over the same buffer
(:func:`_image`), the schema validator is built once per task, and each result
row carries its share of this process's CPU time (``host_cpu_s``: the CPU spent
since the previous batch finished, split over the batch's rows, so the rows of a
run add up to the actor's CPU over it) and, of it, the share of Ray's own task
loop on the process's main thread (``host_ray_loop_cpu_s``; the calls run on
another thread): Ray wakes that thread every 10 ms to check signals, a cost by
time (about 10 ms of CPU a second on the 2-core test machine, measured on a bare
idle actor too), which a CPU engine's slow pages carry several times over.

Nothing lost: a row that arrives with an error (from discovery or
preprocessing) is passed through, and any exception while extracting one row
becomes that row's ``error``; the other rows of the batch are unaffected. An
engine that died (``EngineDeadError``) is not a row's fault: its rows come out
as ``engine_dead`` errors (``--retry-errors`` runs them again) and the actor
exits at its next call, so Ray restarts it with a fresh engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from batch.rows import error_fields, result_schema, table
from docextract.config import DOCUMENT, PER_PAGE, DocumentMode
from docextract.document_mode import run_document
from docextract.requests import ExtractionRequest
from docextract.results import InputWarning

if TYPE_CHECKING:
    from docextract.config import ExtractionConfig
    from docextract.engine import ExtractionEngine
    from docextract.tasks import TaskSpec

__all__ = ["ExtractionActor", "FirstAlone"]

T = TypeVar("T")


class ExtractionActor:
    """Built once per actor (loads the model); called with READY batches, returns result batches."""

    def __init__(
        self,
        config: ExtractionConfig,
        task: TaskSpec,
        *,
        max_in_flight: int,
        include_images: bool,
        mode: DocumentMode = PER_PAGE,
        engine_threads: int | None = None,
        engine: ExtractionEngine | None = None,
    ) -> None:
        """``engine_threads``: the engine's CPU threads (``OMP_NUM_THREADS`` of vLLM's engine process,
        which inherits this process's environment; None: as this process has it). ``engine``: one
        already built (tests share their session's)."""
        from docextract.engine import ExtractionEngine
        from docextract.host_threads import normal_priority

        if engine is None:
            # Ray started this process at nice 15, as the CPU stages' workers; the engine process
            # (started next, inheriting it) and this host process come first on shared cores.
            normal_priority()
            if engine_threads is not None:
                os.environ["OMP_NUM_THREADS"] = str(engine_threads)
            engine = ExtractionEngine(config)
        self.task = task
        self.mode = mode
        self.include_images = include_images
        self.schema = result_schema(include_images)
        self.engine = engine
        self.model = self.engine.model_name
        # Bound to Ray Data's loop at first use (Python >= 3.10 semaphores bind lazily).
        self._slots = asyncio.Semaphore(max_in_flight)
        # Ray's max_concurrency bounds the calls; this only holds them back behind the first one.
        self._calls = FirstAlone()
        self._engine_dead = False
        self._cpu_mark = time.process_time()  # this process's CPU time when the engine was up
        self._loop_clock = _main_thread_clock()
        self._loop_mark = _thread_cpu(self._loop_clock)
        # Pages are arrays over read-only buffers (_image); the image processor reads them, never writes.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

    async def __call__(self, batch: pa.Table) -> pa.Table:
        if self._engine_dead:
            # Exit the process: Ray Data restarts the actor (a fresh engine) and retries this call.
            os._exit(1)
        rows = batch.to_pylist()
        results = await self._calls.run(lambda: asyncio.gather(*(self._one(row) for row in rows)))
        # Calls finish one at a time on this loop: each takes the CPU spent since the last one.
        now, loop = time.process_time(), _thread_cpu(self._loop_clock)
        rows_n = max(1, len(results))
        share = (now - self._cpu_mark) / rows_n
        loop_share = None if loop is None else (loop - self._loop_mark) / rows_n  # None: no thread clock here
        self._cpu_mark, self._loop_mark = now, loop
        for result in results:
            result["host_cpu_s"] = share
            result["host_ray_loop_cpu_s"] = loop_share
        return table(results, self.schema)

    async def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        base = {
            "image_id": row["id"],
            "meta": row["meta"],
            "source": row["source"],
            "pages": row["pages"],
            "model": self.model,
            "task": self.task.name,
            "task_version": self.task.version,
            "valid": False,
            "preprocess_s": row.get("preprocess_s"),
            "warnings": row.get("warnings") or [],
        }
        if self.include_images and row.get("preview"):
            # The model-ready page (the first, for a whole document) as an HF Image value.
            name = row["id"] if row["id"].lower().endswith(".png") else f"{row['id']}.png"
            base["image"] = {"bytes": row["preview"], "path": name}
        if row["error"] is not None:
            return {**base, "error": row["error"], "error_kind": row["error_kind"]}
        try:
            images = [_image(page) for page in row["images"]]
            async with self._slots:
                request = ExtractionRequest(
                    task=self.task,
                    images=images,
                    source=row["source"],
                    pages=row["pages"],
                    id=row["id"],
                    preprocess_s=row["preprocess_s"] or 0.0,
                    warnings=[InputWarning(**w) for w in row.get("warnings") or []],
                )
                # A document-mode row of a PDF (or TIFF) takes document mode's path, whatever its page
                # count: one prompt while the pages fit, else chunks merged; sources either way
                # (docextract.document_mode). A per-page row, or an image, is one prompt.
                as_document = self.mode == DOCUMENT and bool(row["pages"])
                result = await (run_document(self.engine, request) if as_document else self.engine.run(request))
        except Exception as exc:
            return {**base, **self._failure(exc)}
        return {
            **base,
            "output": json.dumps(result.data, ensure_ascii=False, separators=(",", ":"))
            if result.data is not None
            else None,
            "valid": result.valid,
            "error": result.error,
            "error_kind": result.error_kind,
            "validation_errors": [e.describe() for e in result.errors],
            "finish_reason": result.finish_reason,
            "confidence": _json(result.confidence),
            "min_confidence": result.min_confidence,
            "review": list(result.review) if result.confidence is not None else None,
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "generation_s": result.timings.generation_s,
            "finished_at": time.time(),
            "sources": _json(result.sources),
            "conflicts": _json([c.model_dump() for c in result.conflicts])
            if result.chunks is not None or result.sources is not None
            else None,
        }

    def _failure(self, exc: Exception) -> dict[str, str]:
        from vllm.v1.engine.exceptions import EngineDeadError

        if isinstance(exc, EngineDeadError):
            self._engine_dead = True
            return {"error": f"the engine died: {exc}", "error_kind": "engine_dead"}
        return error_fields(exc)

    def __del__(self) -> None:
        # Ray Data drops the actor's UDF on graceful shutdown: stop vLLM's engine process with it.
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()


class FirstAlone:
    """Runs the first piece of work alone; the others start once it is done (an actor's slow
    start). Bound to the running loop at first use."""

    def __init__(self) -> None:
        self._first_done: asyncio.Event | None = None

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        if self._first_done is None:
            self._first_done = asyncio.Event()
            try:
                return await work()
            finally:
                self._first_done.set()
        await self._first_done.wait()
        return await work()


def _main_thread_clock() -> int | None:
    """The CPU-time clock of this process's main thread (in a Ray worker, Ray's task loop); None
    where the platform has none."""
    ident = threading.main_thread().ident
    try:
        return None if ident is None else time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):
        return None


def _thread_cpu(clock: int | None) -> float | None:
    return None if clock is None else time.clock_gettime(clock)


def _json(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value is not None else None


def _image(page: dict[str, Any]) -> Any:
    """A :data:`~batch.rows.PIXELS_TYPE` value as a height x width x 3 ``uint8`` array over the same
    buffer: no copy, no decode. vLLM takes it as an image as it takes a PIL one, and hashes the buffer
    itself (a PIL RGB image over a buffer is a copy: PIL keeps RGB as 4 bytes a pixel)."""
    import numpy as np

    rgb = np.frombuffer(page["rgb"], dtype=np.uint8)
    return rgb.reshape(page["height"], page["width"], 3)
