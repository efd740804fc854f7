"""The typed errors docextract raises for bad input, bad tasks and bad setup.

Every error a user can cause derives from :class:`DocExtractError` and carries a
message meant to be shown as is (CLI: one line on stderr and a non-zero exit;
Serve: the body of a 4xx answer; batch: the row's ``error`` column). ``kind``
is a short stable machine-readable code for clients and metrics. How a kind is
answered over HTTP is the online service's business (:mod:`serve.errors`), not the core's.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DocExtractError",
    "InputError",
    "TaskError",
    "SchemaError",
    "ModelLoadError",
    "EngineError",
    "engine_request_error",
    "validation_problems",
]


class DocExtractError(Exception):
    """Base class: an error with a message fit to show the user."""

    kind: str = "error"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        return self.message


class InputError(DocExtractError):
    """An image or document that cannot be used: corrupt, empty, encrypted,
    unsupported, too large. ``kind`` tells which (e.g. ``corrupt_image``,
    ``empty_file``, ``encrypted_pdf``, ``unsupported_type``, ``too_large``)."""

    kind = "invalid_input"


class TaskError(DocExtractError):
    """A task that cannot be found or loaded (unknown name, unreadable file)."""

    kind = "invalid_task"


class SchemaError(TaskError):
    """A JSON Schema that is invalid, or uses a feature the grammar backend
    cannot enforce. Raised when the task is loaded, never at generation time."""

    kind = "invalid_schema"


class ModelLoadError(DocExtractError):
    """The model cannot be loaded (not found offline, unsupported architecture)."""

    kind = "model_load"


class EngineError(DocExtractError):
    """The engine failed for one request (not the caller's input)."""

    kind = "engine_error"


def validation_problems(exc: Any, root: str = "(root)") -> str:
    """A Pydantic ``ValidationError`` as one line: ``field.path: message; ...``
    (``root`` names the top level, where an error has no field path)."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in exc.errors())


def engine_request_error(exc: Exception) -> Exception:
    """Map an exception from vLLM for one request to docextract's errors.

    vLLM's client errors (prompt longer than ``max_model_len``, an image the
    processor refuses) are the caller's input: :class:`InputError`. A dead
    engine is re-raised as is, so health checks and supervisors see it; any
    other failure is an :class:`EngineError` for this request only.
    """
    from vllm.exceptions import VLLMClientError
    from vllm.v1.engine.exceptions import EngineDeadError

    if isinstance(exc, EngineDeadError):
        return exc
    if isinstance(exc, (VLLMClientError, ValueError, TypeError)):
        message = str(exc).split(". Make sure")[0]
        return InputError(f"the engine rejected the request: {message}", kind="rejected_by_engine")
    return EngineError(f"generation failed: {type(exc).__name__}: {exc}")
