"""``POST /v1/chat/completions``: OpenAI's chat completions (models in :mod:`.openai_models`).

The request's messages, images and ``response_format`` become one
:class:`~docextract.requests.ExtractionRequest` (the client's messages, its images, the
task of its schema); the engine's :class:`~docextract.results.ExtractionResult` becomes
a ``chat.completion``, or, streamed, ``chat.completion.chunk`` events of the raw text
made strict JSON (:class:`~serve.protocols.openai_models.StrictJsonStream`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from serve.errors import ApiError, error_body
from serve.protocols.common import (
    answer_text,
    docextract_info,
    event_stream,
    ingress_of,
    json_body,
    request_deadline,
    response_format_task,
    served_for,
    sse,
)
from serve.protocols.openai_models import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    Delta,
    StrictJsonStream,
    UsageOut,
    chat_messages,
    completion_id,
    openai_logprobs,
)

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
    ingress = ingress_of(request)
    deadline = request_deadline(request)
    body: ChatCompletionRequest = await json_body(request, ChatCompletionRequest)
    served = served_for(request, body.model)
    task = await response_format_task(request, served, body.response_format, deadline)
    messages, refs = chat_messages(body.messages)
    cid, created = completion_id()
    extraction = await ingress.chat_request(
        served, task, messages, refs, body.sampling_overrides(), deadline, source="chat", request_id=cid
    )
    if body.logprobs:
        extraction = extraction.model_copy(update={"logprobs": True, "top_logprobs": body.top_logprobs or 0})
    constrained = task is not None
    if not body.stream:
        result = await ingress.run(served, extraction, deadline)
        content = answer_text(result, constrained)
        extra = docextract_info(result, served, constrained)
        answer = ChatCompletionResponse(
            id=cid,
            created=created,
            model=served.model_name,
            choices=[
                Choice(
                    message=AssistantMessage(content=content),
                    finish_reason=result.finish_reason,
                    logprobs=openai_logprobs(result.tokens) if body.logprobs else None,
                )
            ],
            usage=UsageOut.of(result.usage),
            docextract=extra,
        )
        headers = extra.headers()
        return JSONResponse(answer.model_dump(mode="json"), headers=headers)
    deltas = await ingress.run_stream(served, extraction, deadline)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: Delta, finish_reason: str | None = None, tokens: list | None = None) -> str:
        logprobs = openai_logprobs(tokens) if body.logprobs and tokens is not None else None
        return sse(
            ChatCompletionChunk(
                id=cid,
                created=created,
                model=served.model_name,
                choices=[ChunkChoice(delta=delta, finish_reason=finish_reason, logprobs=logprobs)],
            )
        )

    async def events() -> AsyncIterator[str]:
        strict = StrictJsonStream() if constrained else None
        result = None
        yield chunk(Delta(role="assistant", content=""))
        try:
            async for delta in deltas:
                content = strict.feed(delta.text) if strict is not None else delta.text
                if content or (body.logprobs and delta.tokens):
                    yield chunk(Delta(content=content), tokens=delta.tokens)
                result = delta.result or result
        except ApiError as exc:
            yield sse(error_body(exc.status, exc.message, exc.kind))
            yield "data: [DONE]\n\n"
            return
        finish_reason = result.finish_reason if result else None
        last = ChatCompletionChunk(
            id=cid,
            created=created,
            model=served.model_name,
            choices=[ChunkChoice(delta=Delta(), finish_reason=finish_reason or "stop")],
            docextract=docextract_info(result, served, constrained) if result is not None else None,
        )
        yield sse(last)
        if result is not None and include_usage:
            yield sse(
                ChatCompletionChunk(
                    id=cid, created=created, model=served.model_name, choices=[], usage=UsageOut.of(result.usage)
                )
            )
        yield "data: [DONE]\n\n"

    return event_stream(events())
