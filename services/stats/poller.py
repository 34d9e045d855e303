"""Background polling of AI-Horde: last good data per resource, a circuit breaker, lenient parsing."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from attrs import define, evolve, field, frozen

from .horde_client import HordeClient, HordeUnavailable

logger = logging.getLogger(__name__)

FAILURES_TO_OPEN = 5
COOLDOWN_SECONDS = 120.0
MODEL_TYPES = ("image", "text")


# --- parsed upstream data -------------------------------------------------------------------------


def _number(value: Any) -> float:
    """Upstream sends ints, floats or numeric strings; anything else counts as 0."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.split()[0])
        except (ValueError, IndexError):
            return 0.0
    return 0.0


def _int(value: Any) -> int:
    return int(_number(value))


@frozen
class ModelStatus:
    name: str
    count: int
    jobs: float
    queued: float
    eta: float
    performance: float


@frozen
class Worker:
    id: str
    name: str
    performance: str
    online: bool
    trusted: bool
    uptime: int
    models: frozenset[str]  # lower-cased


def parse_status(payload: Any) -> dict[str, ModelStatus]:
    """`/v2/status/models` -> lower-cased name -> entry; entries without a name are skipped."""
    if not isinstance(payload, list):
        raise ValueError(f"expected a list, got {type(payload).__name__}")
    out: dict[str, ModelStatus] = {}
    for item in payload:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        entry = ModelStatus(
            name=item["name"],
            count=_int(item.get("count")),
            jobs=_number(item.get("jobs")),
            queued=_number(item.get("queued")),
            eta=_number(item.get("eta")),
            performance=_number(item.get("performance")),
        )
        key = entry.name.lower()
        if key not in out or entry.count > out[key].count:
            out[key] = entry
    return out


