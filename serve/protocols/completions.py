"""``POST /v1/completions``: OpenAI's legacy completions (models in :mod:`.completions_models`),
which ``@huggingface/inference``'s ``textGeneration``/``textGenerationStream`` and TGI's own
OpenAI layer use. The prompt and schema become one :class:`~docextract.requests.ExtractionRequest`."""

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
    schema_task,
    served_for,
    sse,
    with_docextract,
)
from serve.protocols.completions_models import (
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    CompletionResponse,
    completion_id,
)
from serve.protocols.openai_models import StrictJsonStream, UsageOut
from serve.protocols.tgi_models import TgiToken, tgi_messages

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/completions", response_model=None)
async def completions(request: Request) -> JSONResponse | StreamingResponse:
    ingress = ingress_of(request)
    deadline = request_deadline(request)
    body: CompletionRequest = await json_body(request, CompletionRequest)
    served = served_for(request, body.served_name)
    if body.grammar is not None:
        schema = body.grammar.json_schema("grammar")
        task = await schema_task(request, served, schema, deadline, what="response_format or grammar")
    elif body.response_format is not None and body.response_format.type != "text":
        task = await response_format_task(request, served, body.response_format, deadline)
    else:
        task = await schema_task(request, served, None, deadline, what="response_format or grammar")
    messages, refs = tgi_messages(body.text)
    cid, created = completion_id()
    extraction = await ingress.chat_request(
        served, task, messages, refs, body.sampling_overrides(), deadline, source="completion", request_id=cid
    )
    constrained = task is not None
    if not body.stream:
        result = await ingress.run(served, extraction, deadline)
        text = answer_text(result, constrained)
        extra = docextract_info(result, served, constrained)
        answer = CompletionResponse(
            id=cid,
            created=created,
            model=served.model_name,
            choices=[CompletionChoice(text=text, finish_reason=result.finish_reason)],
            usage=UsageOut.of(result.usage),
            docextract=extra,
        )
        headers = extra.headers()
        return JSONResponse(with_docextract(answer, extra), headers=headers)
    deltas = await ingress.run_stream(served, extraction, deadline)

    async def events() -> AsyncIterator[str]:
        strict = StrictJsonStream() if constrained else None
        try:
            async for delta in deltas:
                if delta.result is not None:
                    result = delta.result
                    text = answer_text(result, constrained)
                    last = CompletionChunk(
                        id=cid,
                        created=created,
                        model=served.model_name,
                        choices=[CompletionChoice(text="", finish_reason=result.finish_reason or "stop")],
                        usage=UsageOut.of(result.usage),
                        generated_text=text,
                        docextract=docextract_info(result, served, constrained),
                    )
                    yield sse(with_docextract(last, last.docextract))
                    break
                content = strict.feed(delta.text) if strict is not None else delta.text
                token = delta.tokens[-1] if delta.tokens else None
                yield sse(
                    CompletionChunk(
                        id=cid,
                        created=created,
                        model=served.model_name,
                        choices=[CompletionChoice(text=content)],
                        token=TgiToken(id=token.id if token else 0, text=content, logprob=0.0),
                    ).model_dump(mode="json", exclude_none=True)
                )
        except ApiError as exc:
            yield sse(error_body(exc.status, exc.message, exc.kind))
        yield "data: [DONE]\n\n"

    return event_stream(events())
