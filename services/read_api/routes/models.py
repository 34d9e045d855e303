"""Whole-category reads (v1 and v2) and single-model reads (v2)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from horde_model_records import Category
from shared.errors import NotFound
from shared.http import ApiRoutes
from shared.openapi import any_category_schema, any_record_schema
from shared.wire import read_query

from ..categories import v1_category, v2_category
from ..openapi import CATEGORY, LEGACY_CATEGORY, MODEL_NAME, V1_CATEGORY, cached_docs
from ..responses import read_model, respond, respond_file
from ..view import Body, FileBody, ReadModel
from ..wire import TextGenerationQuery
from .text_toolkit import toolkit_view

routes = ApiRoutes()


def _v1_body(model: ReadModel, category: Category) -> Body | FileBody | None:
    """The category's legacy view; None when it has none or it is `{}`."""
    body = model.categories[category].v1
    return None if body is None or (isinstance(body, Body) and body.data == b"{}") else body


def _found(body: Body | FileBody | None, missing: str) -> Body | FileBody:
    """`body`; a 404 saying `missing` when there is none."""
    if body is None:
        raise NotFound(missing)
    return body


@routes.api("GET", "/text_generation", versions=("v1",))
@cached_docs(
    "The text_generation category in the legacy db.json shape",
    LEGACY_CATEGORY,
    "The legacy text models.",
    description="Three entries per model (plain and the two backend variants).",
    tags=("v1",),
    query=TextGenerationQuery,
    errors={404: "No text models.", 422: "include_group is not a boolean."},
)
async def get_v1_text_generation(request: web.Request) -> web.StreamResponse:
    """The db.json view; with `include_group`, each entry's group and group summary too."""
    model = read_model(request)
    query = read_query(request, TextGenerationQuery)
    body: Body | FileBody = _found(
        _v1_body(model, Category.text_generation), "Text generation models not found or empty"
    )
    if query.include_group:
        # built once per snapshot, off the event loop (1.7 MB of JSON)
        toolkit = await toolkit_view(request, model)
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, toolkit.v1_grouped)
    return respond_file(request, model, body)


@routes.api("GET", "/{category}", versions=("v1",))
@cached_docs(
    "A category in the legacy format",
    LEGACY_CATEGORY,
    "The legacy category; `{}` for lora and ti.",
    tags=("v1",),
    path={"category": V1_CATEGORY},
    errors={
        404: "The category has no legacy view, or it is empty.",
        422: "Not a category (string detail).",
    },
)
async def get_v1_category(request: web.Request) -> web.StreamResponse:
    model = read_model(request)
    category = v1_category(request.match_info["category"])
    if category in (Category.lora, Category.ti):
        return respond(request, model, model.empty_object)
    missing = f"Model category '{category.value}' not found or is empty"
    return respond_file(request, model, _found(_v1_body(model, category), missing))


@routes.api("GET", "/{category}/model/{model_name:.+}")
@cached_docs(
    "One v2 record",
    any_record_schema(),
    "The record.",
    description="The record's schema is the one of the category in the path "
    "(`record_type` tells which).",
    tags=("v2",),
    path={"category": CATEGORY, "model_name": MODEL_NAME},
    errors={404: "No such model in the category.", 422: "Not a category."},
)
async def get_model(request: web.Request) -> web.StreamResponse:
    model = read_model(request)
    category = v2_category(request.match_info["category"])
    name = request.match_info["model_name"]
    missing = f"Model '{name}' not found in category '{category.value}'"
    return respond_file(
        request, model, _found(model.categories[category].models.get(name), missing)
    )


@routes.api("GET", "/{category}")
@cached_docs(
    "A whole v2 category: model name → record",
    any_category_schema(),
    "The category.",
    description="Records as stored, in dataset order; `{}` for empty categories.",
    tags=("v2",),
    path={"category": CATEGORY},
    errors={422: "Not a category."},
)
async def get_v2_category(request: web.Request) -> web.StreamResponse:
    model = read_model(request)
    category = v2_category(request.match_info["category"])
    return respond_file(request, model, model.categories[category].v2)
