"""Heartbeat, popular, statistics, with-stats and deletion-risk."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from horde_model_records import Category
from shared.errors import (
    BadGateway,
    BadRequest,
    NotFound,
    Unavailable,
)
from shared.query import QueryParser, category_or_unknown, category_param

from ..deletion_risk import PRESETS, deletion_risk_models, summarise
from ..keys import poller_key, result_cache_key, stats_config_key, stats_snapshot_key
from ..merge import HordeIndex
from ..model import StatsModel
from ..statistics import category_statistics

routes = web.RouteTableDef()

Json = dict[str, Any]

HORDE_CATEGORIES = (Category.image_generation, Category.text_generation)
SORTS = ("worker_count", "usage_day", "usage_month", "usage_total")


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


def _horde_ready(request: web.Request, category: Category) -> None:
    data = request.config_dict[poller_key].data
    kind = "image" if category is Category.image_generation else "text"
    if data.get(f"status_{kind}") is None and data.get(f"usage_{kind}") is None:
        raise BadGateway("AI Horde API is currently unavailable: no data has been fetched yet")


@routes.get("/api/heartbeat")
async def get_heartbeat(request: web.Request) -> web.Response:
    poller = request.config_dict[poller_key]
    breaker = poller.breaker
    last = poller.data.last_success
    model = request.config_dict[stats_snapshot_key].current
    return web.json_response(
        {
            "status": "ok",
            "ai_horde": {
                "polling": request.config_dict[stats_config_key].polling_enabled,
                "degraded": breaker.degraded,
                "consecutive_failures": breaker.consecutive_failures,
                "seconds_until_retry": breaker.seconds_until_retry(),
                "last_successful_poll": None if last is None else int(last),
                "last_successful_poll_age_seconds": None
                if last is None
                else round(time.time() - last, 1),
            },
            "snapshot_id": None if model is None else model.snapshot_id,
        },
        headers={"Cache-Control": "no-cache"},
    )


@routes.get("/api/model_references/v2/{category}/popular")
async def list_popular(request: web.Request) -> web.Response:
    category = category_or_unknown(request.match_info["category"])
    p = QueryParser(request.query)
    limit = p.integer("limit", 10, ge=1, le=100)
    sort_by = (p.choices("sort_by", SORTS) or ("worker_count",))[-1]
    include_workers = bool(p.boolean("include_workers"))
    p.check()
    model = _model(request)
    if category not in HORDE_CATEGORIES:
        return _json([])
    data = request.config_dict[poller_key].data
    kind = "image" if category is Category.image_generation else "text"
    if data.get(f"status_{kind}") is None and data.get(f"usage_{kind}") is None:
        return _json([])  # not polled yet: an empty list, as upstream's docs promise

    def compute() -> list[Json]:
        index = HordeIndex.build(data, category)
        rows = []
        for record in model.records[category]:
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
            {"name": r["name"], "record": r, "stats": s.to_wire(include_workers)}
            for _, r, s in rows
        ]

    def encoded() -> bytes:
        ranked = _cached(request, model, ("popular", category, sort_by, include_workers), compute)
        return json.dumps(ranked[:limit]).encode()

    # the encoded answer too: a request is then a lookup (keys are bounded: limit <= 100)
    key = ("popular-bytes", category, sort_by, include_workers, limit)
    return _bytes(_cached(request, model, key, encoded))


def _paging(p: QueryParser, request: web.Request) -> tuple[int | None, int]:
    limit = p.integer("limit", 0, ge=1) if "limit" in request.query else None
    offset = p.integer("offset", 0, ge=0)
    return limit, offset


@routes.get("/api/model_references/statistics/{category}")
async def get_statistics(request: web.Request) -> web.Response:
    category = _category_enum(request.match_info["category"])
    p = QueryParser(request.query)
    grouped = bool(p.boolean("group_text_models"))
    limit, offset = _paging(p, request)
    p.check()
    model = _model(request)
    records = model.records[category]
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


@routes.get("/api/model_references/statistics/{category}/deletion-risk")
async def get_deletion_risk(request: web.Request) -> web.Response:
    category = _category_enum(request.match_info["category"])
    p = QueryParser(request.query)
    preset = p.text("preset")
    grouped = bool(p.boolean("group_text_models"))
    limit, offset = _paging(p, request)
    p.check()
    if category not in HORDE_CATEGORIES:
        raise BadRequest(
            "Deletion risk analysis is only supported for image_generation and text_generation categories"
        )
    if preset is not None and preset not in PRESETS:
        raise BadRequest(
            f"Invalid preset: Unknown preset: '{preset}'. Valid presets: {', '.join(PRESETS)}"
        )
    model = _model(request)
    _horde_ready(request, category)
    data = request.config_dict[poller_key].data
    records = model.records[category]
    entries = _cached(
        request,
        model,
        ("deletion_risk", category, grouped),
        lambda: deletion_risk_models(category, records, HordeIndex.build(data, category)),
    )
    category_month = sum(m["usage_month"] for m in entries)
    if preset is not None:
        entries = [m for m in entries if PRESETS[preset](m)]
    page = entries[offset : None if limit is None else offset + limit]
    return _json(
        {
            "category": category.value,
            "category_total_month_usage": category_month,
            "total_count": len(entries),
            "returned_count": len(page),
            "offset": offset,
            "limit": limit,
            "models": page,
            "summary": summarise(entries, category_month),
        }
    )
