"""Capability discovery: welcome, replicate mode, info and category lists."""

from __future__ import annotations

import json

from aiohttp import web

from horde_model_records import ALL_CATEGORIES, V2_LISTED_CATEGORIES

from ..keys import read_config_key, snapshot_holder_key

routes = web.RouteTableDef()

_WELCOME = {
    "message": "AI-Horde model reference. Interactive API documentation: /api/docs "
    "(OpenAPI document: /api/openapi.json)."
}
_V1_INFO = {
    "message": "v1 serves the legacy, GitHub-compatible format: one JSON object per category, "
    "keyed by model name, in the order of the original repositories."
}
_V2_INFO = {
    "message": "v2 serves the normalised record format: every record carries record_type, "
    "metadata, config.download and model_classification. Search, single-model reads and "
    "change-detection metadata are available."
}


def _json(request: web.Request, value: object) -> web.Response:
    """A small constant answer; it still names the live snapshot, as every read does."""
    response = web.Response(text=json.dumps(value), content_type="application/json")
    model = request.config_dict[snapshot_holder_key].current
    if model is not None:
        response.headers["X-Snapshot-Id"] = str(model.snapshot_id)
    return response


@routes.get("/api")
@routes.get("/api/")
async def get_welcome(request: web.Request) -> web.Response:
    return _json(request, _WELCOME)


@routes.get("/api/replicate_mode")
async def get_replicate_mode(request: web.Request) -> web.Response:
    config = request.config_dict[read_config_key]
    return _json(
        request,
        {
            "replicate_mode": config.mode,
            "canonical_format": config.canonical_format,
            "writable": config.mode == "PRIMARY",
        },
    )


@routes.get("/api/model_references/v1/info")
async def get_v1_info(request: web.Request) -> web.Response:
    return _json(request, _V1_INFO)


@routes.get("/api/model_references/v2/info")
async def get_v2_info(request: web.Request) -> web.Response:
    return _json(request, _V2_INFO)


@routes.get("/api/model_references/v1/model_categories")
async def list_v1_categories(request: web.Request) -> web.Response:
    return _json(request, [c.value for c in ALL_CATEGORIES])


@routes.get("/api/model_references/v2/model_categories")
async def list_v2_categories(request: web.Request) -> web.Response:
    return _json(request, [c.value for c in V2_LISTED_CATEGORIES])
