"""Operability every service shares: request ids, JSON logs, Prometheus metrics, live/ready probes.

- `X-Request-Id`: taken from the request (nginx sets it) or made here, echoed on the response and
  attached to every log record written while the request runs.
- Logs: one JSON object per line (python-json-logger), or plain text for a terminal.
- Metrics: `GET /metrics` (outside /api, so nginx never publishes it) in the Prometheus text
  format: request counts and latencies by route, plus whatever each service registers.
- Probes: `GET /livez` answers while the process runs; `GET /readyz` answers 200 only when every
  readiness check a service registered passes (a snapshot is loaded, the store is open, ...).
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

from .openapi import docs

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

ReadyCheck = Callable[[web.Application], tuple[bool, str]]
Refresh = Callable[[web.Application], Awaitable[None]]


class Observability:
    """The app's registry, its request metrics, and the readiness checks and scrape hooks."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "hmr_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hmr_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.ready_checks: dict[str, ReadyCheck] = {}
        self.scrape_hooks: list[Refresh] = []


observability_key = web.AppKey("observability_key", Observability)
#: set by a handler whose successful answers are routine polling, not worth an access log line
quiet_key = web.RequestKey("quiet_key", bool)


def observability_of(app: web.Application) -> Observability:
    return app[observability_key]


def _route_of(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"  # never the raw path: labels must stay few
    return info.route.resource.canonical


@web.middleware
async def observability_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else secrets.token_hex(8)
    token = request_id_var.set(rid)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        obs = request.config_dict[observability_key]
        route = _route_of(request)
        obs.requests.labels(route, request.method, str(status)).inc()
        obs.latency.labels(route).observe(time.perf_counter() - start)
        request_id_var.reset(token)


_PROBE = {"type": "object", "additionalProperties": True}
_TAGS = ("operations",)


@docs(
    "Prometheus metrics (not published by nginx)",
    tags=_TAGS,
    responses={
        200: {
            "description": "Prometheus text format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def get_metrics(request: web.Request) -> web.Response:
    obs = request.config_dict[observability_key]
    for hook in obs.scrape_hooks:
        await hook(request.app)
    return web.Response(
        body=generate_latest(obs.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


@docs("Liveness: the process answers", tags=_TAGS, answer=_PROBE, answer_description="Alive.")
async def get_livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


@docs(
    "Readiness: snapshot loaded, store open",
    tags=_TAGS,
    answer=_PROBE,
    answer_description="Ready.",
    responses={
        503: {"description": "Not ready.", "content": {"application/json": {"schema": _PROBE}}}
    },
)
async def get_readyz(request: web.Request) -> web.Response:
    obs = request.config_dict[observability_key]
    checks = {name: check(request.app) for name, check in obs.ready_checks.items()}
    ready = all(ok for ok, _ in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
    }
    return web.json_response(body, status=200 if ready else 503)


def setup_observability(app: web.Application) -> Observability:
    """Install request ids, metrics and probes once per application; return its Observability."""
    if observability_key in app:
        return app[observability_key]
    disable_created_metrics()  # the *_created series only double the scrape size
    obs = Observability()
    app[observability_key] = obs
    app.middlewares.insert(0, observability_middleware)  # outermost: it times and tags everything
    app.router.add_get("/metrics", get_metrics, allow_head=False)
    app.router.add_get("/livez", get_livez, allow_head=False)
    app.router.add_get("/readyz", get_readyz, allow_head=False)
    return obs


# --- logging --------------------------------------------------------------------------------------


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:  # the access log passes its own
            record.request_id = request_id_var.get()
        return True


class _MalformedRequestFilter(logging.Filter):
    """A request aiohttp cannot parse (a NUL in a header, a bad request line) is the client's
    error, already answered 400: one warning line, not an ERROR with a traceback per probe."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and exc.code == 400:
            record.msg = f"{record.getMessage()}: malformed request: {exc.message}"
            record.args = ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


_MALFORMED = _MalformedRequestFilter()


class AccessLogger(AbstractAccessLogger):
    """One structured record per request: method, path, status, duration and request id."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status < 400 and request.get(quiet_key, False):
            return
        # the path as sent (percent-encoded): a decoded one could carry line breaks into the log
        self.logger.info(
            "%s %s %s",
            request.method,
            request.raw_path,
            response.status,
            extra={
                "method": request.method,
                "path": request.raw_path,
                "status": response.status,
                "duration_ms": round(time * 1000, 3),
                "request_id": response.headers.get("X-Request-Id"),
                "remote": request.remote,
            },
        )


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Log to stderr as JSON lines (default) or plain text, each record with its request id."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    server = logging.getLogger("aiohttp.server")
    if _MALFORMED not in server.filters:
        server.addFilter(_MALFORMED)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
