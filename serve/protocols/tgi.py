"""``POST /generate``: Text Generation Inference's route (models in :mod:`.tgi_models`).

``inputs`` (text with markdown images) and ``parameters.grammar`` become one
:class:`~docextract.requests.ExtractionRequest`; the engine's result becomes
``{"generated_text", "details"}``.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request

from serve.errors import ApiError
from serve.protocols.common import ingress_of, json_body, request_deadline, served_for, task_name
from serve.protocols.openai_models import answer_content
from serve.protocols.tgi_models import TgiDetails, TgiRequest, TgiResponse, tgi_finish_reason, tgi_messages

__all__ = ["router"]

router = APIRouter()


@router.post("/generate")
async def generate(request: Request) -> TgiResponse:
    from docextract.tasks import task_from_schema

    ingress = ingress_of(request)
    deadline = request_deadline(request)
    body: TgiRequest = await json_body(request, TgiRequest)
    if body.stream:
        raise ApiError(400, "streaming is served by /v1/chat/completions (stream: true)", kind="invalid_request")
    served = served_for(request, body.model)
    schema = body.grammar_schema()
    backend = served.structured_output_backend
    key = ("grammar", json.dumps(schema, sort_keys=True), backend)
    task = await deadline.run(ingress.task(key, lambda: task_from_schema(schema, name=task_name(schema), backend=backend)))
    messages, refs = tgi_messages(body.inputs)
    extraction = await ingress.chat_request(
        served, task, messages, refs, body.parameters.sampling_overrides(), deadline, source="generate"
    )
    result = await ingress.run(served, extraction, deadline)
    details = None
    if body.parameters.details:
        details = TgiDetails(
            finish_reason=tgi_finish_reason(result.finish_reason),
            generated_tokens=result.usage.completion_tokens,
            prompt_tokens=result.usage.prompt_tokens,
            seed=body.parameters.seed,
        )
    return TgiResponse(generated_text=answer_content(result.raw_text, result.data, result.valid), details=details)
