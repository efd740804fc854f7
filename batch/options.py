"""The batch job's own settings, beside the engine's :class:`~docextract.config.ExtractionConfig`.

:class:`BatchOptions` is the typed boundary of ``python -m batch.run``: the
command line (:mod:`batch.run`) fills it, and everything downstream reads it.
Defaults are written once, here; the command line shows them in ``--help``.

How the actor pool is sized (see :mod:`batch.actor` for why):

* ``num_actors`` N: a fixed pool of N engines; or ``min_actors``/``max_actors``:
  an autoscaling pool. Each engine reserves what
  :func:`docextract.cluster.placement.engine_placement` says (``tensor_parallel_size``
  GPUs on a GPU cluster, ``cpus_per_engine`` CPUs).
* ``batch_size``: rows Ray Data hands an actor per call. A call's rows come
  back together, so small batches stream results; an actor's first call also
  runs alone (its slow start), so it is what a job shows first.
* ``max_in_flight``: requests one actor keeps in vLLM at once. Each actor
  takes ``ceil(max_in_flight / batch_size) + 1`` calls concurrently, so a new
  batch is already waiting when one drains and vLLM's continuous batching
  stays full.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from docextract.config import PER_PAGE, DocumentMode

__all__ = ["BatchOptions"]


class BatchOptions(BaseModel):
    """What a batch job reads, where it writes, and how wide it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[str] = Field(
        min_length=1,
        description="Folders, globs or files: images/PDFs, or .parquet datasets (labelr layout or an image struct column).",
    )
    output: str = Field(description="Output folder: part-*.parquet, config.json, summary.json.")
    mode: DocumentMode = Field(
        default=PER_PAGE, description="PDFs: one row per page, or one row (one prompt) per document."
    )
    pages: list[int] | None = Field(default=None, description="PDF pages to use, e.g. 1,3-5 (default: all).")
    image_column: str | None = Field(
        default=None, description="Parquet inputs: the image column (default: 'image', else the only image column)."
    )
    id_column: str | None = Field(
        default=None, description="Parquet inputs: the id column (default: 'image_id', else FILE#row=N)."
    )
    address: str | None = Field(
        default=None, description="Ray cluster to join (default: RAY_ADDRESS, else an embedded local Ray)."
    )
    num_cpus: int | None = Field(
        default=None, ge=1, description="Logical CPUs of the embedded local Ray (default: the machine's cores)."
    )
    num_actors: int | None = Field(default=None, ge=1, description="A fixed pool of this many engine actors.")
    min_actors: int = Field(default=1, ge=1, description="Autoscaling pool: fewest engine actors.")
    max_actors: int = Field(default=1, ge=1, description="Autoscaling pool: most engine actors.")
    batch_size: int = Field(
        default=4, ge=1, description="Rows per actor call (results come back per call; the first call runs alone)."
    )
    max_in_flight: int = Field(default=64, ge=1, description="Requests each actor keeps in vLLM at once.")
    preprocess_cpus: float = Field(
        default=1.0, gt=0.0, description="Ray CPUs per preprocessing task (decode, EXIF, resize, PDF render)."
    )
    include_images: bool = Field(
        default=False, description="Write the model-ready image (PNG) in an 'image' {bytes, path} column."
    )
    retry_errors: bool = Field(
        default=False, description="On resume, run again the rows whose earlier result is an error."
    )
    part_rows: int = Field(default=1000, ge=1, description="Rows per output part file (at most).")
    flush_s: float = Field(
        default=60.0, gt=0.0, description="Write a part at least this often (seconds) while results arrive."
    )
    truth: str | None = Field(
        default=None,
        description="Ground truth (labelr Parquet or JSON lines, by image_id): after the run, score the output "
        "folder against it and write eval.json and eval.png there.",
    )
    eval_config: str | None = Field(
        default=None, description="With --truth: how values are compared (EvalConfig as YAML/JSON)."
    )

    @model_validator(mode="after")
    def _check_pool(self) -> BatchOptions:
        if self.min_actors > self.max_actors:
            raise ValueError(f"min_actors ({self.min_actors}) is larger than max_actors ({self.max_actors})")
        if self.pages is not None and (not self.pages or min(self.pages) < 1):
            raise ValueError("pages start at 1")
        return self

    @model_validator(mode="after")
    def _check_evaluation(self) -> BatchOptions:
        if self.eval_config is not None and self.truth is None:
            raise ValueError("eval_config needs truth: give --truth too")
        return self

    @property
    def pool_size(self) -> tuple[int, int]:
        """``(min, max)`` engine actors."""
        if self.num_actors is not None:
            return self.num_actors, self.num_actors
        return self.min_actors, self.max_actors

    @property
    def concurrent_batches(self) -> int:
        """Calls one actor runs at once: enough batches to keep ``max_in_flight`` requests queued."""
        return math.ceil(self.max_in_flight / self.batch_size) + 1
