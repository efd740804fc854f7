"""The job's summary: ``summary.json`` and the one line printed at the end.

Counts (``rows``, ``valid``, ``invalid``, ``errors``) are read back from the
part files, so they describe the whole output folder, earlier runs included.
Rates describe this run: ``images_per_s`` and ``tokens_per_s`` over the
run's wall time (engine start included); ``generating_images_per_s`` over
the engines' busy window, from the first request submitted to the last one
finished (read from the rows' ``finished_at`` and ``generation_s``): the
figure to compare with an engine that is already up.

Start-up, from the job's start (before Ray): ``ray_ready_s`` (Ray connected),
``first_request_s`` (the first request reached an engine: its actor process
started and its engine loaded), ``first_result_s`` (the driver received the
first result). ``host_cpu_ms_per_row``: the engine actors' own process CPU per
row over the run (vLLM's front end and docextract's work, not the model's
compute; :mod:`batch.actor`); ``host_ray_loop_cpu_ms_per_row``: the part of it
that Ray's task loop took (the actors' main threads: by time, not by page).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["JobSummary", "RunStats"]


class RunStats(BaseModel):
    """What this run did."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    started_at: float | None = Field(default=None, description="When the job started (Unix seconds, before Ray).")
    resumed_rows: int = Field(description="Rows already in the output when this run started (skipped).")
    rows: int = Field(description="Rows this run wrote.")
    valid: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    parts: int
    wall_s: float
    ray_ready_s: float | None = Field(default=None, description="From the job's start to Ray connected.")
    first_request_s: float | None = Field(
        default=None, description="From the job's start to the first request submitted to an engine (engine up)."
    )
    first_result_s: float | None = Field(description="From the job's start to the first result at the driver.")
    images_per_s: float
    tokens_per_s: float = Field(description="Prompt + completion tokens per second of wall time.")
    generating_s: float | None = Field(description="From the first request submitted to the last one finished.")
    generating_images_per_s: float | None = Field(description="Rows that reached an engine, per generating_s.")
    host_cpu_ms_per_row: float | None = Field(
        default=None, description="Engine actors' own process CPU milliseconds per row (engine start excluded)."
    )
    host_ray_loop_cpu_ms_per_row: float | None = Field(
        default=None, description="Of host_cpu_ms_per_row, Ray's task loop (the actors' main threads; by time)."
    )
    actors: tuple[int, int]
    batch_size: int
    max_in_flight: int


class JobSummary(BaseModel):
    """The whole output folder, and this run."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    output: str
    task: str
    task_version: str
    model: str
    rows: int
    valid: int
    invalid: int
    errors: int
    error_kinds: dict[str, int]
    duplicate_ids: int
    review_rows: int = Field(default=0, description="Rows with at least one field under the review threshold.")
    review_fields: int = Field(default=0, description="Fields under the review threshold, over all rows.")
    prompt_tokens: int
    completion_tokens: int
    images_per_s: float
    tokens_per_s: float
    wall_s: float
    run: RunStats

    def one_line(self) -> str:
        resumed = f", {self.run.resumed_rows} already done" if self.run.resumed_rows else ""
        return (
            f"{self.rows} rows ({self.valid} valid, {self.invalid} invalid, {self.errors} errors), "
            f"{self.review_rows} to review{resumed}; "
            f"this run: {self.run.rows} rows in {self.wall_s:.1f} s, {self.images_per_s:.2f} images/s, "
            f"{self.tokens_per_s:.0f} tokens/s -> {self.output}"
        )
