"""Service-wide ASGI middleware: API key, request size limit and request metrics."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from serve.errors import ApiError, error_body
from serve.protocols.common import MODEL_STATE_KEY
from serve.protocols.playground import PLAYGROUND_ROUTES

if TYPE_CHECKING:
    from serve.ingress import Ingress

__all__ = ["OPEN_ROUTES", "ROUTES", "ServiceMiddleware", "json_error"]

#: Routes as metric labels (anything else is "other", so labels stay bounded).
ROUTES = (
    "/v1/extract",
    "/v1/chat/completions",
    "/v1/completions",
    "/",
    "/generate",
    "/generate_stream",
    "/info",
    "/v1/models",
    "/v1/tasks",
    "/healthz",
    "/metrics",
    *PLAYGROUND_ROUTES,
)
#: The playground's static files hold no data, so they load without a key; the API calls they make need it.
OPEN_ROUTES = ("/healthz", *PLAYGROUND_ROUTES)


def json_error(exc: ApiError) -> JSONResponse:
    """``exc`` in the service's one error shape."""
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
            await json_error(error)(scope, receive, recording_send)
            return
        limit = ingress.config.limits.max_request_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            ingress.metrics.reject("-", "too_large")
            await json_error(_too_large(limit))(scope, receive, recording_send)
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
