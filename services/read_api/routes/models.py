"""Whole-category reads (v1 and v2) and single-model reads (v2)."""

from __future__ import annotations

from aiohttp import web

from horde_model_records import Category
from shared.errors import InvalidInput, NotFound, validation_item
from shared.query import BOOL_FALSE, BOOL_TRUE

from ..categories import v1_category, v2_category
from ..responses import read_model, respond

routes = web.RouteTableDef()

_V1 = "/api/model_references/v1"
_V2 = "/api/model_references/v2"


@routes.get(_V1 + "/text_generation")
async def get_v1_text_generation(request: web.Request) -> web.Response:
    """The db.json view; `include_group` is accepted (group summaries are not computed yet)."""
    model = read_model(request)
    raw = request.query.get("include_group")
    if raw is not None and raw.lower() not in BOOL_TRUE | BOOL_FALSE:
        raise InvalidInput(
            [
                validation_item(
                    "bool_parsing",
                    ["query", "include_group"],
                    "Input should be a valid boolean, unable to interpret input",
                    raw[:256],
                )
            ]
        )
    body = model.categories[Category.text_generation].v1
    if body is None or body.data == b"{}":
        raise NotFound("Text generation models not found or empty")
    return respond(request, model, body)


@routes.get(_V1 + "/{category}")
async def get_v1_category(request: web.Request) -> web.Response:
    model = read_model(request)
    category = v1_category(request.match_info["category"])
    if category in (Category.lora, Category.ti):
        return respond(request, model, model.empty_object)
    body = model.categories[category].v1
    if body is None or body.data == b"{}":
        raise NotFound(f"Model category '{category.value}' not found or is empty")
    return respond(request, model, body)


@routes.get(_V2 + "/{category}/model/{model_name:.+}")
async def get_model(request: web.Request) -> web.Response:
    model = read_model(request)
    category = v2_category(request.match_info["category"])
    name = request.match_info["model_name"]
    body = model.categories[category].models.get(name)
    if body is None:
        raise NotFound(f"Model '{name}' not found in category '{category.value}'")
    return respond(request, model, body)


@routes.get(_V2 + "/{category}")
async def get_v2_category(request: web.Request) -> web.Response:
    model = read_model(request)
    category = v2_category(request.match_info["category"])
    return respond(request, model, model.categories[category].v2)
