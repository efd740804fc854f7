"""The Ray Data pipeline, and the driver loop that writes its results.

::

    from_items(files)   -> expand_files       (CPU tasks: count PDF pages, one row per page)  \\
    from_items(parquet) -> read_parquet_rows  (CPU tasks: read row groups)                    -> union
        -> repartition       (blocks of a few rows: a long PDF's pages spread over tasks)
        -> preprocess_rows   (CPU tasks: decode, EXIF, resize, render one page each; raw RGB at
                              the model's input size)
        -> ExtractionActor   (actor pool: one ExtractionEngine each, async, max_in_flight requests)
        -> iter_batches on the driver -> PartWriter (atomic part files)

Done ids are dropped inside the first stage, so resumed rows cost a file
listing and nothing else. The driver consumes results as they stream
(``iter_batches``) rather than through a Ray datasink: it is the one place
that knows which ids were written, which is what makes "each id exactly once"
hold across a kill and a resume.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch.actor import ExtractionActor
from batch.inputs import InputPlan, expand_files, read_parquet_rows
from batch.options import BatchOptions
from batch.outputs import PartWriter, count_results, generation_window, write_json_atomic
from batch.preprocess import preprocess_rows
from batch.resume import list_parts
from batch.summary import JobSummary, RunStats

if TYPE_CHECKING:
    import ray.data

    from docextract.config import ExtractionConfig
    from docextract.tasks import TaskSpec

__all__ = ["build_dataset", "new_run_id", "run_pipeline"]

#: Files per read block. Small blocks spread PDF rendering over CPU tasks and let
#: results (and part files) stream early; the cap bounds the number of blocks.
_FILES_PER_BLOCK = 4
_MAX_BLOCKS = 5000
#: Rows (pages) per preprocessing task: its memory is this many pages, rendered one at a time.
_ROWS_PER_PREPROCESS_BLOCK = 4


def new_run_id() -> str:
    """Sortable and unique: part files of later runs sort after earlier ones."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def build_dataset(
    plan: InputPlan, options: BatchOptions, config: ExtractionConfig, task: TaskSpec, done: frozenset[str]
) -> ray.data.Dataset:
    """The lazy Ray Data pipeline from the planned inputs to result batches."""
    import ray.data
    from ray.data import ActorPoolStrategy

    from docextract.cluster.placement import engine_placement
    from docextract.models.families import model_family

    cpu = {"num_cpus": options.preprocess_cpus, "batch_format": "pyarrow"}
    sources = []
    files = plan.by_kind("files")
    if files:
        blocks = min(_MAX_BLOCKS, math.ceil(len(files) / _FILES_PER_BLOCK))
        sources.append(
            ray.data.from_items(files, override_num_blocks=blocks).map_batches(
                expand_files,
                fn_kwargs={"mode": options.mode, "pages": options.pages, "options": config.preprocess, "done": done},
                **cpu,
            )
        )
    row_groups = plan.by_kind("parquet")
    if row_groups:
        sources.append(
            ray.data.from_items(row_groups, override_num_blocks=min(_MAX_BLOCKS, len(row_groups))).map_batches(
                read_parquet_rows, fn_kwargs={"done": done}, **cpu
            )
        )
    ds = sources[0].union(*sources[1:]) if len(sources) > 1 else sources[0]
    # A long PDF expands into one block of page rows: cut it into small blocks so its pages
    # render in parallel tasks, each holding a few pages, whatever the document's length.
    ds = ds.repartition(target_num_rows_per_block=_ROWS_PER_PREPROCESS_BLOCK)
    ds = ds.map_batches(
        preprocess_rows,
        fn_kwargs={
            "options": config.preprocess,
            "preview": options.include_images,
            # Pages leave at the size the model's image processor wants (batch.preprocess.model_ready).
            "family": model_family(config.model),
        },
        batch_size=_ROWS_PER_PREPROCESS_BLOCK,
        **cpu,
    )
    low, high = options.pool_size
    placement = engine_placement(config)
    return ds.map_batches(
        ExtractionActor,
        batch_format="pyarrow",
        batch_size=options.batch_size,
        compute=ActorPoolStrategy(
            min_size=low, max_size=high, max_concurrent_calls_per_actor=options.concurrent_batches
        ),
        fn_constructor_kwargs={
            "config": config,
            "task": task,
            "max_in_flight": options.max_in_flight,
            "include_images": options.include_images,
            "mode": options.mode,
            # The engine's CPU threads are the CPUs it reserved, whatever the driver's environment.
            "engine_threads": max(1, round(placement.num_cpus)),
        },
        # Ray Data's own default for an actor pool, said here so that this stage's remote args never
        # equal a CPU stage's: Ray Data fuses maps whose remote args are equal, which would decode and
        # render inside the engine's process. Not a runtime_env: a worker with one of its own starts
        # through Ray's setup_worker.py, a second Python start (about 0.8 s of CPU, measured).
        max_restarts=-1,
        # The engine's bundle as the actor's own request, not a placement group: see
        # docextract.cluster.placement for why Ray Data's pool and per-actor groups do not mix.
        **placement.actor_options(),
    )