def parse_usage(payload: Any) -> dict[str, dict[str, int]]:
    """`/v2/stats/*/models` -> period ("day", "month", "total") -> lower-cased name -> count."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected an object, got {type(payload).__name__}")
    out: dict[str, dict[str, int]] = {}
    for period in ("day", "month", "total"):
        counts: dict[str, int] = {}
        section = payload.get(period)
        if isinstance(section, dict):
            for name, value in section.items():
                if isinstance(name, str):
                    counts[name.lower()] = counts.get(name.lower(), 0) + _int(value)
        out[period] = counts
    return out


def parse_workers(payload: Any) -> tuple[Worker, ...]:
    """`/v2/workers` -> workers; only id, name, performance, online, trusted, uptime, models used."""
    if not isinstance(payload, list):
        raise ValueError(f"expected a list, got {type(payload).__name__}")
    workers = []
    for item in payload:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        models = item.get("models")
        if not isinstance(models, list):
            models = []
        workers.append(
            Worker(
                id=item["id"],
                name=str(item.get("name") or ""),
                performance=str(item.get("performance") or ""),
                online=item.get("online") is True,
                trusted=item.get("trusted") is True,
                uptime=_int(item.get("uptime")),
                models=frozenset(m.lower() for m in models if isinstance(m, str)),
            )
        )
    return tuple(workers)


@frozen
class Resource:
    """One polled upstream resource: what to GET and how to parse it."""

    key: str
    path: str
    params: dict[str, str] | None
    parse: Callable[[Any], Any]


RESOURCES: tuple[Resource, ...] = (
    *(
        Resource(f"status_{t}", "status/models", {"type": t, "model_state": "known"}, parse_status)
        for t in MODEL_TYPES
    ),
    Resource("usage_image", "stats/img/models", {"model_state": "known"}, parse_usage),
    Resource("usage_text", "stats/text/models", {"model_state": "known"}, parse_usage),
    *(Resource(f"workers_{t}", "workers", {"type": t}, parse_workers) for t in MODEL_TYPES),
    Resource("heartbeat", "status/heartbeat", None, lambda payload: payload),
)


# --- state ----------------------------------------------------------------------------------------


@frozen
class HordeData:
    """The last good payload of each resource, with when it was fetched; replaced whole."""

    values: dict[str, Any] = field(factory=dict)
    fetched_at: dict[str, float] = field(factory=dict)
    generation: int = 0  # bumps on every successful update: caches key on it

    def get(self, key: str) -> Any:
        return self.values.get(key)

    @property
    def last_success(self) -> float | None:
        return max(self.fetched_at.values(), default=None)


@define
class CircuitBreaker:
    """Opens after 5 consecutive failures for 120 s; then one probe decides."""

    clock: Callable[[], float] = time.monotonic
    consecutive_failures: int = 0
    opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        return self.clock() - self.opened_at >= COOLDOWN_SECONDS

    def record(self, ok: bool) -> None:
        if ok:
            self.consecutive_failures = 0
            self.opened_at = None
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= FAILURES_TO_OPEN:
            self.opened_at = self.clock()  # (re)open: a failed probe restarts the cooldown

    @property
    def degraded(self) -> bool:
        return self.opened_at is not None

    def seconds_until_retry(self) -> float | None:
        if self.opened_at is None:
            return None
        left = COOLDOWN_SECONDS - (self.clock() - self.opened_at)
        return round(left, 1) if left > 0 else None


@define
class Poller:
    """Polls AI-Horde; `degraded` tells whether it is failing or hanging right now.

    The breaker counts a fetch as failed only after its retries, which against a server that
    accepts connections and never answers takes (attempts × timeout + backoff), about 95 s
    with the defaults. A poll still running after one request timeout means some request got
    no answer in time, so it counts as degraded at once.
    """

    client: HordeClient
    interval: float
    breaker: CircuitBreaker = field(factory=CircuitBreaker)
    data: HordeData = field(factory=HordeData)
    clock: Callable[[], float] = time.monotonic
    last_poll_at: float | None = None
    last_error: str | None = None  # the latest failure's reason, until a fetch succeeds
    poll_started: float | None = None  # clock() when the poll in progress began
    # one poll at a time: the loop's first poll may start while the start-up poll still hangs
    _polling: asyncio.Lock = field(factory=asyncio.Lock, init=False)

    def poll_running_for(self) -> float | None:
        """Seconds the poll in progress has run; None between polls."""
        if self.poll_started is None:
            return None
        return self.clock() - self.poll_started

    @property
    def overdue(self) -> bool:
        """The poll in progress has waited longer than one request may take."""
        running = self.poll_running_for()
        return running is not None and running > self.client.timeout

    @property
    def degraded(self) -> bool:
        return self.breaker.degraded or self.overdue

    async def apoll_once(self) -> None:
        """Fetch every resource concurrently; each success replaces that resource's data."""
        async with self._polling:
            self.poll_started = self.clock()
            try:
                results = await asyncio.gather(*(self._afetch(r) for r in RESOURCES))
            finally:
                self.poll_started = None
        values, fetched = dict(self.data.values), dict(self.data.fetched_at)
        changed = False
        for resource, value in zip(RESOURCES, results, strict=True):
            if value is not _FAILED:
                values[resource.key] = value
                fetched[resource.key] = time.time()
                changed = True
        if changed:
            self.data = evolve(
                self.data, values=values, fetched_at=fetched, generation=self.data.generation + 1
            )
        self.last_poll_at = time.time()

    async def _afetch(self, resource: Resource) -> Any:
        if not self.breaker.allow():
            return _FAILED
        try:
            payload = await self.client.aget_json(resource.path, resource.params)
            value = resource.parse(payload)
        except HordeUnavailable as exc:
            logger.warning("AI-Horde %s unavailable: %s", resource.key, exc)
            self._failed(str(exc))
            return _FAILED
        except (ValueError, TypeError, AttributeError) as exc:
            logger.warning("AI-Horde %s payload skipped as malformed: %s", resource.key, exc)
            self._failed(f"malformed {resource.key} payload")
            return _FAILED
        self.breaker.record(True)
        self.last_error = None
        return value

    def _failed(self, reason: str) -> None:
        self.breaker.record(False)
        self.last_error = reason

    async def arun(self) -> None:
        """Poll forever with a jittered interval; never dies of one bad poll."""
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.9, 1.1))
            try:
                await self.apoll_once()
            except Exception:
                logger.exception("AI-Horde poll failed")


_FAILED = object()
