"""Command-line options generated from the settings models: the one generator.

Every front door (``docextract extract``, ``docextract serve``, ``batch.run``)
turns Pydantic settings models into ``--kebab-case`` options here, so a
default and a description are written once, on the model, and ``--help``
shows them. Options default to "not given" (``argparse.SUPPRESS``): a
``--config`` file and the model's own defaults stay the single source of
truth, and only what the user typed overrides them.

* :func:`add_model_options` adds one option group for one model's fields;
  :func:`given_options` reads back what was given under a dest prefix.
* :func:`add_config_arguments` / :func:`config_overrides` do that for
  :class:`~docextract.config.ExtractionConfig`, whose nested ``sampling``,
  ``preprocess`` and ``placement`` fields are flattened (``--max-tokens``,
  ``--pdf-dpi``).
"""

from __future__ import annotations

import argparse
import json
import typing
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from docextract.config import nested_settings, unwrap_optional

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from docextract.config import ExtractionConfig
    from docextract.tasks import TaskSpec

__all__ = [
    "CONFIG_PREFIX",
    "add_config_arguments",
    "add_model_options",
    "add_task_arguments",
    "config_and_task",
    "config_overrides",
    "given_options",
    "page_selection",
]

#: The dest prefix of :class:`~docextract.config.ExtractionConfig`'s options.
CONFIG_PREFIX = "cfg"
_SEP = "__"
_NOT_SHOWN = (None, {}, [])
#: Config fields whose generated option reads better another way than as JSON.
_CONFIG_OPTION_OVERRIDES: dict[str, dict[str, Any]] = {
    # A list of paths: one --schema-store PATH per entry, as a shell completes paths.
    "schema_store": {"action": "append", "type": str, "metavar": "PATH"},
}


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None


def page_selection(text: str) -> list[int]:
    """An argparse ``type`` for ``--pages``: :func:`docextract.preprocess.pages.parse_page_selection`."""
    from docextract.errors import InputError
    from docextract.preprocess.pages import parse_page_selection

    try:
        return parse_page_selection(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _option_kwargs(field: FieldInfo, override: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The flag (None: derived from the name) and the ``add_argument`` keywords for one field."""
    override = dict(override)
    flag = override.pop("flag", None)
    show_default = override.pop("show_default", True)
    annotation = unwrap_optional(field.annotation)
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS}
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(annotation) is Literal:
        kwargs["choices"] = list(typing.get_args(annotation))
    elif annotation in (int, float, str):
        kwargs.update(type=annotation, metavar=annotation.__name__.upper())
    else:  # dicts, lists: JSON on the command line
        kwargs.update(type=_json_value, metavar="JSON")
    help_text = (field.description or "").rstrip(".")
    if field.is_required():
        kwargs["required"] = True
    else:
        default = field.get_default(call_default_factory=True)
        if show_default and default not in _NOT_SHOWN:
            help_text += f" (default: {default})"
    kwargs["help"] = help_text
    kwargs.update(override)
    return flag, kwargs


def add_model_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    model_cls: type[BaseModel],
    *,
    title: str | None,
    dest_prefix: str,
    fields: Iterable[str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Add one ``--kebab-case`` option per field of ``model_cls``, stored as ``{dest_prefix}__{field}``.

    The field's type decides the option: ``bool`` is ``--x/--no-x``, a ``Literal`` gives
    ``choices``, ``int``/``float``/``str`` convert, anything else is read as JSON. Its
    description is the help, with its default appended; a required field is a required option.

    Args:
        parser: Where the options go.
        model_cls: The settings model.
        title: The option group's title; None adds to ``parser`` itself.
        dest_prefix: Prefix of the dests, read back by :func:`given_options`.
        fields: The fields to add, in this order (default: every field that is not a
            nested settings model; those get a group of their own, from the caller).
        overrides: Per field, ``add_argument`` keywords that replace the generated ones,
            plus ``flag`` (the option string) and ``show_default`` (False: no
            ``(default: ...)`` in the help).
    """
    if fields is None:
        nested = nested_settings(model_cls)
        fields = [name for name in model_cls.model_fields if name not in nested]
    target = parser.add_argument_group(title) if title is not None else parser
    overrides = overrides or {}
    for name in fields:
        flag, kwargs = _option_kwargs(model_cls.model_fields[name], overrides.get(name, {}))
        target.add_argument(flag or "--" + name.replace("_", "-"), dest=f"{dest_prefix}{_SEP}{name}", **kwargs)


def given_options(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The values given on the command line under ``prefix`` (options left out are absent),
    nested as the dests nest: ``cfg__sampling__max_tokens`` -> ``{"sampling": {"max_tokens": ...}}``."""
    given: dict[str, Any] = {}
    for dest, value in vars(args).items():
        head, sep, rest = dest.partition(_SEP)
        if head != prefix or not sep:
            continue
        *parents, name = rest.split(_SEP)
        node = given
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    return given


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type[BaseModel]) -> None:
    """Add one option per field of ``config_cls`` (nested settings models flattened, a group each)."""
    engine = parser.add_argument_group(f"engine and model ({config_cls.__name__})")
    nested = nested_settings(config_cls)
    # Field by field, so the usage line lists the options in the model's order.
    for name in config_cls.model_fields:
        if name in nested:
            sub_cls = nested[name]
            add_model_options(
                parser, sub_cls, title=f"{name} ({sub_cls.__name__})", dest_prefix=f"{CONFIG_PREFIX}{_SEP}{name}"
            )
        else:
            add_model_options(
                engine,
                config_cls,
                title=None,
                dest_prefix=CONFIG_PREFIX,
                fields=[name],
                overrides=_CONFIG_OPTION_OVERRIDES,
            )


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config values the user gave on the command line, nested as the config model nests them
    (for :func:`docextract.config.merge_overrides`)."""
    return given_options(args, CONFIG_PREFIX)


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
    task = load_task(
        args.task or args.schema,
        instructions=args.instructions,
        backend=config.structured_output_backend,
        schema_store=config.schema_store,
    )
    return config, task
