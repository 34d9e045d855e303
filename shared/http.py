"""HTTP glue every service installs: the error envelope and CORS, each in one middleware."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import cattrs
from aiohttp import web

from .errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    Unauthorized,
    Unavailable,
    validation_items,
)

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: headers a handler wants on its response even when it ends in an error (e.g. X-Snapshot-Id)
response_headers_key = web.RequestKey("response_headers_key", dict[str, str])
cors_origins_key = web.AppKey("cors_origins_key", frozenset[str])

_STATUS: dict[type[ServiceError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    BadGateway: 502,
    Unavailable: 503,
}


def json_error(status: int, detail: object, headers: dict[str, str] | None = None) -> web.Response:
    # ASCII escapes keep undecodable path bytes (lone surrogates) representable
    body = json.dumps({"detail": detail})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def status_of(exc: ServiceError) -> int:
    """The HTTP status of a domain error (the one table of them)."""
    return next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)


#: what the HTTP parser accepts before our code sees a request; longer URLs are refused below
#: with a 414 in the error envelope instead of the parser's plain-text 400
SERVER_HANDLER_ARGS: dict[str, Any] = {"max_line_size": 65536, "max_field_size": 65536}
MAX_URL_LENGTH = 8192


def _error_response(request: web.Request, exc: Exception) -> web.Response:
    # headers the handler set before it failed (e.g. X-Snapshot-Id), so read only now
    extra = request.get(response_headers_key, {})
    if isinstance(exc, ServiceError):
        return json_error(status_of(exc), exc.detail, {**extra, **exc.headers})
    if isinstance(exc, cattrs.BaseValidationError):
        return json_error(422, validation_items(exc, ["body"]), extra)
    if isinstance(exc, json.JSONDecodeError):
        return json_error(400, "Request body is not valid JSON", extra)
    logger.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "Internal Server Error", extra)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors and aiohttp's own errors to `{"detail": ...}`; never leak a traceback."""
    if len(request.raw_path) > MAX_URL_LENGTH:
        return json_error(414, "URI Too Long")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        kept = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        return json_error(exc.status, exc.reason, {**request.get(response_headers_key, {}), **kept})
    except Exception as exc:  # noqa: BLE001 -- the one place every failure becomes an envelope
        return _error_response(request, exc)


def _preflight(request: web.Request, origin: str) -> web.Response:
    asked = request.headers.get("Access-Control-Request-Headers", "")
    return web.Response(
        status=200,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": asked or "apikey, content-type, if-none-match",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Echo allow-listed origins; other origins get no CORS headers at all."""
    origin = request.headers.get("Origin")
    allowed = request.config_dict[cors_origins_key]
    if origin is None or origin not in allowed:
        return await handler(request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return _preflight(request, origin)
    response = await handler(request)
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers.add("Vary", "Origin")
    return response


def setup_http(app: web.Application, cors_origins: Sequence[str]) -> None:
    """Install CORS and the error envelope once per application, outermost first."""
    if cors_origins_key in app:
        return
    app[cors_origins_key] = frozenset(cors_origins)
    app.middlewares.insert(0, error_middleware)
    app.middlewares.insert(0, cors_middleware)


API_ROOT = "/api/model_references"


class ApiRoutes(web.RouteTableDef):
    """A route table whose routes live under /api/model_references/<version>: one handler
    registered for several API versions at once (`versions=("v2", "v1")`) is the one way twin
    routes are declared."""

    def api(
        self, method: str, path: str, *, versions: Sequence[str] = ("v2",), **kwargs: Any
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for version in versions:
                self.route(method, f"{API_ROOT}/{version}{path}", **kwargs)(handler)
            return handler

        return register
