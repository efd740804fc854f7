"""What a job leaves in its output folder, written so that a killed job leaves only whole files.

Layout::

    OUTPUT/
      config.json             the task, labelr's format: {"instructions", "json_schema"}
      part-<run>-<n>.parquet  results, one row per input row (labelr columns + extras)
      summary.json            counts and rates, rewritten at the end of every run

Part files hold labelr's LLM image extraction columns first: ``image_id``,
``image`` (``{bytes, path}``, only with ``--include-images``: the model-ready
page as PNG), ``output`` (the extracted JSON as a string; null when there is no
output) and ``meta``; then ``valid``, ``error``, ``error_kind``,
``validation_errors``, ``warnings`` (``[{kind, message, page}]``: ``blank_page``,
``upscaled``), ``finish_reason``, ``model``, ``task``,
``task_version``, ``prompt_tokens``, ``completion_tokens``, ``source``,
``pages``, ``preprocess_s``, ``generation_s``, ``finished_at``. With ``config.json`` beside
them the folder is a fine-tuning dataset as labelr makes them (filter on
``valid``).

``meta`` has one Arrow type per job (:func:`batch.inputs.merge_meta_types`):
labelr's struct for a labelr input, ``struct<path>`` for files, a JSON string
when the inputs disagree. One type for every part keeps the folder readable
as one dataset.

Every file is written to a hidden temporary name in the same folder, flushed
to disk and renamed (``os.replace`` is atomic on POSIX): a reader, or a
resumed job, never sees half a file. The driver writes parts as results
arrive (:class:`PartWriter`), so a killed job loses at most the rows of the
part it had not written yet.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from docextract.errors import DocExtractError

__all__ = [
    "PART_GLOB",
    "PartWriter",
    "GenerationWindow",
    "commit_file",
    "count_results",
    "generation_window",
    "write_config",
    "write_json_atomic",
]

PART_GLOB = "part-*.parquet"


def commit_file(tmp: Path, final: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``final`` (atomic within one file system)."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def write_json_atomic(path: Path, content: Any) -> None:
    """Write JSON so that ``path`` holds either the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    commit_file(tmp, path)


def write_config(out_dir: Path, labelr_config: dict[str, Any]) -> None:
    """Write ``config.json``; refuse an output folder that holds another task's results."""
    path = out_dir / "config.json"
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            existing = None
        if existing != labelr_config:
            raise DocExtractError(
                f"{out_dir} holds results of another task (its config.json differs from this task's); "
                "use a new --output folder"
            )
        return
    write_json_atomic(path, labelr_config)


class PartWriter:
    """Buffers result batches and writes them as atomic part files.

    A part is written when ``part_rows`` rows are buffered, when ``flush_s``
    seconds have passed since the last part and a batch arrives, and at
    :meth:`close`. Ids already written (by this run or an earlier one) are
    dropped, so no id is ever written twice.
    """

    def __init__(
        self,
        out_dir: Path,
        run_id: str,
        *,
        meta_type: pa.DataType,
        written: set[str],
        part_rows: int,
        flush_s: float,
    ) -> None:
        self.out_dir = out_dir
        self.run_id = run_id
        self.meta_type = meta_type
        self.written = written
        self.part_rows = part_rows
        self.flush_s = flush_s
        self.rows_written = 0
        self.parts: list[Path] = []
        self.duplicates_dropped = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._last_flush = time.monotonic()

    def add(self, batch: pa.Table) -> None:
        ids = batch.column("image_id").to_pylist()
        keep = [i for i, row_id in enumerate(ids) if row_id not in self.written]
        self.duplicates_dropped += len(ids) - len(keep)
        # Ids of the same batch are unique: discovery refused duplicate inputs.
        self.written.update(ids[i] for i in keep)
        if len(keep) != len(ids):
            batch = batch.take(pa.array(keep, type=pa.int64()))
        if batch.num_rows:
            self._buffer.append(batch)
            self._buffered += batch.num_rows
        if self._buffered and time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()
        elif self._buffered >= self.part_rows:
            self.flush(full_parts_only=True)

    def flush(self, *, full_parts_only: bool = False) -> None:
        """Write the buffered rows (with ``full_parts_only``, keep a remainder below ``part_rows``)."""
        while self._buffered >= (self.part_rows if full_parts_only else 1):
            combined = pa.concat_tables(self._buffer)
            part, rest = combined.slice(0, self.part_rows), combined.slice(self.part_rows)
            self._write(part)
            self._buffer = [rest] if rest.num_rows else []
            self._buffered = rest.num_rows
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()

    def _write(self, part: pa.Table) -> None:
        name = f"part-{self.run_id}-{len(self.parts):05d}.parquet"
        tmp, final = self.out_dir / f".{name}.tmp", self.out_dir / name
        pq.write_table(self._with_meta(part), tmp)
        commit_file(tmp, final)
        self.parts.append(final)
        self.rows_written += part.num_rows

    def _with_meta(self, part: pa.Table) -> pa.Table:
        """The ``meta`` column (JSON in flight) as the job's meta type."""
        if pa.types.is_string(self.meta_type):
            return part
        values = [json.loads(m) if m is not None else None for m in part.column("meta").to_pylist()]
        index = part.schema.get_field_index("meta")
        return part.set_column(index, pa.field("meta", self.meta_type), pa.array(values, type=self.meta_type))