def run_pipeline(
    ds: ray.data.Dataset,
    *,
    options: BatchOptions,
    out_dir: Path,
    meta_type: Any,
    done: set[str],
    task: TaskSpec,
    model: str,
    report: Callable[[str], None],
    started_at: float | None = None,
    ray_ready_at: float | None = None,
) -> JobSummary:
    """Stream ``ds`` into part files and summarise. ``report`` takes progress lines.
    ``started_at``/``ray_ready_at``: wall-clock times of the job's start and of Ray connected
    (default: now), from which the summary's times count."""
    now = time.time()
    started_at = now if started_at is None else started_at
    # Durations on the monotonic clock, anchored at the job's start.
    started = time.perf_counter() - (now - started_at)
    run_id = new_run_id()
    resumed = len(done)
    writer = PartWriter(
        out_dir, run_id, meta_type=meta_type, written=set(done), part_rows=options.part_rows, flush_s=options.flush_s
    )
    first_at = None
    try:
        # No prefetch: Ray Data (2.60) would hand over each block only once the next one is ready,
        # which holds a job's first results back until most of the engine's work is done.
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
            if first_at is None:
                first_at = time.perf_counter()
            parts = len(writer.parts)
            writer.add(batch)
            if len(writer.parts) != parts:
                report(f"{writer.rows_written} rows written in {len(writer.parts)} parts")
    finally:
        # Also on SIGTERM (``ray job stop``) and errors: what arrived is whole and is kept.
        writer.close()
    ended = time.perf_counter()
    wall = ended - started
    total = count_results(list_parts(out_dir))
    this_run = count_results(writer.parts)
    tokens = this_run["prompt_tokens"] + this_run["completion_tokens"]
    window = generation_window(writer.parts)
    generated, generating_s = window.rows, window.seconds
    run = RunStats(
        run_id=run_id,
        started_at=started_at,
        resumed_rows=resumed,
        rows=this_run["rows"],
        valid=this_run["valid"],
        errors=this_run["errors"],
        prompt_tokens=this_run["prompt_tokens"],
        completion_tokens=this_run["completion_tokens"],
        parts=len(writer.parts),
        wall_s=wall,
        ray_ready_s=None if ray_ready_at is None else ray_ready_at - started_at,
        first_request_s=None if window.first_submitted_at is None else window.first_submitted_at - started_at,
        first_result_s=None if first_at is None else first_at - started,
        images_per_s=this_run["rows"] / wall,
        tokens_per_s=tokens / wall,
        generating_s=generating_s,
        generating_images_per_s=generated / generating_s if generating_s else None,
        host_cpu_ms_per_row=1000 * window.host_cpu_s / window.host_cpu_rows if window.host_cpu_rows else None,
        host_ray_loop_cpu_ms_per_row=1000 * window.host_ray_loop_cpu_s / window.host_ray_loop_rows
        if window.host_ray_loop_rows
        else None,
        actors=options.pool_size,
        batch_size=options.batch_size,
        max_in_flight=options.max_in_flight,
    )
    summary = JobSummary(
        output=str(out_dir),
        task=task.name,
        task_version=task.version,
        model=model,
        rows=total["rows"],
        valid=total["valid"],
        invalid=total["invalid"],
        errors=total["errors"],
        error_kinds=total["error_kinds"],
        duplicate_ids=total["duplicate_ids"],
        review_rows=total["review_rows"],
        review_fields=total["review_fields"],
        prompt_tokens=total["prompt_tokens"],
        completion_tokens=total["completion_tokens"],
        images_per_s=run.images_per_s,
        tokens_per_s=run.tokens_per_s,
        wall_s=wall,
        run=run,
    )
    write_json_atomic(out_dir / "summary.json", summary.model_dump(mode="json"))
    return summary
