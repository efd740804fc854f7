"""The Arrow schemas of the rows that flow through the pipeline, in one place.

Every stage returns a ``pyarrow.Table`` with one of these schemas, never rows
whose types Ray Data has to guess (an all-null column or an empty list would
otherwise get a different type in different blocks):

* :data:`WORK_SCHEMA`: one unit of work, after input discovery and PDF page
  expansion. Exactly one output row comes from each. ``path`` is set for a
  file (read in the preprocessing task), ``data`` for a dataset row (bytes
  from Parquet). A row may already carry an ``error`` (a PDF whose pages
  cannot be counted); every later stage passes it through.
* :data:`READY_SCHEMA`: after preprocessing: model-ready pages as raw RGB pixels
  (:data:`PIXELS_TYPE`), a PNG of the first page only when the job stores images,
  and the warnings preprocessing raised (:data:`WARNINGS_TYPE`).
* :func:`result_schema`: what the engine actors return and the part files
  hold (plus ``meta`` converted to the job's type, see :mod:`batch.outputs`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

__all__ = [
    "IMAGE_TYPE",
    "PIXELS_TYPE",
    "READY_SCHEMA",
    "WARNINGS_TYPE",
    "WORK_SCHEMA",
    "error_fields",
    "result_schema",
    "table",
    "warning_values",
]

#: Hugging Face ``datasets`` Image feature (what labelr writes): ``{bytes, path}``.
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

#: One model-ready page as raw 8-bit RGB, row-major (``width * height * 3`` bytes). Raw, not PNG:
#: the engine's host process wraps the buffer without decoding it, and the CPU stage spends
#: nothing on encoding (issue 15 measured PNG at about 28 ms to encode and 9 ms to decode per
#: megapixel); the cost is about 3 MB per megapixel in the object store, for seconds.
#: ``large_binary``: a batch of many-page documents can pass 2 GB.
PIXELS_TYPE = pa.struct([("width", pa.int32()), ("height", pa.int32()), ("rgb", pa.large_binary())])

#: :class:`~docextract.results.InputWarning` values: ``blank_page``, ``upscaled``, with the page.
WARNINGS_TYPE = pa.list_(pa.struct([("kind", pa.string()), ("message", pa.string()), ("page", pa.int64())]))

_COMMON = [
    ("id", pa.string()),
    ("source", pa.string()),
    ("pages", pa.list_(pa.int64())),
    # The row's metadata as JSON; the writer turns it into the job's meta type.
    ("meta", pa.string()),
]
_ERROR = [("error", pa.string()), ("error_kind", pa.string())]

WORK_SCHEMA = pa.schema([*_COMMON, ("path", pa.string()), ("data", pa.binary()), *_ERROR])

READY_SCHEMA = pa.schema(
    [
        *_COMMON,
        ("images", pa.list_(PIXELS_TYPE)),
        # The first page as PNG, for the output's ``image`` column (``--include-images``); else null.
        ("preview", pa.binary()),
        ("preprocess_s", pa.float64()),
        ("warnings", WARNINGS_TYPE),
        *_ERROR,
    ]
)

_RESULT_FIELDS = [
    ("image_id", pa.string()),
    ("output", pa.string()),
    ("meta", pa.string()),
    ("valid", pa.bool_()),
    ("error", pa.string()),
    ("error_kind", pa.string()),
    ("validation_errors", pa.list_(pa.string())),
    ("warnings", WARNINGS_TYPE),
    ("finish_reason", pa.string()),
    ("model", pa.string()),
    ("task", pa.string()),
    ("task_version", pa.string()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("source", pa.string()),
    ("pages", pa.list_(pa.int64())),
    ("preprocess_s", pa.float64()),
    ("generation_s", pa.float64()),
    # Wall clock (Unix seconds) when the engine finished the row: with generation_s, the engine's
    # busy window, which the summary turns into a throughput that excludes engine start.
    ("finished_at", pa.float64()),
    # The engine actor's own process CPU seconds (vLLM's front end, docextract's work) spent on
    # this row's batch, split evenly over its rows: summed over a run, the actor's CPU time from
    # its engine being up to its last batch (batch.actor says why it matters on a GPU).
    ("host_cpu_s", pa.float64()),
    # Of host_cpu_s, what Ray's worker main thread took over the same time: its task loop, which
    # wakes every 10 ms to check signals (hard-coded in Ray). It grows with time, not with pages:
    # a CPU engine's slow pages carry much of it, a GPU's fast ones little.
    ("host_ray_loop_cpu_s", pa.float64()),
    # Document mode, as JSON: each value's pages ({"total": [4, 5]}) and the chunks' disagreements
    # ([{"path", "values", "pages", "chosen"}]); null for per-page rows.
    ("sources", pa.string()),
    ("conflicts", pa.string()),
    # Per-field confidence (docextract.confidence) as JSON {path: score}, its lowest value, and the
    # paths under the review threshold; null where no answer was scored.
    ("confidence", pa.string()),
    ("min_confidence", pa.float64()),
    ("review", pa.list_(pa.string())),
]


def result_schema(include_images: bool) -> pa.Schema:
    """The engine stage's output: the labelr columns first, then the extras."""
    fields = list(_RESULT_FIELDS)
    if include_images:
        fields.insert(1, ("image", IMAGE_TYPE))
    return pa.schema(fields)


def error_fields(exc: BaseException) -> dict[str, str]:
    """``error``/``error_kind`` for an exception: docextract's own kind, else the type name."""
    from docextract.errors import DocExtractError

    if isinstance(exc, DocExtractError):
        return {"error": exc.message, "error_kind": exc.kind}
    return {"error": f"{type(exc).__name__}: {exc}", "error_kind": "internal_error"}


def warning_values(warnings: Any) -> list[dict[str, Any]]:
    """:class:`~docextract.results.InputWarning` objects as :data:`WARNINGS_TYPE` values."""
    return [w.model_dump() for w in warnings or []]


def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (missing keys are null) as a table of exactly ``schema``."""
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
