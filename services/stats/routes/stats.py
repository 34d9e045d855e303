"""Heartbeat, popular, statistics, with-stats and deletion-risk."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from horde_model_records import Category
from shared.errors import (
    BadGateway,
    BadRequest,
    NotFound,
    Unavailable,
)
from shared.http import Handler
from shared.openapi import docs, ref, schema_name
from shared.query import category_or_unknown, category_param
from shared.wire import read_query, respond, unstructure

from ..answers import model_stats, models_with_stats, without_nulls
from ..deletion_risk import PRESETS, deletion_risk_models, summarise
from ..keys import poller_key, result_cache_key, stats_config_key, stats_snapshot_key
from ..merge import HordeIndex
from ..model import StatsModel
from ..poller import HordeData
from ..statistics import category_statistics
from ..wire import (
    CategoryDeletionRiskResponse,
    CategoryStatistics,
    DeletionRiskQuery,
    Heartbeat,
    HordeHealth,
    ModelStats,
    PopularModel,
    PopularQuery,
    StatisticsQuery,
    WithStatsQuery,
)

routes = web.RouteTableDef()

Json = dict[str, Any]

HORDE_CATEGORIES = (Category.image_generation, Category.text_generation)
_STATISTICS = "/api/model_references/statistics/{category}"
_NO_SNAPSHOT = "No snapshot published yet."
_BAD_INPUT = "Unknown category or bad parameter."


def _json(body: Any) -> web.Response:
    return _bytes(json.dumps(body).encode())


def _bytes(data: bytes) -> web.Response:
    return web.Response(
        body=data,
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=60"},
    )


def _model(request: web.Request) -> StatsModel:
    model = request.config_dict[stats_snapshot_key].current
    if model is None:
        raise Unavailable("No model reference snapshot has been published yet.")
    return model


def _epoch(request: web.Request, model: StatsModel) -> tuple[str, int]:
    return (model.snapshot_name, request.config_dict[poller_key].data.generation)


def _cached(request: web.Request, model: StatsModel, key: tuple[Any, ...], compute: Any) -> Any:
    return request.config_dict[result_cache_key].get(_epoch(request, model), key, compute)


def _category_enum(raw: str) -> Category:
    return category_param(raw, "category")


def _polled(data: HordeData, category: Category) -> bool:
    """Whether AI-Horde has answered anything about the category's kind (image or text) yet."""
    kind = "image" if category is Category.image_generation else "text"
    return data.get(f"status_{kind}") is not None or data.get(f"usage_{kind}") is not None


def _horde_ready(request: web.Request, category: Category) -> None:
    """A 502 naming the reason when AI-Horde has never answered about the category's kind."""
    poller = request.config_dict[poller_key]
    if _polled(poller.data, category):
        return
    if not request.config_dict[stats_config_key].polling_enabled:
        reason = "polling AI-Horde is switched off"
    else:
        reason = poller.last_error or "no data has been fetched yet"
    raise BadGateway(f"AI Horde API is currently unavailable: {reason}")


def _horde_category(category: Category) -> None:
    if category not in HORDE_CATEGORIES:
        raise BadRequest(
            f"Category '{category.value}' does not support Horde statistics. "
            "Only image_generation and text_generation are supported."
        )


def _docs(summary: str, **fields: Any) -> Callable[[Handler], Handler]:
    """The operation of a stats route (all are tagged `stats`)."""
    return docs(summary, tags=("stats",), **fields)


def _category_docs(
    summary: str,
    *,
    errors: Mapping[int, str] | None = None,
    categories: Sequence[Category] = tuple(Category),
    **fields: Any,
) -> Callable[[Handler], Handler]:
    """The operation of a route under /{category}: an unknown category or a bad parameter is a
    422, and there is no answer before the first snapshot."""
    category = {"schema": {"type": "string", "enum": [c.value for c in categories]}}
    return _docs(
        summary,
        path={"category": category},
        errors={422: _BAD_INPUT, 503: _NO_SNAPSHOT, **(errors or {})},
        **fields,
    )


