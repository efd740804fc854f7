"""Errors as HTTP answers: one JSON shape for every route, OpenAI's.

Every error body is ``{"error": {"message", "type", "code", "kind", "param"}}``:
OpenAI's shape (so the official ``openai`` client raises ``BadRequestError``,
``AuthenticationError``...) with docextract's stable ``kind`` added, on the
native routes as well, so clients parse one shape.

The status comes from the core's :attr:`DocExtractError.http_status`; a few
input kinds are refined here where HTTP has a more precise code (the core
keeps its generic 422 for the CLI's and batch's sake).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docextract.errors import DocExtractError, validation_problems

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["ApiError", "error_body", "from_docextract", "invalid_request", "status_for"]

#: Input kinds whose HTTP status is more precise than the core's default.
STATUS_BY_KIND: dict[str, int] = {
    "unsupported_type": 415,
    "too_large": 413,
    "too_many_pages": 413,
    "too_many_images": 413,
    "invalid_pages": 400,
    "invalid_mode": 400,
    "invalid_data_uri": 400,
    "invalid_task": 400,
    "not_found": 400,  # over HTTP, a missing file is a bad reference in the request
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
    return STATUS_BY_KIND.get(exc.kind, exc.http_status)


def from_docextract(exc: DocExtractError) -> ApiError:
    return ApiError(status_for(exc), exc.message, kind=exc.kind)


def invalid_request(exc: ValidationError) -> ApiError:
    """A request body (JSON or form fields) that its model refuses: a 400 naming each problem."""
    return ApiError(400, f"invalid request: {validation_problems(exc, root='(body)')}", kind="invalid_request")


def error_body(status: int, message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    kind_type = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind_type, "code": kind, "kind": kind, "param": param}}
