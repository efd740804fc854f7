"""What every router does the same way: find the ingress and the model, read a JSON body,
take the request's deadline, write server-sent events."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

from serve.deadline import Deadline
from serve.errors import ApiError, invalid_request

if TYPE_CHECKING:
    from docextract.results import ExtractionResult
    from docextract.tasks import TaskSpec
    from serve.config import ServedModel
    from serve.ingress import Ingress

__all__ = [
    "MODEL_STATE_KEY",
    "ingress_of",
    "json_body",
    "media_type",
    "request_deadline",
    "served_for",
    "sse",
    "DocextractInfo",
    "VALID_HEADER",
    "docextract_info",
    "with_docextract",
    "answer_text",
    "event_stream",
    "response_format_task",
    "schema_task",
    "task_name",
]

#: The response header that says whether a non-streamed answer conforms to its schema.
VALID_HEADER = "x-docextract-valid"

#: Where a route records the model it served, for the metrics' ``model`` label.
MODEL_STATE_KEY = "docextract_model"


def ingress_of(request: Request) -> Ingress:
    """The :class:`~serve.ingress.Ingress` this app was built over (:func:`serve.http.create_app`)."""
    return request.app.state.ingress


def served_for(request: Request, name: str | None) -> ServedModel:
    """The requested model, recorded on the request for the metrics' ``model`` label."""
    served = ingress_of(request).served(name)
    setattr(request.state, MODEL_STATE_KEY, served.model_name)
    return served


def request_deadline(request: Request) -> Deadline:
    """The service's request timeout, or less if the client asks with ``X-Request-Timeout: <seconds>``."""
    limit_s = ingress_of(request).config.limits.request_timeout_s
    asked = request.headers.get("x-request-timeout")
    if asked is None:
        return Deadline(limit_s)
    try:
        seconds = float(asked)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ApiError(
            400, f"X-Request-Timeout must be a positive number of seconds, got {asked!r}", kind="invalid_request"
        )
    return Deadline(min(seconds, limit_s))


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def json_body(request: Request, model_cls: type[BaseModel]) -> Any:
    """The body as ``model_cls``; 415 for another media type, 400 naming each problem."""
    kind = media_type(request)
    if kind not in ("application/json", ""):
        raise ApiError(415, f"send the request as application/json, not {kind!r}", kind="unsupported_media_type")
    body = await request.body()
    try:
        return model_cls.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def sse(payload: BaseModel | dict[str, Any]) -> str:
    """One server-sent event carrying ``payload`` as compact JSON."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(exclude_none=True)
        for choice in payload.get("choices", []):
            choice.setdefault("finish_reason", None)  # OpenAI sends an explicit null until the end
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def task_name(schema: dict[str, Any]) -> str:
    """An inline schema's task name: its ``title`` made safe, or ``custom``."""
    from docextract.tasks import task_slug

    title = schema.get("title") if isinstance(schema.get("title"), str) else ""
    return task_slug(title)


async def schema_task(
    request: Request,
    served: ServedModel,
    schema: dict[str, Any] | None,
    deadline: Deadline,
    *,
    what: str,
    kind: str = "schema_required",
) -> TaskSpec | None:
    """The task of an inline schema (checked once, then cached), or None for free text.

    Raises:
        ApiError: 400 (``kind``) without a schema when the service sets ``require_schema``.
    """
    import json

    from docextract.tasks import task_from_schema

    ingress = ingress_of(request)
    if schema is None:
        if ingress.config.limits.require_schema:
            raise ApiError(400, f"this service answers JSON under a schema: give {what}", kind=kind, param=what)
        return None
    backend, store = served.structured_output_backend, served.schema_store
    key = ("schema", json.dumps(schema, sort_keys=True), None, task_name(schema), backend, tuple(store))
    return await deadline.run(
        ingress.task(key, lambda: task_from_schema(schema, name=task_name(schema), backend=backend, schema_store=store))
    )


async def response_format_task(request: Request, served: ServedModel, fmt: Any, deadline: Deadline) -> TaskSpec | None:
    """The task of an OpenAI ``response_format`` (checked once, then cached), or None for free text
    (400 instead where the service sets ``require_schema``)."""
    from serve.protocols.openai_models import response_task

    ingress = ingress_of(request)
    backend, store = served.structured_output_backend, served.schema_store
    require = ingress.config.limits.require_schema
    key = ("response_format", fmt.model_dump_json(by_alias=True) if fmt else None, backend, tuple(store))
    return await deadline.run(
        ingress.task(key, lambda: response_task(fmt, backend, require_schema=require, schema_store=store))
    )


class DocextractInfo(BaseModel):
    """docextract's addition to OpenAI and TGI answers (clients ignore unknown fields): whether
    the answer conforms to its schema (``valid`` null for free text), why not, the backend that
    constrained it, and the schema keywords the grammar left to the check after generation."""

    valid: bool | None
    errors: list[dict[str, str]]
    backend: str | None
    validated_after: list[str] = []
    confidence: dict[str, float] | None = None
    min_confidence: float | None = None
    review: list[str] = []
    warnings: list[dict[str, Any]] = []

    def headers(self) -> dict[str, str]:
        """The ``x-docextract-valid`` header of a non-streamed answer (none for free text)."""
        return {VALID_HEADER: str(self.valid).lower()} if self.valid is not None else {}


def docextract_info(result: ExtractionResult, served: ServedModel, constrained: bool) -> DocextractInfo:
    return DocextractInfo(
        valid=result.valid if constrained else None,
        errors=[e.model_dump() for e in result.errors],
        backend=(result.backend or served.structured_output_backend) if constrained else None,
        validated_after=list(result.validated_after) if constrained else [],
        confidence=result.confidence,
        min_confidence=result.min_confidence,
        review=list(result.review),
        warnings=[w.model_dump() for w in result.warnings],
    )


def with_docextract(answer: BaseModel, extra: DocextractInfo | None) -> dict[str, Any]:
    """``answer`` as JSON without its unset fields, but with the whole ``docextract`` object (its
    nulls, ``valid: null`` for free text, say something)."""
    body = answer.model_dump(mode="json", exclude_none=True)
    if extra is not None:
        body["docextract"] = extra.model_dump(mode="json") if isinstance(extra, BaseModel) else extra
    return body


def answer_text(result: ExtractionResult, constrained: bool) -> str:
    """What an answer says: the validated value as strict JSON (or the raw text made strict) under
    a schema (:func:`~serve.protocols.openai_models.answer_content`), the raw text for free text."""
    from serve.protocols.openai_models import answer_content

    return answer_content(result.raw_text, result.data, result.valid) if constrained else result.raw_text


def event_stream(events: Any) -> Any:
    """Server-sent ``events`` as a response that proxies do not buffer."""
    from fastapi.responses import StreamingResponse

    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
