"""The service's own routes: health, metrics, the served models and the built-in tasks."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serve.protocols.common import ingress_of
from serve.protocols.native_models import ModelInfo, ModelList, TaskInfo

__all__ = ["router"]

router = APIRouter()
_STARTED_AT = int(time.time())


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    states = await ingress_of(request).health()
    ready = all(state in ("ok", "busy") for state in states.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", "models": states}, 200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body, content_type = ingress_of(request).metrics.render()
    return Response(body, media_type=content_type)


@router.get("/v1/models")
async def models(request: Request) -> ModelList:
    return ModelList(data=[ModelInfo(id=name, created=_STARTED_AT) for name in ingress_of(request).models])


@router.get("/v1/tasks")
async def tasks(request: Request) -> list[TaskInfo]:
    from docextract.tasks import builtin_task_names

    ingress = ingress_of(request)
    served = ingress.config.default_model
    out = []
    for name in builtin_task_names():
        task = await ingress.extraction_task(served, task=name, json_schema=None, instructions=None)
        out.append(
            TaskInfo(**task.model_dump(include={"name", "version", "description", "instructions", "json_schema"}))
        )
    return out
