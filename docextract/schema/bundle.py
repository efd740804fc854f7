"""Make a schema self-contained: what its ``$ref``s name in other documents, taken from the schema
store (:mod:`.store`), is copied under the root's ``$defs`` and each reference rewritten to a local
JSON pointer.

Why bundle rather than resolve at each use: both grammar backends, the optional-field mapping
and the jsonschema check after generation then read one schema with only local references
(``#/...``), and none of them ever needs a resolver that could fetch a URL.

How a reference is read, as JSON Schema says: against the base URI where it stands (the
document's ``$id``, draft 04 ``id``, changed by an embedded ``$id`` on the way down; a stored
document without one has its file's URI). The URI is looked up among the resources already known
(the root and the documents bundled so far, with their embedded ``$id``s and anchors), then in
the store (:meth:`~.store.SchemaStore.lookup`). Of a stored document only what references reach
is copied: each sub-schema a reference names becomes one entry of the root's ``$defs``
(``base.path`` for ``base.json#/definitions/path``), so a schema that needs one definition of a
400 kB document does not carry the rest into the grammar and the prompt, and every reference
is a one-level ``#/$defs/Name`` (the form the engine-schema mapping and both backends read;
a pointer through ``properties`` would not survive the optional-field mapping). Copies lose
their ``$id``s (every reference into them is rewritten, so no base URI may change under a
validator) and their ``definitions`` (a reference into them gets a copy of its own). Each
sub-schema is copied once, so a cycle across documents ends in references
to each other's copies; at most :data:`MAX_BUNDLED_DOCUMENTS` documents are taken.

Drafts: when the root and the bundled documents are all of one draft, nothing else changes.
When they differ, every part is rewritten in 2020-12 spellings
(:func:`~.normalize.spell_2020_12`: boolean ``exclusiveMinimum``, tuple ``items``,
``dependencies``), a draft 04-07 ``$ref`` loses the siblings its draft ignores, and the result
declares 2020-12, so one validator reads each part as its author meant it.
"""

from __future__ import annotations

import copy
import re
from typing import Any, NamedTuple
from urllib.parse import urldefrag, urljoin

from docextract.errors import SchemaError
from docextract.schema.normalize import SCHEMA_MAP_KEYS, spell_2020_12, user_validator
from docextract.schema.refs import resolve_ref
from docextract.schema.store import SchemaStore, document_id

__all__ = ["MAX_BUNDLED_DOCUMENTS", "Bundle", "bundle", "has_remote_refs", "unresolved_message"]

#: Most documents one schema may pull in from the store (references of references included).
MAX_BUNDLED_DOCUMENTS = 64
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# Keywords whose values are data, never schemas: a "$ref" inside them is not a reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples", "example"})
# Keywords beside a "$ref" that drafts 04-07 do not ignore: where pointers may lead.
_REF_CONTAINERS = frozenset({"$ref", "definitions", "$defs"})
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_DRAFT_RANK = {"Draft4": 4, "Draft6": 6, "Draft7": 7, "Draft201909": 2019, "Draft202012": 2020}
_ROOT = ""  # the key of the root document
_CONTAINERS = frozenset({"definitions", "$defs"})  # left out of a copy's name


class Bundle(NamedTuple):
    """A self-contained schema and the URIs of the documents copied into it, in order."""

    schema: Any
    documents: list[str]


def _escape(name: str) -> str:
    return str(name).replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _own_id(node: dict[str, Any], rank: int) -> str | None:
    """The ``$id`` (draft 04: ``id``) a schema object declares, anchors included."""
    value = node.get("id" if rank == 4 else "$id")
    return value if isinstance(value, str) else None


