"""Search within one category and across all of them."""

from __future__ import annotations

from aiohttp import web

from .. import search
from ..categories import search_category
from ..responses import read_model, respond_json

routes = web.RouteTableDef()


@routes.get("/api/model_references/v2/search")
async def search_models(request: web.Request) -> web.Response:
    model = read_model(request)
    query = search.parse_query(request.query, all_categories=True)
    return respond_json(model, search.search_all(model, query))


@routes.get("/api/model_references/v2/{category}/search")
async def search_category_models(request: web.Request) -> web.Response:
    model = read_model(request)
    category = search_category(request.match_info["category"])
    query = search.parse_query(request.query)
    return respond_json(model, search.search_category(model, category, query))
