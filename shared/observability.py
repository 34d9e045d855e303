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
import json
import logging
import secrets
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

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


#: access records carry their JSON fields ready-made here (the formatter's fast path)
_FIELDS = "hmr_fields"


class AccessLogger(AbstractAccessLogger):
    """One structured record per request: method, path, status, duration and request id.

    Cheap on purpose (it runs on the event loop once per request): the record is made without
    `Logger.info`'s caller lookup, its message is formatted once here, and it carries its JSON
    fields ready-made, so the JSON formatter does not scan the record for extras."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status < 400 and request.get(quiet_key, False):
            return
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        # the path as sent (percent-encoded): a decoded one could carry line breaks into the log
        method, path, status = request.method, request.raw_path, response.status
        request_id = response.headers.get("X-Request-Id")
        fields = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(time * 1000, 3),
            "request_id": request_id,
            "remote": request.remote,
        }
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            "",
            0,
            f"{method} {path} {status}",
            (),
            None,
            extra={**fields, _FIELDS: fields},
        )
        logger.handle(record)


class _JsonLines(logging.Formatter):
    """python-json-logger's JSON lines; access records (which carry their fields) take a fast
    path with the same keys, values and order, a third of the cost."""

    def __init__(self) -> None:
        super().__init__()
        from pythonjsonlogger.json import JsonFormatter

        self._full = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
        self._second = -1
        self._stamp = ""

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._stamp = self._full.formatTime(record).rsplit(",", 1)[0]
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, _FIELDS, None)
        if fields is None or record.exc_info or record.stack_info:
            return self._full.format(record)
        line = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": fields["request_id"],
        }
        line.update(fields)
        return json.dumps(line)  # str, int, float and None only: the encoder's fast path


class BufferedLineHandler(logging.StreamHandler[TextIO]):
    """Lines written in batches, not one `write` per line: a batch goes out when it reaches
    `max_bytes`, when a record of `flush_level` or worse arrives (a warning is never held back),
    and at the latest `max_delay` seconds after its first line (a daemon thread checks)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        max_bytes: int = 64 * 1024,
        max_delay: float = 0.5,
        flush_level: int = logging.WARNING,
    ) -> None:
        super().__init__(stream)
        self.max_bytes, self.max_delay, self.flush_level = max_bytes, max_delay, flush_level
        self._lines: list[str] = []
        self._size = 0
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="log-flush", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's contract: a bad record is reported, not raised
            self.handleError(record)
            return
        self._lines.append(line)
        self._size += len(line) + 1
        if record.levelno >= self.flush_level or self._size >= self.max_bytes:
            self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            lines, self._lines, self._size = self._lines, [], 0
            try:
                if lines:
                    self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the stream is gone (closed at exit): drop the lines
                pass
        finally:
            self.release()

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.max_delay):
            if self._lines:
                self.flush()

    def close(self) -> None:
        self._closed.set()
        self.flush()
        super().close()


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Log to stderr as JSON lines (default) or plain text, each record with its request id.

    Lines are written in batches (BufferedLineHandler): at most half a second late, a warning or
    worse at once; `logging.shutdown` (at exit) writes what is left."""
    handler = BufferedLineHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(_JsonLines())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    server = logging.getLogger("aiohttp.server")
    if _MALFORMED not in server.filters:
        server.addFilter(_MALFORMED)
    # no line shows the thread or process: do not look them up for every record (the logging
    # HOWTO's "Optimization"; a fifth of the cost of making an access record)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, BufferedLineHandler):  # ours from an earlier call: stop its flusher
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