def _walk(node: Any, visit: Any, path: str = "", base: str = "", rank: int = 2020) -> None:
    """Call ``visit(schema, pointer, base URI)`` on every schema object under ``node``: by keyword
    where the keyword is known, into every other value otherwise (a pointer may lead anywhere),
    never into data (``enum``, ``default``...)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, visit, f"{path}/{i}", base, rank)
        return
    if not isinstance(node, dict):
        return
    own = _own_id(node, rank)
    if own and not own.startswith("#"):
        base = urljoin(base, own) if base else own
    visit(node, path, base)
    for key, value in list(node.items()):
        if key in _DATA_KEYWORDS:
            continue
        if (key in SCHEMA_MAP_KEYS or key == "dependencies") and isinstance(value, dict):
            for name, item in value.items():
                _walk(item, visit, f"{path}/{key}/{_escape(name)}", base, rank)
        elif isinstance(value, (dict, list)):
            _walk(value, visit, f"{path}/{_escape(key)}", base, rank)


def has_remote_refs(schema: Any) -> bool:
    """Whether any ``$ref`` under ``schema`` names something other than a JSON pointer into it."""
    found: list[str] = []

    def visit(node: dict[str, Any], _path: str, _base: str) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            found.append(ref)

    _walk(schema, visit)
    return bool(found)


def unresolved_message(path: str, ref: str, uri: str, store: SchemaStore | None) -> str:
    """Why ``ref`` is refused, and the two ways to fix it."""
    where = f" ({uri})" if uri and uri != urldefrag(ref)[0] else ""
    reason = (
        # The store's size, not its paths: this message reaches API clients.
        f"the schema store has no document for it ({len(store)} documents)"
        if store is not None
        else "no schema_store is configured"
    )
    return (
        f"{path}: $ref {ref!r}{where} names another document and {reason}; references are never fetched. "
        "Add the document to the schema store (the schema_store setting: directories or files of JSON "
        "Schemas, found by $id or file name), or bundle it into the schema under $defs and refer to "
        "'#/$defs/...'"
    )


def _draft_rank(doc: Any) -> int:
    return _DRAFT_RANK.get(user_validator(doc).__name__.removesuffix("Validator"), 2020)


class _Bundler:
    def __init__(self, root: dict[str, Any], store: SchemaStore | None) -> None:
        self.store = store
        self.root = copy.deepcopy(root)
        self.originals: dict[str, Any] = {_ROOT: root}  # document key -> its contents
        self.ranks: dict[str, int] = {_ROOT: _draft_rank(root)}
        self.uris: dict[str, str] = {_ROOT: document_id(root) or ""}
        self.resources: dict[str, tuple[str, str]] = {}  # URI -> (document key, JSON pointer)
        self.anchors: dict[str, tuple[str, str]] = {}  # URI#name -> (document key, JSON pointer)
        self.names: dict[tuple[str, str], str] = {}  # (document key, pointer) -> its $defs name
        self.copies: dict[str, tuple[str, Any]] = {}  # $defs name -> (document key, copy)
        self.queue: list[tuple[str, Any, str]] = []  # (document key, copy, its pointer) to rewrite
        defs = root.get("$defs")
        self.taken = set(defs) if isinstance(defs, dict) else set()
        self._index(_ROOT)

    def _index(self, key: str) -> None:
        rank = self.ranks[key]

        def visit(node: dict[str, Any], path: str, base: str) -> None:
            own = _own_id(node, rank)
            if own and own.startswith("#") and rank < 2019:
                self.anchors.setdefault(f"{base}{own}", (key, path))
            elif own or not path:
                self.resources.setdefault(urldefrag(base)[0], (key, path))
            if rank >= 2019 and isinstance(node.get("$anchor"), str):
                self.anchors.setdefault(f"{base}#{node['$anchor']}", (key, path))

        _walk(self.originals[key], visit, "", self.uris[key], rank)

    def run(self) -> Bundle:
        _walk(self.root, self._rewriter(_ROOT), "", self.uris[_ROOT], self.ranks[_ROOT])
        while self.queue:
            key, subtree, pointer = self.queue.pop(0)
            _walk(subtree, self._rewriter(key), pointer, self._base_at(key, pointer), self.ranks[key])
        root, documents = self.root, [self.uris[key] for key in self.originals if key != _ROOT]
        if not self.copies:
            return Bundle(root, documents)
        root_rank = self.ranks[_ROOT]
        copies = {name: part for name, (_, part) in self.copies.items()}
        if any(self.ranks[key] != root_rank for key, _ in self.copies.values()):
            root = _to_2020_12(root, root_rank)
            copies = {name: _to_2020_12(part, self.ranks[key]) for name, (key, part) in self.copies.items()}
            root["$schema"] = DRAFT_2020_12
        defs = root.get("$defs")
        root["$defs"] = {**(defs if isinstance(defs, dict) else {}), **copies}
        return Bundle(root, documents)

    def _base_at(self, key: str, pointer: str) -> str:
        base, node, rank = self.uris[key], self.originals[key], self.ranks[key]
        for part in pointer.split("/")[1:]:
            node = node[int(part)] if isinstance(node, list) else node[_unescape(part)]
            own = _own_id(node, rank) if isinstance(node, dict) else None
            if own and not own.startswith("#"):
                base = urljoin(base, own) if base else own
        return base

    def _rewriter(self, key: str) -> Any:
        rank = self.ranks[key]

        def visit(node: dict[str, Any], path: str, base: str) -> None:
            if path or key != _ROOT:  # the root keeps its own $id; nothing else may move the base
                own = _own_id(node, rank)
                if own and not own.startswith("#"):
                    node.pop("id" if rank == 4 else "$id")
                if key != _ROOT:
                    node.pop("$schema", None)
                    # Every reference into a copy's definitions gets a copy of its own: these are dead.
                    for container in _CONTAINERS:
                        node.pop(container, None)
            ref = node.get("$ref")
            if isinstance(ref, str):
                where = f"#{path}" if key == _ROOT else f"{self.uris[key]}#{path}"
                node["$ref"] = self._resolve(ref, base, where)

        return visit

    def _resolve(self, ref: str, base: str, where: str) -> str:
        target = urljoin(base, ref) if base else ref
        uri, fragment = urldefrag(target)
        hit = self.resources.get(uri)
        if hit is None:
            doc = self.store.lookup(uri) if self.store is not None else None
            if doc is None:
                raise SchemaError(unresolved_message(where, ref, uri, self.store))
            hit = self.resources.get(doc.uri) or (self._add(doc.uri, doc.contents, where), "")
            self.resources[uri] = hit
        key, pointer = hit
        if fragment and not fragment.startswith("/"):
            anchored = self.anchors.get(f"{uri}#{fragment}")
            if anchored is None:
                raise SchemaError(f"{where}: $ref {ref!r} names an anchor ('#{fragment}') that is not defined there")
            key, pointer = anchored
        else:
            pointer += fragment
        if resolve_ref("#" + pointer, self.originals[key]) is None:
            shown = f" ({target})" if target != ref else ""
            raise SchemaError(f"{where}: $ref {ref!r}{shown} points to nothing in the document it names")
        if key == _ROOT:
            return "#" + pointer
        return f"#/$defs/{_escape(self._copy(key, pointer))}"

    def _copy(self, key: str, pointer: str) -> str:
        """The ``$defs`` name of the copy of what ``pointer`` names in document ``key``; made once."""
        name = self.names.get((key, pointer))
        if name is not None:
            return name
        segments = [_unescape(p) for p in pointer.split("/")[1:]]
        stem = self.uris[key].rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
        label = ".".join([stem, *(p for p in segments if p not in _CONTAINERS)])
        base = _KEY_UNSAFE.sub("_", label).strip("_.-")[:96] or "document"
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        self.names[(key, pointer)] = name
        node = copy.deepcopy(resolve_ref("#" + pointer, self.originals[key]))
        if not isinstance(node, dict):  # a boolean schema
            node = {} if node else {"not": {}}
        self.copies[name] = (key, node)
        self.queue.append((key, node, pointer))
        return name

    def _add(self, uri: str, contents: Any, where: str) -> str:
        if len(self.originals) > MAX_BUNDLED_DOCUMENTS:
            raise SchemaError(
                f"{where}: the schema refers to more than {MAX_BUNDLED_DOCUMENTS} other documents "
                "(references of references included); bundle what it needs under $defs"
            )
        key = uri
        self.originals[key], self.uris[key] = contents, uri
        self.ranks[key] = _draft_rank(contents)
        self._index(key)
        return key


def _to_2020_12(doc: Any, rank: int) -> Any:
    if rank <= 7:
        # Drafts 04-07 ignore every keyword beside "$ref"; 2020-12 applies them.
        def drop_siblings(node: dict[str, Any], _path: str, _base: str) -> None:
            if isinstance(node.get("$ref"), str):
                for name in [k for k in node if k not in _REF_CONTAINERS]:
                    del node[name]

        _walk(doc, drop_siblings)
    return spell_2020_12(doc) if rank < 2020 else doc


def bundle(schema: Any, store: SchemaStore | None) -> Bundle:
    """``schema`` with what its references name in other documents bundled under ``$defs``.

    Raises:
        SchemaError: a reference the store cannot resolve, an undefined anchor, a pointer into
            nothing, or more than :data:`MAX_BUNDLED_DOCUMENTS` documents; the message names
            the JSON path and says how to fix it.
    """
    if not isinstance(schema, dict) or not has_remote_refs(schema):
        return Bundle(schema, [])
    return _Bundler(schema, store).run()
