"""``GET /playground``: a page to try the service in a browser, served from the package.

Three static files (``serve/playground/``: HTML, JavaScript, CSS; no build step, no CDN)
that call the same public routes any client uses: ``/v1/models``, ``/v1/tasks``,
``/v1/schema/check`` and ``/v1/extract``. The files hold no data, so they load without
the API key (:data:`serve.middleware.OPEN_ROUTES`); every call the page makes sends the
key the user types, which stays in the page's memory (never stored, never put in the
copied commands). ``limits.playground: false`` turns the page off (404).

The Content-Security-Policy allows this origin only: the page cannot reach another host,
so it works on a service without internet and cannot leak a document or a key.
"""

from __future__ import annotations

import pathlib

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serve.errors import ApiError
from serve.protocols.common import ingress_of

__all__ = ["PLAYGROUND_ROUTES", "router"]

_FILES = pathlib.Path(__file__).resolve().parent.parent / "playground"
_ASSETS = {
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
PLAYGROUND_ROUTES = ("/playground", *(f"/playground/{name}" for name in _ASSETS))
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter()


def _serve(request: Request, name: str, media_type: str) -> Response:
    if not ingress_of(request).config.limits.playground:
        raise ApiError(404, "the playground is turned off (limits.playground)", kind="not_found")
    return Response((_FILES / name).read_bytes(), media_type=media_type, headers=_HEADERS)


@router.get("/playground", include_in_schema=False)
async def page(request: Request) -> Response:
    return _serve(request, "index.html", "text/html; charset=utf-8")


@router.get("/playground/{name}", include_in_schema=False)
async def asset(request: Request, name: str) -> Response:
    if name not in _ASSETS:
        raise ApiError(404, f"no playground file {name!r}", kind="not_found")
    return _serve(request, name, _ASSETS[name])
