"""``POST /v1/completions``: OpenAI's legacy completions (models in :mod:`.completions_models`),
which ``@huggingface/inference``'s ``textGeneration``/``textGenerationStream`` and TGI's own
OpenAI layer use. The prompt and schema become one :class:`~docextract.requests.ExtractionRequest`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from serve.errors import ApiError, error_body
from serve.protocols.common import (
    VALID_HEADER,
    answer_text,
    docextract_info,
    event_stream,
    ingress_of,
    json_body,
    request_deadline,
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
from serve.protocols.openai_models import StrictJsonStream, UsageOut, response_task
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
        grammar = body.grammar.model_dump()
        schema = grammar["value"] if grammar["type"] in ("json", "json_object") else None
        if schema is None or not isinstance(schema, dict):
            raise ApiError(400, 'grammar must be {"type": "json", "value": <JSON Schema>}', kind="unsupported_grammar")
        task = await schema_task(request, served, schema, deadline, what="response_format or grammar")
    elif body.response_format is not None and body.response_format.type != "text":
        fmt, backend = body.response_format, served.structured_output_backend
        key = ("response_format", fmt.model_dump_json(by_alias=True), backend)
        task = await deadline.run(ingress.task(key, lambda: response_task(fmt, backend, require_schema=True)))
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
        headers = {VALID_HEADER: str(extra.valid).lower()} if extra.valid is not None else {}
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
