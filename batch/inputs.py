"""Input discovery: what each ``--input`` names, turned into units of work with stable ids.

Input kinds are a registry (:data:`INPUT_KINDS`), tried in order; each one
claims the paths it reads:

* ``parquet``: ``.parquet`` files (one file, a glob, or a folder holding only
  Parquet files). Two layouts are recognised from the schema: labelr's LLM
  image extraction layout (``image_id``, ``image``, ``output``, ``meta``) and
  any Hugging Face ``datasets`` Parquet whose image column is a
  ``{bytes, path}`` struct (or plain binary). Ids: the ``image_id`` (or
  ``--id-column``) value, else ``FILE#row=N`` (N counts from 0 in the file).
* ``files``: images and PDFs (a folder, searched recursively, a glob, or a
  file). Ids: the path relative to the folder (or to the glob's fixed
  prefix; a single file: its name); a PDF page is ``NAME#page=N``, a whole
  document ``NAME#pages=1-3`` (:func:`docextract.preprocess.pages.result_id`, the ids
  the engine gives); a multi-frame TIFF expands like a PDF, one row per frame. A folder contributes the files whose extension is an
  image or PDF one; others are listed as skipped, never read. A file named
  explicitly is always used.

The driver only lists files and reads Parquet footers and id columns (to
refuse duplicate ids before any work starts: two rows with one id cannot both
survive resume). Reading bytes, counting PDF pages and expanding them into
rows happen in Ray tasks (:func:`expand_files`, :func:`read_parquet_rows`),
which also drop the ids already done (:mod:`batch.resume`). A PDF whose pages
cannot be counted becomes one error row under the file's id.

Each input also declares the Arrow type of its ``meta``: files
``struct<path>`` (the absolute path); a labelr dataset its own ``meta``
column; other datasets ``struct<file, row, ...their scalar columns>``.
:func:`merge_meta_types` makes one type for the job (see :mod:`batch.outputs`).

A dataset row is one prompt. If its bytes are a PDF (or a multi-frame TIFF), all its pages go into
that prompt (as ``--mode document`` does for files), up to
``max_images_per_prompt``.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from docextract.errors import DocExtractError, InputError

__all__ = [
    "INPUT_KINDS",
    "InputPlan",
    "InputSource",
    "expand_files",
    "merge_meta_types",
    "plan_inputs",
    "read_parquet_rows",
]

#: Extensions a folder or glob contributes (case-insensitive); the content decides the type.
FILE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".pdf"})
_GLOB_CHARS = frozenset("*?[")


@dataclass
class InputSource:
    """One ``--input``, planned: the items Ray reads and what the driver knows of them.

    Attributes:
        spec: The ``--input`` as given.
        kind: The registry entry that claimed it.
        items: Rows for ``ray.data.from_items`` (one per file, or per Parquet row group).
        ids: Ids known on the driver (files: before page expansion), for the duplicate check.
        meta_type: Arrow type of this input's ``meta``.
        skipped: Files a folder or glob held that are not images or PDFs.
    """

    spec: str
    kind: str
    items: list[dict[str, Any]]
    ids: list[str]
    meta_type: pa.DataType
    skipped: list[str] = field(default_factory=list)


@dataclass
class InputPlan:
    """Every input of a job."""

    sources: list[InputSource]

    @property
    def meta_type(self) -> pa.DataType:
        return merge_meta_types([s.meta_type for s in self.sources])

    def by_kind(self, kind: str) -> list[dict[str, Any]]:
        return [item for s in self.sources if s.kind == kind for item in s.items]


@dataclass(frozen=True)
class InputKind:
    """A registry entry: which paths it claims and how it plans them."""

    claims: Callable[[list[Path]], bool]
    plan: Callable[[str, list[tuple[Path, str]], Any], InputSource]


# --- locating paths -----------------------------------------------------------------------


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in _GLOB_CHARS)


def _glob_base(spec: str) -> Path:
    """The part of a glob before its first wildcard: ids are relative to it."""
    parts = Path(spec).parts
    fixed = []
    for part in parts:
        if _is_glob(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _visible(rel: Path) -> bool:
    return not any(part.startswith(".") for part in rel.parts)


def locate(spec: str) -> list[tuple[Path, str]]:
    """The files an input names, each with its id (its name relative to the folder or the
    glob's fixed prefix; a single file: its name)."""
    path = Path(spec)
    if _is_glob(spec):
        base = _glob_base(spec)
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        return [(p, p.relative_to(base).as_posix() if p.is_relative_to(base) else p.name) for p in found]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _visible(p.relative_to(path)))
        return [(p, p.relative_to(path).as_posix()) for p in found]
    if path.is_file():
        return [(path, path.name)]
    raise DocExtractError(f"--input {spec}: no such file, folder or matching glob")


# --- files: images and PDFs ------------------------------------------------------------------

FILE_META_TYPE = pa.struct([("path", pa.string())])


