"""Resume: a job run again on the same output folder does only the rows not yet there.

An id is done when a complete part file holds it. Part files appear only by
atomic rename (:mod:`batch.outputs`), so a job killed at any moment leaves
whole parts and, at worst, a hidden ``.part-*.tmp`` that :func:`prepare_output`
deletes. The done ids are dropped right after discovery, before any
preprocessing or engine work.

Rows whose result is an error (a corrupt file, an engine failure) count as
done: running them again would usually fail the same way. With
``retry_errors`` they are run again: each part that holds error rows is first
rewritten without them (atomically, part by part), so the folder still holds
every id at most once whatever happens next.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch.outputs import PART_GLOB, commit_file

__all__ = ["done_ids", "list_parts", "prepare_output"]


def list_parts(out_dir: Path) -> list[Path]:
    """The complete part files, in name order."""
    return sorted(out_dir.glob(PART_GLOB))


def prepare_output(out_dir: Path) -> None:
    """Create the folder; delete the temporary files a killed run left."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for tmp in out_dir.glob(".part-*.tmp"):
        tmp.unlink(missing_ok=True)


def _drop_error_rows(part: Path) -> None:
    table = pq.read_table(part)
    keep = pc.is_null(table.column("error_kind"))
    if pc.all(keep).as_py():
        return
    kept = table.filter(keep)
    if kept.num_rows == 0:
        part.unlink()
        return
    tmp = part.with_name(f".{part.name}.tmp")
    pq.write_table(kept, tmp)
    commit_file(tmp, part)


def done_ids(out_dir: Path, *, retry_errors: bool = False) -> set[str]:
    """Ids already in the output (error rows excluded, and removed, with ``retry_errors``)."""
    done: set[str] = set()
    for part in list_parts(out_dir):
        if retry_errors:
            _drop_error_rows(part)
            if not part.exists():
                continue
        done.update(pq.read_table(part, columns=["image_id"]).column(0).to_pylist())
    return done
