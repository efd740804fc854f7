"""Reading predictions and truth: ``image_id`` -> ``output``, from Parquet, JSON lines or a folder of them.

Accepted, for both sides:

* Parquet in labelr's layout: an ``image_id`` and an ``output`` column (the
  JSON as a string, as labelr datasets and ``docextract batch`` write it);
  other columns are ignored;
* JSON lines: one object per line with ``image_id`` and ``output`` (a JSON
  string, or the object itself); ``docextract extract``'s results (``id`` and
  ``data``, or ``raw_text`` when ``data`` is null) are read as well;
* a folder: every ``*.parquet``, ``*.jsonl`` and ``*.ndjson`` file directly
  in it (hidden files skipped), so a batch output folder is read as is.

A prediction's per-field confidence is read beside its output when present
(:func:`load_predictions`): the ``confidence`` column of a batch part (a JSON
string), or the ``confidence`` key of a JSON line (a ``docextract extract``
result holds it as an object).

An id seen twice is an error: which output to score would be a guess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docextract.errors import DocExtractError

__all__ = ["load_outputs", "load_predictions", "output_files"]

_JSONL = (".jsonl", ".ndjson")


def output_files(path: str | Path, pattern: str = "*") -> list[Path]:
    """The files ``path`` stands for: itself, or the Parquet / JSON lines files in the folder
    whose names match ``pattern`` (a glob)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.glob(pattern)
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in (".parquet", *_JSONL)
        )
        if not files:
            raise DocExtractError(f"{path}: no .parquet or .jsonl files in this folder")
        return files
    if not path.is_file():
        raise DocExtractError(f"{path}: no such file or folder")
    if path.suffix.lower() not in (".parquet", *_JSONL):
        raise DocExtractError(f"{path}: give a Parquet file (.parquet), JSON lines (.jsonl) or a folder of them")
    return [path]


def _read_parquet(path: Path) -> list[tuple[Any, Any, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        missing = [c for c in ("image_id", "output") if c not in names]
        if missing:
            raise DocExtractError(
                f"{path}: no {' and no '.join(missing)} column (columns: {', '.join(names)}); "
                "the labelr layout has image_id and output"
            )
        columns = ["image_id", "output"] + (["confidence"] if "confidence" in names else [])
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise DocExtractError(f"{path}: cannot read Parquet ({exc})") from None
    ids, outputs = table.column("image_id").to_pylist(), table.column("output").to_pylist()
    confidence = table.column("confidence").to_pylist() if "confidence" in columns else [None] * len(ids)
    return list(zip(ids, outputs, confidence, strict=True))


def _read_jsonl(path: Path) -> list[tuple[Any, Any, Any]]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DocExtractError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DocExtractError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DocExtractError(f"{path}:{number}: each line must be a JSON object with image_id and output")
        if "image_id" in row and "output" in row:
            rows.append((row["image_id"], row["output"], row.get("confidence")))
        elif "id" in row and "data" in row:  # a `docextract extract` result
            output = row["data"] if row["data"] is not None else row.get("raw_text") or None
            rows.append((row["id"], output, row.get("confidence")))
        else:
            raise DocExtractError(f"{path}:{number}: no image_id and output (keys: {', '.join(row)})")
    return rows


def load_outputs(path: str | Path, *, pattern: str = "*") -> dict[str, Any]:
    """``image_id`` -> ``output`` (a JSON string, a parsed value, or None) for every row under ``path``
    (in a folder, the files matching ``pattern``).

    Raises:
        DocExtractError: a missing or unreadable file, missing columns, a row without id, an id twice.
    """
    return load_predictions(path, pattern=pattern)[0]


def load_predictions(path: str | Path, *, pattern: str = "*") -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`load_outputs`, and ``image_id`` -> per-field confidence for the rows that carry one
    (a JSON string or an object, as written; read by :func:`~docextract.evaluation.calibration.read_confidence`).

    Raises:
        DocExtractError: as :func:`load_outputs`.
    """
    outputs: dict[str, Any] = {}
    confidence: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    for file in output_files(path, pattern):
        rows = _read_parquet(file) if file.suffix.lower() == ".parquet" else _read_jsonl(file)
        for image_id, output, conf in rows:
            if image_id is None:
                raise DocExtractError(f"{file}: a row has no image_id")
            image_id = str(image_id)
            if image_id in outputs:
                raise DocExtractError(f"{file}: image_id {image_id!r} appears twice (also in {origin[image_id]})")
            outputs[image_id] = output
            origin[image_id] = file
            if conf is not None:
                confidence[image_id] = conf
    return outputs, confidence