def _plan_files(spec: str, found: list[tuple[Path, str]], _options: Any) -> InputSource:
    items, ids, skipped = [], [], []
    collection = _is_glob(spec) or Path(spec).is_dir()
    for path, rel in found:
        if collection and path.suffix.lower() not in FILE_EXTENSIONS:
            skipped.append(rel)
            continue
        absolute = str(path.resolve())
        items.append({"source": rel, "path": absolute, "meta": json.dumps({"path": absolute})})
        ids.append(rel)
    return InputSource(spec, "files", items, ids, FILE_META_TYPE, skipped)


def expand_files(
    batch: pa.Table, *, mode: str, pages: Sequence[int] | None, options: Any, done: frozenset[str]
) -> pa.Table:
    """Ray task: files -> units of work (PDFs and multi-frame TIFFs counted and expanded into
    pages), minus ``done``.

    In ``per_page`` mode every page becomes a row, however long the document: each row
    renders only its own page later, so no page limit is needed (``pdf_max_pages`` holds for
    ``document`` mode, where all pages go into one prompt). Little is read here
    (:func:`~docextract.preprocess.documents.count_document_pages`); images and unknown
    types become one row each and are decoded (or refused) by :mod:`batch.preprocess`.
    """
    from batch.rows import WORK_SCHEMA, error_fields, table
    from docextract.config import DOCUMENT
    from docextract.preprocess.documents import count_document_pages
    from docextract.preprocess.pages import check_page_count, group_pages, result_id

    limit = options.pdf_max_pages if mode == DOCUMENT else None
    rows: list[dict[str, Any]] = []
    for item in batch.to_pylist():
        source, path = item["source"], item["path"]
        base = {"source": source, "path": path, "meta": item["meta"], "pages": []}
        try:
            count = count_document_pages(path, name=source, options=options)
            if count is None:  # an image, or what its loader will refuse
                rows.append({**base, "id": source})
                continue
            selected = check_page_count(count, pages, limit, name=source)
        except (OSError, DocExtractError) as exc:
            if isinstance(exc, OSError):
                exc = InputError(f"{source}: cannot read file ({exc.strerror or exc})", kind="not_found")
            rows.append({**base, "id": source, **error_fields(exc)})
            continue
        groups = group_pages(selected, mode)
        rows.extend({**base, "id": result_id(source, group), "pages": group} for group in groups)
    return table([r for r in rows if r["id"] not in done], WORK_SCHEMA)


# --- Parquet datasets --------------------------------------------------------------------------


