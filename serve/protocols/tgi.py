"""Text Generation Inference's routes (models in :mod:`.tgi_models`), as TGI serves them.

``POST /generate`` answers ``{"generated_text", "details"}``; ``POST /generate_stream``
answers server-sent events, one per token (``{"index", "token": {"id", "text", "logprob",
"special"}}``), the last one with the whole ``generated_text`` (and ``details`` when asked);
``POST /`` is TGI's compatibility route, either of the two according to ``stream`` (a
non-streamed answer is a one-element list, as TGI sends). ``inputs`` (text with markdown
images) and ``parameters.grammar`` become one :class:`~docextract.requests.ExtractionRequest`;
without a grammar the model writes free text. ``GET /info`` describes the default model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

import docextract
from serve.errors import ApiError, error_body
from serve.protocols.common import (
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
from serve.protocols.tgi_models import (
    TgiDetails,
    TgiInfo,
    TgiRequest,
    TgiResponse,
    TgiStreamDetails,
    TgiStreamEvent,
    TgiToken,
    tgi_finish_reason,
    tgi_messages,
)

__all__ = ["router"]

router = APIRouter()


@router.post("/", response_model=None)
async def compat(request: Request) -> JSONResponse | StreamingResponse:
    return await _answer(request, listed=True)


@router.post("/generate", response_model=None)
async def generate(request: Request) -> JSONResponse | StreamingResponse:
    return await _answer(request, listed=False)


async def _answer(request: Request, *, listed: bool) -> JSONResponse | StreamingResponse:
    """One request of ``/`` (a JSON list of one answer: ``listed``) or ``/generate``; SSE when
    the body asks ``stream``."""
    body: TgiRequest = await json_body(request, TgiRequest)
    if body.stream:
        return await _stream(request, body)
    response = await _generate(request, body)
    return JSONResponse([response.body_json] if listed else response.body_json, headers=response.headers)


@router.post("/generate_stream")
async def generate_stream(request: Request) -> StreamingResponse:
    return await _stream(request, await json_body(request, TgiRequest))


@router.get("/info")
async def info(request: Request) -> TgiInfo:
    served = ingress_of(request).config.default_model
    max_total = served.max_model_len
    return TgiInfo(
        model_id=served.model_name,
        model_dtype=served.dtype,
        model_device_type="cuda" if served.placement.accelerator == "gpu" else served.placement.accelerator,
        max_concurrent_requests=served.deployment.max_ongoing_requests,
        max_input_tokens=max_total - 1 if max_total else None,
        max_total_tokens=max_total,
        version=docextract.__version__,
    )


class _Answer:
    def __init__(self, body: TgiResponse, headers: dict[str, str]) -> None:
        self.body_json = with_docextract(body, body.docextract)
        self.headers = headers


async def _prepare(request: Request, body: TgiRequest, *, logprobs: bool) -> tuple[Any, Any, Any, Any]:
    ingress = ingress_of(request)
    deadline = request_deadline(request)
    served = served_for(request, body.model)
    task = await schema_task(
        request, served, body.grammar_schema(), deadline, what="parameters.grammar", kind="grammar_required"
    )
    messages, refs = tgi_messages(body.inputs)
    extraction = await ingress.chat_request(
        served, task, messages, refs, body.parameters.sampling_overrides(), deadline, source="generate"
    )
    return served, task, deadline, extraction.model_copy(update={"logprobs": logprobs})


def _text(body: TgiRequest, result: Any, constrained: bool) -> str:
    text = answer_text(result, constrained)
    return body.inputs + text if body.parameters.return_full_text else text


def _token(info: Any) -> TgiToken:
    return TgiToken(id=info.id, text=info.text, logprob=info.logprob if info.logprob is not None else 0.0)


async def _generate(request: Request, body: TgiRequest) -> _Answer:
    served, task, deadline, extraction = await _prepare(request, body, logprobs=body.parameters.details)
    result = await ingress_of(request).run(served, extraction, deadline)
    details = None
    if body.parameters.details:
        details = TgiDetails(
            finish_reason=tgi_finish_reason(result.finish_reason),
            generated_tokens=result.usage.completion_tokens,
            prompt_tokens=result.usage.prompt_tokens,
            seed=body.parameters.seed,
            tokens=[_token(t) for t in result.tokens or []],
        )
    extra = docextract_info(result, served, task is not None)
    headers = extra.headers()
    return _Answer(
        TgiResponse(generated_text=_text(body, result, task is not None), details=details, docextract=extra), headers
    )


async def _stream(request: Request, body: TgiRequest) -> StreamingResponse:
    served, task, deadline, extraction = await _prepare(request, body, logprobs=True)
    deltas = await ingress_of(request).run_stream(served, extraction, deadline)

    async def events() -> AsyncIterator[str]:
        # Each event is held back one step: the last token's event also carries the whole text.
        held: TgiStreamEvent | None = None
        index = 0
        try:
            async for delta in deltas:
                if delta.result is not None:
                    result = delta.result
                    last = held or TgiStreamEvent(index=index, token=TgiToken(id=0, text="", logprob=0.0, special=True))
                    last.generated_text = _text(body, result, task is not None)
                    if body.parameters.details:
                        last.details = TgiStreamDetails(
                            finish_reason=tgi_finish_reason(result.finish_reason),
                            generated_tokens=result.usage.completion_tokens,
                            input_length=result.usage.prompt_tokens,
                            seed=body.parameters.seed,
                        )
                    last.docextract = docextract_info(result, served, task is not None).model_dump()
                    yield sse(last.model_dump(mode="json"))
                    return
                for n, info in enumerate(delta.tokens):
                    if held is not None:
                        yield sse(held.model_dump(mode="json"))
                    # The step's text goes with its last token, so the tokens' texts add up to it.
                    text = delta.text if n == len(delta.tokens) - 1 else ""
                    index += 1
                    held = TgiStreamEvent(index=index, token=_token(info).model_copy(update={"text": text}))
        except ApiError as exc:
            yield sse(error_body(exc.status, exc.message, exc.kind) | {"error_type": exc.kind})

    return event_stream(events())
