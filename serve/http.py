"""The HTTP routes: a FastAPI app built per ingress replica by :func:`create_app`.

Routes (all but ``/healthz`` need ``Authorization: Bearer <key>`` when a key is set):

=============================  ================================================================
``POST /v1/extract``           native extraction (:mod:`serve.extract_api`)
``POST /v1/chat/completions``  OpenAI-compatible, ``stream`` as server-sent events (:mod:`serve.openai_api`)
``POST /generate``             TGI-compatible (:mod:`serve.tgi`)
``GET /v1/models``             served models (OpenAI's shape)
``GET /v1/tasks``              built-in tasks with their schemas
``GET /healthz``               200 when every model's engine answers, else 503
``GET /metrics``               Prometheus text (:mod:`serve.metrics`)
=============================  ================================================================

Bodies are read and validated here rather than by FastAPI's parameter
binding, so that every failure (size, type, JSON, fields) is answered in the
one error shape of :mod:`serve.errors` with the status the issue specifies,
and so the size limit applies while the body is read.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from docextract.errors import DocExtractError
from serve.errors import ApiError, error_body, from_docextract, invalid_request
from serve.extract_api import (
    ExtractOptions,
    ExtractRequest,
    ExtractResponse,
    ModelInfo,
    ModelList,
    TaskInfo,
    document_name,
    parse_options,
)
from serve.ingress import Deadline, task_name
from serve.openai_api import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    Delta,
    StrictJsonStream,
    UsageOut,
    answer_content,
    chat_messages,
    completion_id,
    response_task,
)
from serve.tgi import TgiDetails, TgiRequest, TgiResponse, tgi_finish_reason, tgi_messages

if TYPE_CHECKING:
    from serve.config import ServedModel
    from serve.deployment import StreamDelta
    from serve.ingress import Ingress

__all__ = ["create_app"]

#: Routes as metric labels (anything else is "other", so labels stay bounded).
ROUTES = ("/v1/extract", "/v1/chat/completions", "/generate", "/v1/models", "/v1/tasks", "/healthz", "/metrics")
OPEN_ROUTES = ("/healthz",)
MODEL_STATE_KEY = "docextract_model"


def _json_error(exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.status, exc.message, exc.kind, exc.param), exc.status, headers=exc.headers)


class ServiceMiddleware:
    """API key, request size limit and request metrics, around every route (pure ASGI, streams untouched)."""

    def __init__(self, app: Any, ingress: Ingress) -> None:
        self.app = app
        self.ingress = ingress

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ingress = self.ingress
        started = time.perf_counter()
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        route = path if path in ROUTES else "other"
        state = scope.setdefault("state", {})
        status = {"code": 500}

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                model = state.get(MODEL_STATE_KEY, "-")
                ingress.metrics.observe_request(route, model, status["code"], time.perf_counter() - started)

        if ingress.api_key is not None and route not in OPEN_ROUTES and not self._authorized(scope):
            ingress.metrics.reject("-", "unauthorized")
            error = ApiError(401, "missing or wrong API key: send Authorization: Bearer <key>", kind="unauthorized")
            error.headers["WWW-Authenticate"] = "Bearer"
            await _json_error(error)(scope, receive, recording_send)
            return
        limit = ingress.config.limits.max_request_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            ingress.metrics.reject("-", "too_large")
            await _json_error(_too_large(limit))(scope, receive, recording_send)
            return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    ingress.metrics.reject("-", "too_large")
                    raise _too_large(limit)
            return message

        await self.app(scope, limited_receive, recording_send)

    def _authorized(self, scope: dict[str, Any]) -> bool:
        header = _header(scope, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        key = self.ingress.api_key or ""
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"request body larger than the limit of {limit / 1024**2:g} MiB (max_request_bytes)",
        kind="request_too_large",
    )


def _deadline(request: Request, limit_s: float) -> Deadline:
    """The service's request timeout, or less if the client asks with ``X-Request-Timeout: <seconds>``."""
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


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _json_body(request: Request, model_cls: type[BaseModel]) -> Any:
    media_type = _media_type(request)
    if media_type not in ("application/json", ""):
        raise ApiError(415, f"send the request as application/json, not {media_type!r}", kind="unsupported_media_type")
    body = await request.body()
    try:
        return model_cls.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def _sse(payload: BaseModel | dict[str, Any]) -> str:
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(exclude_none=True)
        for choice in payload.get("choices", []):
            choice.setdefault("finish_reason", None)  # OpenAI sends an explicit null until the end
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def create_app(ingress: Ingress) -> FastAPI:
    """The service's FastAPI app over ``ingress``."""
    from docextract.tasks import builtin_task_names, get_builtin_task, task_from_schema
    from docextract.validate import validate_output
    from serve.deployment import ExtractCall

    app = FastAPI(
        title="docextract",
        description="Schema-guaranteed JSON from images and PDFs (vLLM constrained decoding on Ray Serve).",
        version="0.1.0",
    )
    limits = ingress.config.limits
    started_at = int(time.time())

    def served_for(request: Request, name: str | None) -> ServedModel:
        """The requested model, recorded on the request for the metrics' ``model`` label."""
        served = ingress.served(name)
        request.state.docextract_model = served.model_name
        return served

    # -- errors: one shape everywhere ---------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json_error(exc)

    @app.exception_handler(DocExtractError)
    async def _docextract_error(_: Request, exc: DocExtractError) -> JSONResponse:
        return _json_error(from_docextract(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json_error(ApiError(exc.status_code, str(exc.detail), kind=kind, headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _json_error(ApiError(400, f"invalid request: {exc.errors()}", kind="invalid_request"))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _json_error(ApiError(500, f"internal error: {type(exc).__name__}", kind="internal"))

    # -- service ------------------------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        states = await ingress.health()
        ready = all(state in ("ok", "busy") for state in states.values())
        return JSONResponse({"status": "ok" if ready else "unavailable", "models": states}, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = ingress.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelInfo(id=name, created=started_at) for name in ingress.models])

    @app.get("/v1/tasks")
    async def tasks() -> list[TaskInfo]:
        backend = ingress.config.default_model.structured_output_backend
        out = []
        for name in builtin_task_names():
            task = await ingress.task(("builtin", name, backend), lambda n=name: get_builtin_task(n, backend=backend))
            out.append(
                TaskInfo(**task.model_dump(include={"name", "version", "description", "instructions", "json_schema"}))
            )
        return out

    # -- native extraction --------------------------------------------------------------------

    @app.post("/v1/extract")
    async def extract(request: Request) -> ExtractResponse:
        deadline = _deadline(request, limits.request_timeout_s)
        media_type = _media_type(request)
        if media_type == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=16)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(
                    400, 'multipart requests need the document as a file part named "file"', kind="invalid_request"
                )
            options = parse_options({k: v for k, v in form.items() if k != "file"})
            served = served_for(request, options.model)
            content = await upload.read()
            name, content_type = document_name(upload.filename, "upload"), upload.content_type
        elif media_type in ("application/json", ""):
            body = await _json_body(request, ExtractRequest)
            options = body
            served = served_for(request, options.model)
            name, content_type = document_name(body.filename, "document"), body.media_type
            content = await deadline.run(ingress.content(served, body.document, name=name, allow_bare_base64=True))
        else:
            raise ApiError(
                415,
                f"send the document as multipart/form-data or application/json, not {media_type!r}",
                kind="unsupported_media_type",
            )
        assert isinstance(options, ExtractOptions)
        task = await deadline.run(
            ingress.extraction_task(
                served, task=options.task, json_schema=options.json_schema, instructions=options.instructions
            )
        )
        document, preprocess_s = await deadline.run(
            ingress.load_document(served, content, name=name, media_type=content_type, pages=options.pages)
        )
        call = ExtractCall(
            document=document,
            task=task,
            mode=options.mode,
            sampling=ingress.sampling(served, options.sampling_overrides()),
            preprocess_s=preprocess_s,
        )
        results = await ingress.call(served, "extract", call, deadline)
        ingress.metrics.observe_results(served.model_name, results)
        return ExtractResponse(model=served.model_name, task=task.name, task_version=task.version, results=results)

    # -- OpenAI chat completions --------------------------------------------------------------

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> ChatCompletionResponse | StreamingResponse:
        deadline = _deadline(request, limits.request_timeout_s)
        body: ChatCompletionRequest = await _json_body(request, ChatCompletionRequest)
        served = served_for(request, body.model)
        backend = served.structured_output_backend
        fmt = body.response_format
        key = ("response_format", fmt.model_dump_json(by_alias=True) if fmt else None, backend)
        task = await deadline.run(ingress.task(key, lambda: response_task(fmt, backend)))
        messages, refs = chat_messages(body.messages)
        call = await ingress.chat_call(served, task, messages, refs, body.sampling_overrides(), deadline)
        cid, created = completion_id()
        if not body.stream:
            generation, outcome = await ingress.generate(served, call, task, deadline)
            return ChatCompletionResponse(
                id=cid,
                created=created,
                model=served.model_name,
                choices=[
                    Choice(
                        message=AssistantMessage(content=answer_content(generation.text, outcome.data, outcome.valid)),
                        finish_reason=generation.finish_reason,
                    )
                ],
                usage=UsageOut.of(generation.usage),
            )
        deltas = await ingress.stream(served, call, deadline)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def events() -> AsyncIterator[str]:
            def chunk(delta: Delta, finish_reason: str | None = None) -> str:
                return _sse(
                    ChatCompletionChunk(
                        id=cid,
                        created=created,
                        model=served.model_name,
                        choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
                    )
                )

            strict = StrictJsonStream()
            text: list[str] = []
            last: StreamDelta | None = None
            yield chunk(Delta(role="assistant", content=""))
            try:
                async for delta in deltas:
                    last = delta
                    text.append(delta.text)
                    content = strict.feed(delta.text)
                    if content:
                        yield chunk(Delta(content=content))
            except ApiError as exc:
                yield _sse(error_body(exc.status, exc.message, exc.kind))
                yield "data: [DONE]\n\n"
                return
            finish_reason = last.finish_reason if last else None
            yield chunk(Delta(), finish_reason or "stop")
            if last is not None and last.usage is not None:
                outcome = validate_output("".join(text), task, finish_reason)
                ingress.metrics.observe_output(served.model_name, outcome.valid, last.usage)
                if include_usage:
                    yield _sse(
                        ChatCompletionChunk(
                            id=cid, created=created, model=served.model_name, choices=[], usage=UsageOut.of(last.usage)
                        )
                    )
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    # -- TGI ----------------------------------------------------------------------------------

    @app.post("/generate")
    async def generate(request: Request) -> TgiResponse:
        deadline = _deadline(request, limits.request_timeout_s)
        body: TgiRequest = await _json_body(request, TgiRequest)
        if body.stream:
            raise ApiError(400, "streaming is served by /v1/chat/completions (stream: true)", kind="invalid_request")
        served = served_for(request, body.model)
        schema = body.grammar_schema()
        backend = served.structured_output_backend
        key = ("grammar", json.dumps(schema, sort_keys=True), backend)
        task = await deadline.run(
            ingress.task(key, lambda: task_from_schema(schema, name=task_name(schema), backend=backend))
        )
        messages, refs = tgi_messages(body.inputs)
        call = await ingress.chat_call(served, task, messages, refs, body.parameters.sampling_overrides(), deadline)
        generation, outcome = await ingress.generate(served, call, task, deadline)
        details = None
        if body.parameters.details:
            details = TgiDetails(
                finish_reason=tgi_finish_reason(generation.finish_reason),
                generated_tokens=generation.usage.completion_tokens,
                prompt_tokens=generation.usage.prompt_tokens,
                seed=body.parameters.seed,
            )
        return TgiResponse(generated_text=answer_content(generation.text, outcome.data, outcome.valid), details=details)

    app.add_middleware(ServiceMiddleware, ingress=ingress)
    return app
