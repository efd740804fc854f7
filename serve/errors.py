"""Errors as HTTP answers: one JSON shape for every route, OpenAI's.

Every error body is ``{"error": {"message", "type", "code", "kind", "param"}}``:
OpenAI's shape (so the official ``openai`` client raises ``BadRequestError``,
``AuthenticationError``...) with docextract's stable ``kind`` added, on the
native routes as well, so clients parse one shape.

The status of a core error is decided here and only here (the core knows no
HTTP): its ``kind`` in :data:`STATUS_BY_KIND`, else its class in
:data:`STATUS_BY_CLASS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docextract.errors import (
    DocExtractError,
    EngineError,
    InputError,
    ModelLoadError,
    SchemaError,
    TaskError,
    validation_problems,
)

if TYPE_CHECKING:
    from pydantic import ValidationError

    from docextract.results import ExtractionResult

__all__ = ["ApiError", "error_body", "from_docextract", "invalid_request", "result_error", "status_for"]

#: The status of each core error class (the first match along the class's MRO).
STATUS_BY_CLASS: dict[type[DocExtractError], int] = {
    SchemaError: 422,
    TaskError: 400,
    InputError: 422,
    ModelLoadError: 503,
    EngineError: 500,
    DocExtractError: 400,
}

#: Kinds whose status is more precise than their class's.
STATUS_BY_KIND: dict[str, int] = {
    "unsupported_type": 415,
    "too_large": 413,
    "too_many_pages": 413,
    "too_many_images": 413,
    "too_small": 422,  # an image or page under MIN_IMAGE_SIDE pixels a side: nothing to read
    "blank_page": 422,  # a result whose pages were all blank and skipped (blank_pages=skip)
    "invalid_pages": 400,
    "invalid_mode": 400,
    "invalid_data_uri": 400,
    "invalid_task": 400,
    "not_found": 400,  # over HTTP, a missing file is a bad reference in the request
    "url_not_allowed": 400,
    "url_fetch_failed": 400,
    "url_fetch_disabled": 400,
    "renderer_unavailable": 503,
    "renderer_busy": 503,  # every render slot taken: retry later
    "rejected_by_engine": 422,  # e.g. a prompt longer than the context
    "engine_error": 500,
}

#: OpenAI's error ``type`` per status.
_OPENAI_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


class ApiError(Exception):
    """An error answered as JSON with ``status`` (and optional headers, e.g. Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "error",
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}
        self.param = param


def status_for(exc: DocExtractError) -> int:
    """The HTTP status that answers ``exc``."""
    if exc.kind in STATUS_BY_KIND:
        return STATUS_BY_KIND[exc.kind]
    return next(STATUS_BY_CLASS[cls] for cls in type(exc).__mro__ if cls in STATUS_BY_CLASS)


def from_docextract(exc: DocExtractError) -> ApiError:
    return ApiError(status_for(exc), exc.message, kind=exc.kind)


def result_error(result: ExtractionResult) -> ApiError:
    """A result that carries an error instead of an output (the engine refused its request)."""
    kind = result.error_kind or "invalid_input"
    return ApiError(STATUS_BY_KIND.get(kind, STATUS_BY_CLASS[InputError]), result.error or "no output", kind=kind)


def invalid_request(exc: ValidationError) -> ApiError:
    """A request body (JSON or form fields) that its model refuses: a 400 naming each problem."""
    return ApiError(400, f"invalid request: {validation_problems(exc, root='(body)')}", kind="invalid_request")


def error_body(status: int, message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    kind_type = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind_type, "code": kind, "kind": kind, "param": param}}
