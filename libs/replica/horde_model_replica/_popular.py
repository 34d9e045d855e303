"""Ranking a category's models by AI-Horde's live numbers (upstream's `get_popular_models`).

Three public AI-Horde reads: `/v2/status/models` (workers, queue, performance per model),
`/v2/stats/{img|text}/models` (use per day, month and total) and, when asked, `/v2/workers`.
A text model is advertised under backend-prefixed names (`koboldcpp/Model`, `aphrodite/org/Model`):
its numbers are those of all its names, the busiest status and the summed use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import aiohttp
import yarl
from attrs import frozen

from horde_model_records import ModelRecord, unstructure_record, variant_names

from ._errors import InvalidBody, RetryableStatus
from ._http import NETWORK_ERRORS, _Source, api_base
from ._proxy import ProxySettings
from ._retry import RetryPolicy

SortBy = Literal["worker_count", "usage_day", "usage_month", "usage_total"]
SORT_KEYS: tuple[str, ...] = ("worker_count", "usage_day", "usage_month", "usage_total")
CLIENT_AGENT = "horde-model-replica:0.1:https://github.com/Haidra-Org"

Json = Any


@frozen
class UsageStats:
    """How often a model was used: the last day, the last month, ever."""

    day: int
    month: int
    total: int


@frozen
class WorkerSummary:
    """One worker serving the model."""

    id: str
    name: str
    performance: str
    online: bool
    trusted: bool
    uptime: int
    max_length: int | None = None
    max_context_length: int | None = None
    bridge_agent: str | None = None
    nsfw: bool | None = None


@frozen
class ModelStats:
    """A model's live numbers (upstream's CombinedModelStatistics fields)."""

    worker_count: int
    queued_jobs: float | None = None
    performance: float | None = None
    eta: int | None = None
    queued: float | None = None
    usage_stats: UsageStats | None = None
    worker_summaries: dict[str, WorkerSummary] | None = None


@frozen
class PopularModelResult:
    """A ranked model: its name, its record as JSON, its live numbers."""

    name: str
    record: dict[str, Any]
    stats: ModelStats


def _number(value: object) -> float | None:
    # AI-Horde sends numbers as ints, floats or strings ("12.5") depending on the field
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]  # -- a str or a number; anything else is None
    except (TypeError, ValueError):
        return None


def _int(value: object) -> int:
    number = _number(value)
    return 0 if number is None else int(number)


class HordeStatsClient(_Source):
    """AI-Horde's public model and worker reads (`base_url` ends with /api), retried like the PRIMARY's."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: yarl.URL | str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff_min: float = 1.0,
        backoff_max: float = 10.0,
        proxies: ProxySettings,
    ) -> None:
        retry_on = (*NETWORK_ERRORS, RetryableStatus)
        policy = RetryPolicy(attempts, backoff_min, backoff_max, retry_on)
        super().__init__(session, timeout, policy, asyncio.sleep, proxies)
        self.base_url = api_base(base_url) / "v2"

    async def _get(self, url: yarl.URL) -> Json:
        def decode(body: bytes) -> Json:
            try:
                return json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidBody(f"{url} is not JSON ({exc})") from None

        fetched = await self._fetch(url, None, decode, headers={"Client-Agent": CLIENT_AGENT})
        return fetched.payload

    async def status(self, kind: str) -> list[Json]:
        found = await self._get(
            (self.base_url / "status" / "models").with_query(type=kind, model_state="known")
        )
        return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []

    async def usage(self, kind: str) -> Mapping[str, Json]:
        path = "img" if kind == "image" else "text"
        found = await self._get(
            (self.base_url / "stats" / path / "models").with_query(model_state="known")
        )
        return found if isinstance(found, dict) else {}

    async def workers(self, kind: str) -> list[Json]:
        found = await self._get((self.base_url / "workers").with_query(type=kind))
        return [w for w in found if isinstance(w, dict)] if isinstance(found, list) else []