class GenerationWindow(NamedTuple):
    """What the rows of a run say about their engines' busy time."""

    rows: int  #: rows that reached an engine
    first_submitted_at: float | None  #: wall clock, the first request submitted
    seconds: float | None  #: from the first request submitted to the last one finished
    host_cpu_s: float  #: the engine actors' own process CPU, summed over the rows
    host_cpu_rows: int  #: rows that carry it (parts written before it existed do not)
    host_ray_loop_cpu_s: float = 0.0  #: of it, Ray's task loop (the actors' main threads)
    host_ray_loop_rows: int = 0  #: rows that carry that


def generation_window(parts: list[Path]) -> GenerationWindow:
    """The engines' busy window over the rows of ``parts`` (engine start excluded)."""
    starts, ends = [], []
    cpu = {"host_cpu_s": 0.0, "host_ray_loop_cpu_s": 0.0}  # summed over the rows that carry each
    rows = dict.fromkeys(cpu, 0)
    for part in parts:
        names = ["generation_s", "finished_at"] + [n for n in cpu if n in pq.read_schema(part).names]
        t = pq.read_table(part, columns=names)
        for took, finished in zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True):
            if took is not None and finished is not None:
                starts.append(finished - took)
                ends.append(finished)
        for name in names[2:]:
            values = [v for v in t.column(name).to_pylist() if v is not None]
            cpu[name] += sum(values)
            rows[name] += len(values)
    host = (cpu["host_cpu_s"], rows["host_cpu_s"], cpu["host_ray_loop_cpu_s"], rows["host_ray_loop_cpu_s"])
    if not ends:
        return GenerationWindow(0, None, None, *host)
    return GenerationWindow(len(ends), min(starts), max(ends) - min(starts), *host)


def count_results(parts: list[Path]) -> dict[str, Any]:
    """Counts over the result rows in ``parts`` (what the summary reports as the output)."""
    rows = valid = errors = prompt_tokens = completion_tokens = review_rows = review_fields = 0
    ids: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    columns = ["image_id", "valid", "error_kind", "prompt_tokens", "completion_tokens"]
    for part in parts:
        t = pq.read_table(part, columns=columns)
        # Parts written before confidence existed have no review column.
        if "review" in pq.read_schema(part).names:
            for paths in pq.read_table(part, columns=["review"]).column(0).to_pylist():
                review_rows += bool(paths)
                review_fields += len(paths or [])
        rows += t.num_rows
        ids.update(t.column("image_id").to_pylist())
        for ok, kind, p, c in zip(*(t.column(n).to_pylist() for n in columns[1:]), strict=True):
            if kind is not None:
                errors += 1
                kinds[kind] += 1
            elif ok:
                valid += 1
            prompt_tokens += p or 0
            completion_tokens += c or 0
    return {
        "rows": rows,
        "valid": valid,
        "invalid": rows - valid - errors,
        "errors": errors,
        "error_kinds": dict(sorted(kinds.items())),
        "duplicate_ids": sum(n - 1 for n in ids.values() if n > 1),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "review_rows": review_rows,
        "review_fields": review_fields,
    }