def _is_image_type(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return t.get_field_index("bytes") >= 0 and pa.types.is_binary(t.field("bytes").type)
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _json_friendly(t: pa.DataType) -> bool:
    """Types whose values survive a JSON round trip as themselves."""
    if pa.types.is_struct(t):
        return all(_json_friendly(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _json_friendly(t.value_type)
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_null(t)
    )


@dataclass(frozen=True)
class ParquetLayout:
    """Which columns of a Parquet file hold the image, the id and the metadata."""

    image_column: str
    id_column: str | None
    meta_column: str | None
    extra_columns: tuple[str, ...]
    meta_type: pa.DataType


def parquet_layout(schema: pa.Schema, image_column: str | None, id_column: str | None, name: str) -> ParquetLayout:
    """Read the layout from a schema: labelr (``image_id``, ``image``, ``meta``) or an HF image dataset."""
    if image_column is None:
        if "image" in schema.names and _is_image_type(schema.field("image").type):
            image_column = "image"
        else:
            candidates = [f.name for f in schema if _is_image_type(f.type)]
            if len(candidates) != 1:
                found = ", ".join(candidates) or "none"
                raise DocExtractError(
                    f"{name}: cannot tell the image column (image-like columns: {found}); name it with --image-column"
                )
            image_column = candidates[0]
    elif image_column not in schema.names or not _is_image_type(schema.field(image_column).type):
        raise DocExtractError(f"{name}: no image column {image_column!r} ({{bytes, path}} struct or binary)")
    if id_column is None:
        id_column = "image_id" if "image_id" in schema.names else None
    elif id_column not in schema.names:
        raise DocExtractError(f"{name}: no id column {id_column!r}")
    if "meta" in schema.names:
        meta_type = schema.field("meta").type
        return ParquetLayout(
            image_column, id_column, "meta", (), meta_type if _json_friendly(meta_type) else pa.string()
        )
    # No meta column: keep where the row came from, and the dataset's own scalar columns.
    taken = {image_column, id_column, "output"}
    extra = tuple(
        f.name for f in schema if f.name not in taken and _json_friendly(f.type) and not pa.types.is_struct(f.type)
    )
    fields = [("file", pa.string()), ("row", pa.int64())] + [(c, schema.field(c).type) for c in extra]
    return ParquetLayout(image_column, id_column, None, extra, pa.struct(fields))


def _plan_parquet(spec: str, found: list[tuple[Path, str]], options: Any) -> InputSource:
    import pyarrow.parquet as pq

    items, ids, meta_types = [], [], []
    for path, rel in found:
        if path.suffix.lower() != ".parquet":
            continue
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise DocExtractError(f"{rel}: not a readable Parquet file ({exc})") from None
        layout = parquet_layout(pf.schema_arrow, options.image_column, options.id_column, rel)
        meta_types.append(layout.meta_type)
        if layout.id_column:
            values = pf.read(columns=[layout.id_column]).column(0).to_pylist()
            ids.extend(v if v is not None else f"{rel}#row={i}" for i, v in enumerate(values))
        else:
            ids.extend(f"{rel}#row={i}" for i in range(pf.metadata.num_rows))
        offset = 0
        for group in range(pf.num_row_groups):
            items.append(
                {
                    "file": str(path.resolve()),
                    "rel": rel,
                    "row_group": group,
                    "row_offset": offset,
                    "image_column": layout.image_column,
                    "id_column": layout.id_column,
                    "meta_column": layout.meta_column,
                    "extra_columns": list(layout.extra_columns),
                }
            )
            offset += pf.metadata.row_group(group).num_rows
    return InputSource(spec, "parquet", items, ids, merge_meta_types(meta_types))


def read_parquet_rows(batch: pa.Table, *, done: frozenset[str]) -> pa.Table:
    """Ray task: Parquet row groups -> units of work (image bytes in ``data``), minus ``done``."""
    import pyarrow.parquet as pq

    from batch.rows import WORK_SCHEMA, table

    rows: list[dict[str, Any]] = []
    for item in batch.to_pylist():
        columns = [item["image_column"], *(c for c in (item["id_column"], item["meta_column"]) if c)]
        columns += item["extra_columns"]
        group = pq.ParquetFile(item["file"]).read_row_group(item["row_group"], columns=list(dict.fromkeys(columns)))
        for i, record in enumerate(group.to_pylist()):
            number = item["row_offset"] + i
            row_id = (record.get(item["id_column"]) if item["id_column"] else None) or f"{item['rel']}#row={number}"
            if row_id in done:
                continue
            if item["meta_column"]:
                meta = record.get(item["meta_column"])
            else:
                meta = {"file": item["rel"], "row": number, **{c: record.get(c) for c in item["extra_columns"]}}
            image = record.get(item["image_column"])
            data = image.get("bytes") if isinstance(image, dict) else image
            row = {"id": row_id, "source": row_id, "pages": [], "meta": json.dumps(meta, default=str), "data": data}
            if not data:
                row.update(error=f"{row_id}: the row has no image bytes", error_kind="empty_file")
            rows.append(row)
    return table(rows, WORK_SCHEMA)


# --- meta types ----------------------------------------------------------------------------------


def merge_meta_types(types: Sequence[pa.DataType]) -> pa.DataType:
    """One ``meta`` type for several inputs: structs merge field by field; anything else, or a
    field with two types, makes the column a JSON string."""
    if not types:
        return FILE_META_TYPE
    if not all(pa.types.is_struct(t) for t in types):
        return pa.string() if len(set(types)) > 1 or not _json_friendly(types[0]) else types[0]
    fields: dict[str, pa.DataType] = {}
    for t in types:
        for i in range(t.num_fields):
            f = t.field(i)
            if fields.setdefault(f.name, f.type) != f.type:
                return pa.string()
    return pa.struct(list(fields.items()))


# --- the registry -------------------------------------------------------------------------------

INPUT_KINDS: dict[str, InputKind] = {
    "parquet": InputKind(
        # A dataset folder often holds a README beside its Parquet files: no images or PDFs is enough.
        claims=lambda paths: (
            any(p.suffix.lower() == ".parquet" for p in paths)
            and not any(p.suffix.lower() in FILE_EXTENSIONS for p in paths)
        ),
        plan=_plan_parquet,
    ),
    "files": InputKind(claims=lambda paths: True, plan=_plan_files),
}


def plan_inputs(specs: Sequence[str], options: Any) -> InputPlan:
    """Plan every ``--input`` and refuse duplicate ids across them."""
    sources = []
    for spec in specs:
        found = locate(spec)
        if not found:
            raise DocExtractError(f"--input {spec}: no files found")
        paths = [p for p, _ in found]
        kind = next(name for name, entry in INPUT_KINDS.items() if entry.claims(paths))
        sources.append(INPUT_KINDS[kind].plan(spec, found, options))
    seen: set[str] = set()
    duplicates: list[str] = []
    for source in sources:
        for row_id in source.ids:
            if row_id in seen:
                duplicates.append(row_id)
            seen.add(row_id)
    if duplicates:
        shown = ", ".join(sorted(set(duplicates))[:5])
        raise DocExtractError(
            f"{len(duplicates)} duplicate input ids ({shown}); ids must be unique across all inputs "
            "(give each folder's files distinct relative names, or fix the dataset's id column)"
        )
    if not any(s.items for s in sources):
        raise DocExtractError("no images, PDFs or Parquet rows found in the inputs")
    return InputPlan(sources)
