"""The HTTP app: a FastAPI app built per ingress replica by :func:`create_app`.

Routes (all but ``/healthz`` and the playground's static files need ``Authorization: Bearer <key>``
when a key is set), one router per protocol (:mod:`serve.protocols`):

=============================  ================================================================
``POST /v1/extract``           native extraction (:mod:`serve.protocols.native`)
``POST /v1/chat/completions``  OpenAI-compatible, ``stream`` as server-sent events (:mod:`serve.protocols.openai`)
``POST /v1/completions``       OpenAI legacy completions (:mod:`serve.protocols.completions`)
``POST /generate``             TGI: also ``/generate_stream``, ``POST /`` and ``GET /info`` (:mod:`serve.protocols.tgi`)
``GET /v1/models``             served models (OpenAI's shape; :mod:`serve.protocols.service`)
``GET /v1/tasks``              built-in tasks with their schemas
``POST /v1/schema/check``      a schema's coverage report (:mod:`serve.protocols.schema`)
``GET /healthz``               200 when every model's engine answers, else 503
``GET /metrics``               Prometheus text (:mod:`serve.metrics`)
``GET /playground``            a page to try the API in a browser (:mod:`serve.protocols.playground`)
=============================  ================================================================

Bodies are read and validated by the routers rather than by FastAPI's parameter
binding, so that every failure (size, type, JSON, fields) is answered in the
one error shape of :mod:`serve.errors`, and so the size limit applies while the body
is read (:class:`serve.middleware.ServiceMiddleware`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from docextract.errors import DocExtractError
from serve.errors import ApiError, from_docextract
from serve.middleware import ServiceMiddleware, json_error
from serve.protocols import completions, native, openai, playground, schema, service, tgi

if TYPE_CHECKING:
    from serve.ingress import Ingress

__all__ = ["create_app"]


def create_app(ingress: Ingress) -> FastAPI:
    """The service's FastAPI app over ``ingress`` (which the routers find in ``app.state``)."""
    app = FastAPI(
        title="docextract",
        description="Schema-guaranteed JSON from images and PDFs (vLLM constrained decoding on Ray Serve).",
        version="0.1.0",
    )
    app.state.ingress = ingress

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return json_error(exc)

    @app.exception_handler(DocExtractError)
    async def _docextract_error(_: Request, exc: DocExtractError) -> JSONResponse:
        return json_error(from_docextract(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_error(ApiError(exc.status_code, str(exc.detail), kind=kind, headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return json_error(ApiError(400, f"invalid request: {exc.errors()}", kind="invalid_request"))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return json_error(ApiError(500, f"internal error: {type(exc).__name__}", kind="internal"))

    for protocol in (service, native, openai, completions, tgi, schema, playground):
        app.include_router(protocol.router)
    app.add_middleware(ServiceMiddleware, ingress=ingress)
    return app