@routes.get("/api/heartbeat")
@_docs(
    "Service status and AI-Horde health",
    answer=Heartbeat,
    answer_description="`ok`, or `degraded` while AI-Horde fails or hangs; always a 200.",
)
async def get_heartbeat(request: web.Request) -> web.Response:
    poller = request.config_dict[poller_key]
    breaker = poller.breaker
    last = poller.data.last_success
    running = poller.poll_running_for()
    model = request.config_dict[stats_snapshot_key].current
    degraded = poller.degraded
    heartbeat = Heartbeat(
        status="degraded" if degraded else "ok",
        ai_horde=HordeHealth(
            polling=request.config_dict[stats_config_key].polling_enabled,
            degraded=degraded,
            consecutive_failures=breaker.consecutive_failures,
            seconds_until_retry=breaker.seconds_until_retry(),
            last_successful_poll=None if last is None else int(last),
            last_successful_poll_age_seconds=None if last is None else round(time.time() - last, 1),
            poll_in_progress_seconds=None if running is None else round(running, 1),
        ),
        snapshot_id=None if model is None else model.snapshot_id,
    )
    return respond(heartbeat, cache="no-cache")


@routes.get("/api/model_references/v2/{category}/popular")
@_category_docs(
    "Models of a category ranked by workers or usage",
    query=PopularQuery,
    answer=list[PopularModel],
    answer_description="Ranked models; [] for categories without AI-Horde data.",
)
async def list_popular(request: web.Request) -> web.Response:
    category = category_or_unknown(request.match_info["category"])
    query = read_query(request, PopularQuery)
    limit, sort_by, include_workers = query.limit, query.sort_by, query.include_workers
    model = _model(request)
    if category not in HORDE_CATEGORIES:
        return _json([])
    data = request.config_dict[poller_key].data
    if not _polled(data, category):
        return _json([])  # not polled yet: an empty list, as upstream's docs promise
    records = await model.arecords(category)

    def compute() -> list[Json]:
        index = HordeIndex.build(data, category)
        rows = []
        for record in records:
            stats = index.merge(record["name"])
            metric = {
                "worker_count": stats.worker_count(include_workers),
                "usage_day": stats.usage_day,
                "usage_month": stats.usage_month,
                "usage_total": stats.usage_total,
            }[sort_by]
            rows.append((metric, record, stats))
        rows.sort(key=lambda row: row[0], reverse=True)  # stable: ties keep dataset order
        return [
            {
                "name": r["name"],
                # a v2 read without the text guidance status (spec 06 §3.2: not in popular)
                "record": {k: v for k, v in r.items() if k != "guidance"},
                "stats": without_nulls(
                    unstructure(model_stats(s, include_workers=include_workers))
                ),
            }
            for _, r, s in rows
        ]

    def encoded() -> bytes:
        ranked = _cached(request, model, ("popular", category, sort_by, include_workers), compute)
        return json.dumps(ranked[:limit]).encode()

    # the encoded answer too: a request is then a lookup (keys are bounded: limit <= 100)
    key = ("popular-bytes", category, sort_by, include_workers, limit)
    return _bytes(_cached(request, model, key, encoded))


@routes.get(_STATISTICS)
@_category_docs(
    "Counts and distributions of a category's models",
    query=StatisticsQuery,
    answer=CategoryStatistics,
    answer_description="The category's statistics.",
    errors={404: "The category has no models."},
)
async def get_statistics(request: web.Request) -> web.Response:
    category = _category_enum(request.match_info["category"])
    query = read_query(request, StatisticsQuery)
    grouped, limit, offset = query.group_text_models, query.limit, query.offset
    model = _model(request)
    records = await model.arecords(category)
    if not records:
        raise NotFound(f"Category '{category.value}' not found or has no models")
    encoded = _cached(
        request,
        model,
        ("statistics", category, grouped),
        lambda: json.dumps(category_statistics(category, records, grouped)).encode(),
    )
    # limit/offset are echoed, not applied (the statistics cover the whole category): splice
    # them into the encoded object
    echo = json.dumps({"offset": offset, "limit": limit}).encode()
    return _bytes(encoded[:-1] + b", " + echo[1:])


