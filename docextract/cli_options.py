"""Command-line options generated from :class:`~docextract.config.ExtractionConfig`.

Each config field becomes one ``--kebab-case`` option (nested ``sampling``,
``preprocess`` and ``placement`` fields are flattened: ``--max-tokens``, ``--pdf-dpi``), with the
field's description and default as help. Options default to "not given", so a
``--config`` file and the model's own defaults stay the single source of truth
and only what the user typed overrides them.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from docextract.config import ExtractionConfig
    from docextract.tasks import TaskSpec

__all__ = ["add_config_arguments", "add_task_arguments", "config_and_task", "config_overrides"]

_NESTED = ("sampling", "preprocess", "placement")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None


def _add_field(group: argparse._ArgumentGroup, name: str, field: Any, dest: str) -> None:
    annotation = _unwrap_optional(field.annotation)
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
    default = field.get_default(call_default_factory=True)
    help_text = (field.description or "").rstrip(".")
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(annotation) is Literal:
        kwargs["choices"] = list(typing.get_args(annotation))
    elif annotation in (int, float, str):
        kwargs["type"] = annotation
        kwargs["metavar"] = annotation.__name__.upper()
    else:  # dicts, lists: JSON on the command line
        kwargs["type"] = _json_value
        kwargs["metavar"] = "JSON"
    if default not in (None, {}, []):
        help_text += f" (default: {default})"
    kwargs["help"] = help_text
    group.add_argument(_flag(name), **kwargs)


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type[BaseModel]) -> None:
    """Add one option per field of ``config_cls`` (nested models flattened)."""
    engine = parser.add_argument_group("engine and model (ExtractionConfig)")
    for name, field in config_cls.model_fields.items():
        if name in _NESTED:
            nested_cls = _unwrap_optional(field.annotation)
            group = parser.add_argument_group(f"{name} ({nested_cls.__name__})")
            for sub_name, sub_field in nested_cls.model_fields.items():
                _add_field(group, sub_name, sub_field, f"cfg__{name}__{sub_name}")
        else:
            _add_field(engine, name, field, f"cfg__{name}")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config values the user gave on the command line, nested as the config model nests them."""
    overrides: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if not dest.startswith("cfg__"):
            continue
        parts = dest.split("__")[1:]
        if len(parts) == 2:
            overrides.setdefault(parts[0], {})[parts[1]] = value
        else:
            overrides[parts[0]] = value
    return overrides


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """``--task``/``--schema`` (one required), ``--instructions`` and ``--config``: what every
    command that runs a task takes (``docextract extract``, ``batch.run``)."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", help="built-in task name, labelr config.json, schema .json, or module:Class")
    which.add_argument("--schema", metavar="FILE", help="a JSON Schema file (or labelr config.json)")
    parser.add_argument("--instructions", help="instructions for the model (replace the task's own)")
    parser.add_argument("--config", metavar="FILE", help="ExtractionConfig as YAML/JSON; flags override it")


def config_and_task(args: argparse.Namespace) -> tuple[ExtractionConfig, TaskSpec]:
    """The config (``--config`` plus flags) and the task of :func:`add_task_arguments`'s options,
    checked for the config's structured-output backend."""
    from docextract.config import load_config
    from docextract.tasks import load_task

    config = load_config(args.config, **config_overrides(args))
    task = load_task(args.task or args.schema, instructions=args.instructions, backend=config.structured_output_backend)
    return config, task
