"""Search within one category and across all of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from shared.http import ApiRoutes, Handler
from shared.openapi import docs
from shared.wire import read_query

from .. import search
from ..categories import search_category
from ..openapi import CATEGORY, NO_SNAPSHOT, SNAPSHOT_HEADER
from ..responses import read_model, respond_json
from ..wire import SearchAllQuery, SearchQuery, SearchResponse

routes = ApiRoutes()

_ERRORS = {
    400: "An unknown parameter, a filter the record type lacks, or a bad sort_by, backend or "
    "source.",
    422: "A bad parameter value, or (per category) an unknown category.",
    503: NO_SNAPSHOT,
}


def _search_docs(query: type, **fields: Any) -> Callable[[Handler], Handler]:
    """A search operation: `query` in, one page of matches out; the summary and description
    are the handler's docstring."""
    return docs(
        tags=("search",),
        query=query,
        answer=SearchResponse,
        answer_description="One page of matches.",
        answer_headers=SNAPSHOT_HEADER,
        errors=_ERRORS,
        **fields,
    )


@routes.api("GET", "/search")
@_search_docs(SearchAllQuery)
async def search_models(request: web.Request) -> web.Response:
    """Search every category but lora and ti

    Filters AND together, then names are de-duplicated across categories (first wins), sorted
    (stable) and paged. Filters never fail on a record type.
    """
    model = read_model(request)
    query = read_query(request, SearchAllQuery, strict=True)
    await search.aprepare(model, None, query)
    return respond_json(model, search.search_all(model, query))


@routes.api("GET", "/{category}/search")
@_search_docs(SearchQuery, path={"category": CATEGORY})
async def search_category_models(request: web.Request) -> web.Response:
    """Search one category

    Filters AND together, then names are de-duplicated, sorted (stable) and paged. A filter on a
    field the category's record type lacks is a 400. Results are records of the category in the
    path.
    """
    model = read_model(request)
    category = search_category(request.match_info["category"])
    query = read_query(request, SearchQuery, strict=True)
    await search.aprepare(model, category, query)
    return respond_json(model, search.search_category(model, category, query))
