"""The stats service's OpenAPI documentation, attached to its handlers (spec 04); plain dicts only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from horde_model_records import ALL_CATEGORIES
from shared.openapi import (
    document,
    error_response,
    json_response,
    query_param,
    ref,
    setup_openapi,
    validation_response,
)

from .deletion_risk import PRESETS
from .routes import stats
from .routes.stats import SORTS

TITLE = "AI-Horde model reference statistics"
API_VERSION = "2.0.0"
DESCRIPTION = (
    "AI-Horde status, usage and workers merged with the model reference: heartbeat, popular "
    "models, category statistics and deletion risk. Answers come from the last good AI-Horde poll; "
    "when AI-Horde has never answered, `popular` is an empty list and deletion risk a 502."
)
_TAGS = {"stats": "AI-Horde usage and worker statistics (spec 04)."}

_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_COMPONENTS: dict[str, dict[str, Any]] = {
    "Heartbeat": {
        "type": "object",
        "required": ["status", "ai_horde"],
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "ai_horde": {
                "type": "object",
                "properties": {
                    "polling": {"type": "boolean"},
                    "degraded": {"type": "boolean"},
                    "consecutive_failures": {"type": "integer"},
                    "seconds_until_retry": {"type": "number", "nullable": True},
                    "last_successful_poll": {"type": "integer", "nullable": True},
                    "last_successful_poll_age_seconds": {"type": "number", "nullable": True},
                },
            },
            "snapshot_id": {"type": "integer", "nullable": True},
        },
    },
    "PopularModel": {
        "type": "object",
        "required": ["name", "record", "stats"],
        "properties": {
            "name": {"type": "string"},
            "record": _OBJECT,
            "stats": {
                "type": "object",
                "required": ["worker_count"],
                "properties": {
                    "queued_jobs": {"type": "number"},
                    "performance": {"type": "number"},
                    "eta": {"type": "number"},
                    "queued": {"type": "number"},
                    "usage_stats": {
                        "type": "object",
                        "properties": {p: {"type": "integer"} for p in ("day", "month", "total")},
                    },
                    "worker_summaries": _OBJECT,
                    "worker_count": {"type": "integer"},
                },
            },
        },
    },
    "CategoryStatistics": {**_OBJECT, "required": ["category", "total_models"]},
    "CategoryDeletionRiskResponse": {
        **_OBJECT,
        "required": ["category", "total_count", "returned_count", "models", "summary"],
    },
}


_CATEGORY = {
    "in": "path",
    "name": "category",
    "required": True,
    "schema": {"type": "string", "enum": [c.value for c in ALL_CATEGORIES]},
}
_BOOL = {"type": "boolean", "default": False}
_PAGING = [
    query_param("limit", {"type": "integer", "minimum": 1}, "Page size (echoed)."),
    query_param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Page start (echoed)."),
]


def _document_handlers() -> None:
    document(
        stats.get_heartbeat,
        summary="Service status and AI-Horde health",
        tags=["stats"],
        responses={200: json_response("Always ok; AI-Horde health inside.", ref("Heartbeat"))},
    )
    document(
        stats.list_popular,
        summary="Models of a category ranked by workers or usage",
        tags=["stats"],
        parameters=[
            {**_CATEGORY, "name": "category"},
            query_param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                "How many.",
            ),
            query_param(
                "sort_by",
                {"type": "string", "enum": list(SORTS), "default": "worker_count"},
                "Ranking.",
            ),
            query_param("include_workers", _BOOL, "Attach per-worker summaries."),
        ],
        responses={
            200: json_response(
                "Ranked models; [] for categories without AI-Horde data.",
                {"type": "array", "items": ref("PopularModel")},
            ),
            422: validation_response("Unknown category or bad parameter."),
            503: error_response("No snapshot published yet."),
        },
    )
    document(
        stats.get_statistics,
        summary="Counts and distributions of a category's models",
        tags=["stats"],
        parameters=[
            _CATEGORY,
            query_param("group_text_models", _BOOL, "Group text models by base name."),
            *_PAGING,
        ],
        responses={
            200: json_response("The category's statistics.", ref("CategoryStatistics")),
            404: error_response("The category has no models."),
            422: validation_response("Unknown category or bad parameter."),
            503: error_response("No snapshot published yet."),
        },
    )
    document(
        stats.get_deletion_risk,
        summary="Which models are unused, unserved or hard to download",
        tags=["stats"],
        parameters=[
            _CATEGORY,
            query_param(
                "preset",
                {"type": "string", "enum": list(PRESETS)},
                "Keep only models matching a preset.",
            ),
            query_param("group_text_models", _BOOL, "Accepted; text models are not grouped here."),
            *_PAGING,
        ],
        responses={
            200: json_response(
                "Risk entries, most used first.", ref("CategoryDeletionRiskResponse")
            ),
            400: error_response("Unsupported category or unknown preset."),
            422: validation_response("Unknown category or bad parameter."),
            502: error_response("AI-Horde has never answered."),
            503: error_response("No snapshot published yet."),
        },
    )


def setup_stats_docs(app: web.Application) -> None:
    """Document the stats routes; they join the app's document when another service serves it."""
    _document_handlers()
    setup_openapi(
        app, TITLE, API_VERSION, description=DESCRIPTION, components=_COMPONENTS, tags=_TAGS
    )
