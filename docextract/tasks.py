"""Tasks: what to extract (instructions) and the shape it must have (JSON Schema).

A task is a named, versioned object. Built-in tasks come from the ``schemas``
package; user tasks load from a labelr-style ``config.json``
(``{"instructions": ..., "json_schema": ...}``), from a bare JSON Schema file
plus instructions, or from a Pydantic model named ``module:Class``.

Every task is compiled when it is built (:func:`docextract.schema.compiler.compile_schema`):
an invalid schema fails at load time with the path and keyword named, never at the first
request; a keyword the chosen grammar backend cannot enforce is left out of the engine
schema, checked after generation, and named in the task's coverage report.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pathlib
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from docextract.errors import SchemaError, TaskError
from docextract.schema.check import Backend
from docextract.schema.compiler import SchemaReport, compile_schema

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "TaskSpec",
    "builtin_task_names",
    "get_builtin_task",
    "load_task",
    "task_from_labelr_config",
    "task_from_model",
    "task_from_schema",
    "task_slug",
]

#: Used when a bare schema comes without instructions.
DEFAULT_INSTRUCTIONS = (
    "Extract the information shown in the image into a JSON object with the requested "
    "fields. Use null for anything that is not shown."
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def task_slug(text: str, *, default: str = "custom", max_length: int | None = 64) -> str:
    """``text`` made into a valid task name: each run of other characters becomes ``_``, leading
    and trailing ``_.-`` go, then at most ``max_length`` characters are kept (None: all);
    ``default`` when nothing is left.

    The one rule for names that come from what users wrote: a schema file's name, an
    inline schema's ``title``, an OpenAI ``json_schema.name``, and (with ``max_length=None``)
    the served model name inside a Serve deployment name.
    """
    slug = _NAME_UNSAFE_RE.sub("_", text).strip("_.-")
    return (slug if max_length is None else slug[:max_length]) or default


class TaskSpec(BaseModel):
    """One extraction task. Immutable; build it with the ``task_from_*`` helpers,
    which check the schema, or with :meth:`create`."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(description="Task name, e.g. 'invoice'.")
    version: str = Field(default="1", description="Task version; bump it when instructions or schema change.")
    instructions: str = Field(description="What to extract, in words, for the model.")
    json_schema: dict[str, Any] = Field(description="The JSON Schema every output conforms to.")
    description: str = Field(default="", description="One line for listings.")
    pydantic_model: type[BaseModel] | None = Field(
        default=None, exclude=True, description="The Pydantic model the schema came from, if any."
    )
    warnings: tuple[str, ...] = Field(
        default=(), description="Schema keywords the grammar does not enforce (checked after generation)."
    )
    backend: str = Field(default="xgrammar", description="The grammar backend the engine schema was compiled for.")

    _reports: dict[str, SchemaReport] = PrivateAttr(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        name: str,
        instructions: str,
        json_schema: dict[str, Any],
        version: str = "1",
        description: str = "",
        pydantic_model: type[BaseModel] | None = None,
        backend: Backend = "xgrammar",
        schema_store: Sequence[str] | None = None,
    ) -> TaskSpec:
        """Check the schema for ``backend`` and build the task. References to other documents
        are resolved from ``schema_store`` and bundled: the task's ``json_schema`` is then the
        self-contained schema (:mod:`docextract.schema.bundle`)."""
        if not _NAME_RE.match(name or ""):
            raise TaskError(f"invalid task name {name!r}: use letters, digits, '_', '-' or '.', at most 64")
        if not isinstance(instructions, str) or not instructions.strip():
            raise TaskError(f"task {name!r}: instructions must be a non-empty string")
        if json_schema is True:  # the schema every value satisfies
            json_schema = {}
        report = compile_schema(json_schema, backend, schema_store)
        if report.bundled:
            json_schema = report.schema_
        description = description or (
            _first_line(json_schema.get("description", "")) if isinstance(json_schema, dict) else ""
        )
        task = cls(
            name=name,
            version=str(version),
            instructions=instructions.strip(),
            json_schema=json_schema,
            description=description or "",
            pydantic_model=pydantic_model,
            warnings=tuple(
                f"{e.path}: '{e.keyword}' {e.status}: {e.reason}" for e in report.coverage if e.status != "enforced"
            ),
            backend=backend,
        )
        task._reports[backend] = report
        return task

    def report(self, backend: str | None = None) -> SchemaReport:
        """The schema compiler's report for ``backend`` (default: the task's own); cached."""
        backend = backend or self.backend
        if backend not in self._reports:
            self._reports[backend] = compile_schema(self.json_schema, backend)
        return self._reports[backend]

    @property
    def engine_schema(self) -> Any:
        """The schema sent to vLLM for the task's backend (see :mod:`docextract.schema.compiler`)."""
        return self.report().engine_schema

    @property
    def validated_after(self) -> list[str]:
        """``"<path>: <keyword>"`` for each keyword the grammar leaves to the check after generation."""
        return self.report().validated_after

    @property
    def fingerprint(self) -> str:
        """A short hash of instructions + schema: tells two versions of a task apart."""
        blob = json.dumps([self.instructions, self.json_schema], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def labelr_config(self) -> dict[str, Any]:
        """The task as labelr's ``config.json`` (``instructions`` + ``json_schema``)."""
        return {"instructions": self.instructions, "json_schema": self.json_schema}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def task_from_model(
    model: type[BaseModel],
    instructions: str,
    *,
    name: str | None = None,
    version: str = "1",
    backend: Backend = "xgrammar",
) -> TaskSpec:
    """Build a task from a Pydantic model (its JSON Schema is what the engine enforces)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TaskError(f"{model!r} is not a Pydantic model class")
    try:
        schema = model.model_json_schema()
    except Exception as exc:  # pydantic raises several types for unrepresentable models
        raise SchemaError(f"cannot derive a JSON Schema from {model.__name__}: {exc}") from None
    return TaskSpec.create(
        name=name or _snake(model.__name__),
        instructions=instructions,
        json_schema=schema,
        version=version,
        description=_first_line(model.__doc__ or ""),
        pydantic_model=model,
        backend=backend,
    )


def task_from_schema(
    schema: dict[str, Any],
    instructions: str | None = None,
    *,
    name: str = "custom",
    version: str = "1",
    backend: Backend = "xgrammar",
    schema_store: Sequence[str] | None = None,
) -> TaskSpec:
    """Build a task from a JSON Schema dict (instructions default to a generic prompt)."""
    return TaskSpec.create(
        name=name,
        instructions=instructions or DEFAULT_INSTRUCTIONS,
        json_schema=schema,
        version=version,
        backend=backend,
        schema_store=schema_store,
    )


def task_from_labelr_config(
    config: dict[str, Any],
    *,
    name: str = "custom",
    backend: Backend = "xgrammar",
    schema_store: Sequence[str] | None = None,
) -> TaskSpec:
    """Build a task from labelr's ``config.json`` content: ``{"instructions", "json_schema"}``."""
    missing = [key for key in ("instructions", "json_schema") if key not in config]
    if missing:
        raise TaskError(f"a labelr config.json needs 'instructions' and 'json_schema'; missing {', '.join(missing)}")
    return TaskSpec.create(
        name=config.get("name", name),
        instructions=config["instructions"],
        json_schema=config["json_schema"],
        version=str(config.get("version", "1")),
        backend=backend,
        schema_store=schema_store,
    )


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def builtin_task_names() -> list[str]:
    """Names of the tasks defined in the ``schemas`` package."""
    from schemas import BUILTIN_TASK_MODULES

    return sorted(BUILTIN_TASK_MODULES)


def get_builtin_task(name: str, *, backend: Backend = "xgrammar") -> TaskSpec:
    """The built-in task ``name``."""
    from schemas import BUILTIN_TASK_MODULES

    try:
        module = BUILTIN_TASK_MODULES[name]
    except KeyError:
        raise TaskError(
            f"unknown task {name!r}; built-in tasks: {', '.join(sorted(BUILTIN_TASK_MODULES))}. "
            "Give a schema file, a labelr config.json or a Pydantic model as module:Class instead"
        ) from None
    return task_from_model(module.Model, module.INSTRUCTIONS, name=module.NAME, version=module.VERSION, backend=backend)


def _read_json(path: pathlib.Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskError(f"{path}: cannot read task file ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def load_task(
    ref: str,
    *,
    instructions: str | None = None,
    backend: Backend = "xgrammar",
    schema_store: Sequence[str] | None = None,
) -> TaskSpec:
    """Load a task from a reference, tried in this order:

    * a built-in task name (``invoice``);
    * a path to a JSON file: a labelr ``config.json`` (has ``json_schema``) or a
      bare JSON Schema (then ``instructions`` or a generic prompt is used);
    * ``module:Class`` naming a Pydantic model (``instructions`` required, or a
      module-level ``INSTRUCTIONS`` next to the class).

    ``instructions``, when given, replaces the task's own. ``schema_store`` resolves a
    schema's references to other documents (see :meth:`TaskSpec.create`).
    """
    from schemas import BUILTIN_TASK_MODULES

    if ref in BUILTIN_TASK_MODULES:
        task = get_builtin_task(ref, backend=backend)
        return task.model_copy(update={"instructions": instructions}) if instructions else task
    path = pathlib.Path(ref)
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise TaskError(f"{ref}: no such task file")
        content = _read_json(path)
        name = path.stem if path.stem != "config" else (path.parent.name or "custom")
        name = task_slug(name)
        if isinstance(content, dict) and "json_schema" in content:
            if instructions:
                content = {**content, "instructions": instructions}
            return task_from_labelr_config(content, name=name, backend=backend, schema_store=schema_store)
        return task_from_schema(content, instructions, name=name, backend=backend, schema_store=schema_store)
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise TaskError(f"cannot import module {module_name!r} for task {ref!r}: {exc}") from None
        model = getattr(module, attr, None)
        if model is None:
            raise TaskError(f"module {module_name!r} has no attribute {attr!r}")
        text = instructions or getattr(module, "INSTRUCTIONS", None)
        if not text:
            raise TaskError(f"task {ref!r}: give instructions (the module defines no INSTRUCTIONS)")
        return task_from_model(model, text, name=getattr(module, "NAME", None) or _snake(attr), backend=backend)
    raise TaskError(
        f"unknown task {ref!r}: not a built-in task ({', '.join(sorted(BUILTIN_TASK_MODULES))}), "
        "not an existing .json file and not module:Class"
    )