@routes.get(_STATISTICS + "/with-stats")
@_category_docs(
    "Every model of a category with its AI-Horde figures",
    query=WithStatsQuery,
    answer={
        "type": "object",
        "description": "Model name → its AI-Horde figures, null fields included; dataset order "
        "unless `sort_by` is given.",
        "additionalProperties": ref(schema_name(ModelStats)),
    },
    answer_description="Models with their figures.",
    errors={
        400: "A category without AI-Horde statistics.",
        404: "The category has no models.",
        502: "AI-Horde has never answered.",
    },
    categories=HORDE_CATEGORIES,
)
async def list_models_with_stats(request: web.Request) -> web.Response:
    category = _category_enum(request.match_info["category"])
    query = read_query(request, WithStatsQuery)
    _horde_category(category)
    model = _model(request)
    records = await model.arecords(category)
    if not records:
        raise NotFound(f"Category '{category.value}' not found")
    _horde_ready(request, category)
    data = request.config_dict[poller_key].data

    def encoded() -> bytes:
        figures = models_with_stats(
            (r["name"] for r in records),
            HordeIndex.build(data, category),
            query,
            text=category is Category.text_generation,
        )
        return json.dumps(unstructure(figures)).encode()

    return _bytes(_cached(request, model, ("with-stats", category, query), encoded))


@routes.get(_STATISTICS + "/deletion-risk")
@_category_docs(
    "Which models are unused, unserved or hard to download",
    query=DeletionRiskQuery,
    answer=CategoryDeletionRiskResponse,
    answer_description="Risk entries, most used first.",
    errors={
        400: "A category without AI-Horde statistics, or an unknown preset.",
        502: "AI-Horde has never answered.",
    },
    categories=HORDE_CATEGORIES,
)
async def get_deletion_risk(request: web.Request) -> web.Response:
    category = _category_enum(request.match_info["category"])
    query = read_query(request, DeletionRiskQuery)
    preset, limit, offset = query.preset, query.limit, query.offset
    if category not in HORDE_CATEGORIES:
        raise BadRequest(
            "Deletion risk analysis is only supported for image_generation and text_generation categories"
        )
    # both only change text answers: image requests share one cache entry
    text = category is Category.text_generation
    grouped = query.group_text_models and text
    backends = query.include_backend_variations and text and not grouped
    if preset is not None and preset not in PRESETS:
        raise BadRequest(
            f"Invalid preset: Unknown preset: '{preset}'. Valid presets: {', '.join(PRESETS)}"
        )
    model = _model(request)
    _horde_ready(request, category)
    data = request.config_dict[poller_key].data
    records = await model.arecords(category)
    entries = _cached(
        request,
        model,
        ("deletion_risk", category, grouped, backends),
        lambda: deletion_risk_models(
            category,
            records,
            HordeIndex.build(data, category),
            grouped=grouped,
            backend_variations=backends,
        ),
    )
    category_month = sum(m["usage_month"] for m in entries)
    # grouped, total_count stays the number of models (upstream keeps the ungrouped count);
    # a preset makes it the number of entries the preset keeps
    total_count = len(records) if grouped else len(entries)
    if preset is not None:
        entries = [m for m in entries if PRESETS[preset](m)]
        total_count = len(entries)
    page = entries[offset : None if limit is None else offset + limit]
    return _json(
        {
            "category": category.value,
            "category_total_month_usage": category_month,
            "total_count": total_count,
            "returned_count": len(page),
            "offset": offset,
            "limit": limit,
            "models": page,
            "summary": summarise(entries, category_month),
        }
    )
