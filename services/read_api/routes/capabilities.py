"""Capability discovery: welcome, replicate mode, info and category lists."""

from __future__ import annotations

import json

from aiohttp import web

from horde_model_records import ALL_CATEGORIES, V2_LISTED_CATEGORIES
from shared.http import ApiRoutes
from shared.openapi import JsonDict, docs
from shared.wire import unstructure

from ..keys import read_config_key, snapshot_holder_key
from ..wire import Message, ReplicateMode

routes = ApiRoutes()

_WELCOME = Message(
    message="AI-Horde model reference. Interactive API documentation: /api/docs "
    "(OpenAPI document: /api/openapi.json)."
)
_V1_INFO = Message(
    message="v1 serves the legacy, GitHub-compatible format: one JSON object per category, "
    "keyed by model name, in the order of the original repositories."
)
_V2_INFO = Message(
    message="v2 serves the normalised record format: every record carries record_type, "
    "metadata, config.download and model_classification. Search, single-model reads and "
    "change-detection metadata are available."
)


def _json(request: web.Request, value: object) -> web.Response:
    """A small constant answer; it still names the live snapshot, as every read does."""
    response = web.Response(text=json.dumps(unstructure(value)), content_type="application/json")
    model = request.config_dict[snapshot_holder_key].current
    if model is not None:
        response.headers["X-Snapshot-Id"] = str(model.snapshot_id)
    return response


def _list(description: str, names: list[str]) -> JsonDict:
    return {"type": "array", "items": {"type": "string", "enum": names}, "description": description}


@routes.get("/api")
@routes.get("/api/")
@docs("Welcome message pointing at the documentation", tags=("capabilities",), answer=Message)
async def get_welcome(request: web.Request) -> web.Response:
    return _json(request, _WELCOME)


@routes.get("/api/replicate_mode")
@docs(
    "Replication mode and canonical format of this deployment",
    tags=("capabilities",),
    answer=ReplicateMode,
)
async def get_replicate_mode(request: web.Request) -> web.Response:
    config = request.config_dict[read_config_key]
    return _json(
        request,
        ReplicateMode(
            replicate_mode="REPLICA" if config.mode == "REPLICA" else "PRIMARY",
            canonical_format="legacy" if config.canonical_format == "legacy" else "v2",
            writable=config.mode == "PRIMARY",
        ),
    )


def _constant(
    path: str, version: str, summary: str, answer: type | JsonDict, value: object
) -> None:
    """GET `path` under `version` answers `value`, the same every time."""

    @routes.api("GET", path, versions=(version,))
    @docs(summary, tags=(version,), answer=answer)
    async def get_constant(request: web.Request) -> web.Response:
        return _json(request, value)


for _version, _summary, _message in (
    ("v1", "What v1 serves", _V1_INFO),
    ("v2", "What v2 serves", _V2_INFO),
):
    _constant("/info", _version, _summary, Message, _message)

for _version, _summary, _categories in (
    ("v1", "All 15 categories, in enumeration order", ALL_CATEGORIES),
    ("v2", "The 13 v2 categories (all but lora and ti)", V2_LISTED_CATEGORIES),
):
    _names = [c.value for c in _categories]
    _constant("/model_categories", _version, _summary, _list("The categories.", _names), _names)
