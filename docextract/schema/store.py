"""The schema store: JSON Schema documents a ``$ref`` to another document may name, read from
local files, never fetched.

A production service must not fetch the URLs a user's schema names (a ``$ref`` to
``http://169.254.169.254/...`` is a server-side request forgery), yet real schemas refer to
other documents: SchemaStore's ``base.json#/definitions/path``, ``tsconfig#/definitions/...``,
``https://json.schemastore.org/jsconfig.json``. The operator lists directories and files of
JSON Schemas (``ExtractionConfig.schema_store``); :class:`SchemaStore` indexes each document:

* by its ``$id`` (draft 04: ``id``), the URI a reference names, fragment dropped;
* by its file's ``file:`` URI, so a stored document without ``$id`` has a base URI its own
  relative references resolve against;
* by its file name, with and without ``.json``, when that name is unique in the store: the
  fallback for a reference whose URI no document claims (a relative ``base.json`` in a user's
  schema that has no ``$id``, or SchemaStore's ``https://json.schemastore.org/grunt-task``
  whose document says ``grunt-task.json``).

A store is read once per process (:func:`load_store`, cached by its paths); unreadable or
non-JSON files are skipped and listed in :attr:`SchemaStore.skipped`. Embedded ``$id``s
inside a document are not indexed. :mod:`.bundle` uses the store to make a schema
self-contained.
"""

from __future__ import annotations

import json
import pathlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urlsplit

__all__ = ["SchemaStore", "StoredSchema", "document_id", "load_store"]


@dataclass(frozen=True)
class StoredSchema:
    """One document of the store: its canonical URI (its ``$id``, else its file URI) and contents."""

    uri: str
    contents: Any
    path: str


def document_id(doc: Any) -> str | None:
    """A document's own ``$id`` (draft 04: ``id``) without its empty fragment, or None."""
    if not isinstance(doc, dict):
        return None
    value = doc.get("$id")
    if not isinstance(value, str):
        value = doc.get("id") if "$id" not in doc else None
    if not isinstance(value, str) or not value.strip("#"):
        return None
    return urldefrag(value)[0] or None


def _name_keys(path: pathlib.Path) -> tuple[str, ...]:
    return (path.name, path.stem) if path.suffix.lower() == ".json" else (path.name,)


@dataclass
class SchemaStore:
    """An in-memory index of local JSON Schema documents (see the module docstring)."""

    paths: tuple[str, ...] = ()
    by_uri: dict[str, StoredSchema] = field(default_factory=dict)
    by_name: dict[str, StoredSchema] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def from_paths(cls, paths: Iterable[str | pathlib.Path]) -> SchemaStore:
        """Read every ``*.json`` under each directory (recursively) and each file named.

        Raises:
            FileNotFoundError: a path does not exist (a misconfigured store is an error at
                startup, not a refusal at the first request).
        """
        store = cls(paths=tuple(str(p) for p in paths))
        files: list[pathlib.Path] = []
        for raw in store.paths:
            path = pathlib.Path(raw).expanduser()
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
            elif path.is_file():
                files.append(path)
            else:
                raise FileNotFoundError(f"schema_store: {raw} is neither a file nor a directory")
        names: dict[str, list[StoredSchema]] = {}
        for path in files:
            try:
                contents = json.loads(path.read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                store.skipped.append(f"{path}: {exc}")
                continue
            if not isinstance(contents, (dict, bool)):
                store.skipped.append(f"{path}: not a JSON Schema (a {type(contents).__name__})")
                continue
            file_uri = path.resolve().as_uri()
            doc = StoredSchema(uri=document_id(contents) or file_uri, contents=contents, path=str(path))
            store.by_uri.setdefault(doc.uri, doc)  # the first listed wins a duplicate $id
            store.by_uri.setdefault(file_uri, doc)
            for key in _name_keys(path):
                names.setdefault(key, []).append(doc)
        store.by_name = {key: docs[0] for key, docs in names.items() if len({d.uri for d in docs}) == 1}
        return store

    def __len__(self) -> int:
        return len({doc.uri for doc in self.by_uri.values()})

    def lookup(self, uri: str) -> StoredSchema | None:
        """The document ``uri`` (no fragment) names, or None.

        By URI first. Then by the last segment of its path as a unique file name, but only for a
        relative ``uri`` (its schema has no base URI) or for a stored document whose own URI is in
        the same folder of the same site: a stub ``renovate-global-schema.json`` in the store is
        not ``https://docs.renovatebot.com/renovate-global-schema.json``.
        """
        doc = self.by_uri.get(uri)
        if doc is not None:
            return doc
        parts = urlsplit(uri)
        folder, _, name = parts.path.rstrip("/").rpartition("/")
        doc = self.by_name.get(name) if name else None
        if doc is None or not parts.scheme:
            return doc
        own = urlsplit(doc.uri)
        same_folder = own.path.rstrip("/").rpartition("/")[0] == folder
        return doc if (own.scheme, own.netloc) == (parts.scheme, parts.netloc) and same_folder else None


_stores: dict[tuple[str, ...], SchemaStore] = {}
_lock = threading.Lock()


def load_store(paths: Sequence[str | pathlib.Path] | None) -> SchemaStore | None:
    """The store for ``paths``, read once per process; None for no paths."""
    if not paths:
        return None
    key = tuple(str(p) for p in paths)
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = SchemaStore.from_paths(key)
    return store