def _worker(raw: Mapping[str, Json]) -> WorkerSummary:
    def optional_int(key: str) -> int | None:
        number = _number(raw.get(key))
        return None if number is None else int(number)

    return WorkerSummary(
        id=str(raw.get("id", "")),
        name=str(raw.get("name", "")),
        performance=str(raw.get("performance", "")),
        online=bool(raw.get("online", False)),
        trusted=bool(raw.get("trusted", False)),
        uptime=_int(raw.get("uptime")),
        max_length=optional_int("max_length"),
        max_context_length=optional_int("max_context_length"),
        bridge_agent=raw.get("bridge_agent") if isinstance(raw.get("bridge_agent"), str) else None,
        nsfw=raw.get("nsfw") if isinstance(raw.get("nsfw"), bool) else None,
    )


def model_stats(
    name: str,
    status: Mapping[str, Mapping[str, Json]],
    usage: Mapping[str, Json],
    workers: Mapping[str, list[Mapping[str, Json]]] | None,
) -> ModelStats:
    """One model's numbers from the indexed AI-Horde answers (keys lowercased)."""
    names = [n.lower() for n in variant_names(name)]
    statuses = [status[n] for n in names if n in status]
    busiest = max(statuses, key=lambda s: _int(s.get("count")), default=None)
    counts = [
        sum(_int((usage.get(period) or {}).get(n)) for n in names)
        for period in ("day", "month", "total")
    ]
    summaries: dict[str, WorkerSummary] | None = None
    if workers is not None:
        summaries = {}
        for n in names:
            for raw in workers.get(n, []):
                worker = _worker(raw)
                summaries.setdefault(worker.id, worker)
    if summaries is not None:
        worker_count = len(summaries)
    else:
        worker_count = _int(busiest.get("count")) if busiest is not None else 0
    return ModelStats(
        worker_count=worker_count,
        queued_jobs=None if busiest is None else _number(busiest.get("jobs")),
        performance=None if busiest is None else _number(busiest.get("performance")),
        eta=None if busiest is None else _int(busiest.get("eta")),
        queued=None if busiest is None else _number(busiest.get("queued")),
        usage_stats=UsageStats(*counts) if any(counts) else None,
        worker_summaries=summaries,
    )


def _lowered(usage: Mapping[str, Json]) -> dict[str, dict[str, Json]]:
    return {
        period: {str(k).lower(): v for k, v in (usage.get(period) or {}).items()}
        for period in ("day", "month", "total")
        if isinstance(usage.get(period), dict)
    }


def rank(
    records: Mapping[str, ModelRecord],
    status: Iterable[Mapping[str, Json]],
    usage: Mapping[str, Json],
    workers: Iterable[Mapping[str, Json]] | None,
    *,
    sort_by: str,
    limit: int,
) -> list[PopularModelResult]:
    """The `limit` models of `records` with the highest `sort_by`, busiest first."""
    if sort_by not in SORT_KEYS:
        raise ValueError(f"sort_by must be one of {list(SORT_KEYS)}, got {sort_by!r}")
    by_name = {str(s.get("name", "")).lower(): s for s in status}
    by_model: dict[str, list[Mapping[str, Json]]] | None = None
    if workers is not None:
        by_model = {}
        for worker in workers:
            for model in worker.get("models") or []:
                by_model.setdefault(str(model).lower(), []).append(worker)
    lowered = _lowered(usage)
    stats = {name: model_stats(name, by_name, lowered, by_model) for name in records}

    def key(name: str) -> int:
        found = stats[name]
        if sort_by == "worker_count":
            return found.worker_count
        used = found.usage_stats
        return 0 if used is None else getattr(used, sort_by.removeprefix("usage_"))

    ranked = sorted(records, key=key, reverse=True)[:limit]
    return [
        PopularModelResult(name=n, record=unstructure_record(records[n]), stats=stats[n])
        for n in ranked
    ]
