"""Change-detection metadata, v1 (legacy view) and v2."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from shared.errors import Unavailable
from shared.http import API_ROOT, ApiRoutes, Handler
from shared.openapi import JsonDict, ref

from ..categories import v2_category
from ..keys import read_config_key
from ..openapi import CATEGORY, cached_docs
from ..responses import read_model, respond
from ..wire import CategoryLastUpdated, LastUpdated

routes = ApiRoutes()


def _guard(request: web.Request, version: str, last_updated: bool = False) -> None:
    config = request.config_dict[read_config_key]
    if config.mode == "REPLICA":
        raise Unavailable("Metadata tracking is not supported in REPLICA mode")
    if not last_updated:
        return
    if version == "v2" and config.canonical_format != "v2":
        raise Unavailable(
            "This endpoint is only available when canonical_format='v2'. "
            f"Current setting: canonical_format='{config.canonical_format}'"
        )
    if version == "v1" and config.canonical_format != "legacy":
        raise Unavailable(
            "This endpoint is only available when canonical_format='LEGACY'. "
            f"Current setting: canonical_format='{config.canonical_format}'"
        )


def _version(request: web.Request) -> str:
    return "v1" if request.path.startswith(f"{API_ROOT}/v1/") else "v2"


_BOTH = ("v2", "v1")
_VERSIONS = "Under /v2/metadata for v2 records, under /v1/metadata for the legacy view."
_UNAVAILABLE = "Metadata is unavailable: REPLICA mode (or no snapshot yet)."
_NOT_A_CATEGORY = "Not a category."


@routes.api("GET", "/metadata/last_updated", versions=_BOTH)
@cached_docs(
    "When any category last changed",
    LastUpdated,
    "The latest change.",
    description=f"{_VERSIONS} Only for the canonical format's version.",
    tags=("metadata",),
    errors={
        503: "Metadata is unavailable: REPLICA mode, or the path's version is not the canonical "
        "format (or no snapshot yet)."
    },
)
async def get_last_updated(request: web.Request) -> web.Response:
    version = _version(request)
    model = read_model(request)
    _guard(request, version, last_updated=True)
    return respond(
        request, model, model.v2_last_updated if version == "v2" else model.v1_last_updated
    )


@routes.api("GET", "/metadata/metadata", versions=_BOTH)
@cached_docs(
    "Change-detection metadata of every category",
    {
        "type": "object",
        "description": "Category → its metadata, for all 15 categories.",
        "additionalProperties": ref("CategoryMetadata"),
    },
    "All metadata.",
    description=_VERSIONS,
    tags=("metadata",),
    errors={503: _UNAVAILABLE},
)
async def list_metadata(request: web.Request) -> web.Response:
    version = _version(request)
    model = read_model(request)
    _guard(request, version)
    return respond(
        request, model, model.v2_metadata_all if version == "v2" else model.v1_metadata_all
    )


def _category_docs(
    summary: str, answer: type | JsonDict, answer_description: str
) -> Callable[[Handler], Handler]:
    return cached_docs(
        summary,
        answer,
        answer_description,
        description=_VERSIONS,
        tags=("metadata",),
        path={"category": CATEGORY},
        errors={422: _NOT_A_CATEGORY, 503: _UNAVAILABLE},
    )


def _respond_category(request: web.Request, suffix: str = "") -> web.Response:
    """The path category's metadata body for the path's version (`suffix`: which body)."""
    model = read_model(request)
    version = _version(request)
    _guard(request, version)
    category = v2_category(request.match_info["category"], loc="category")
    return respond(request, model, model.categories[category].metadata_bodies[version + suffix])


@routes.api("GET", "/metadata/{category}", versions=_BOTH)
@_category_docs(
    "Change-detection metadata of one category", ref("CategoryMetadata"), "The metadata."
)
async def get_category_metadata(request: web.Request) -> web.Response:
    return _respond_category(request)


@routes.api("GET", "/metadata/{category}/last_updated", versions=_BOTH)
@_category_docs(
    "When one category last changed", CategoryLastUpdated, "The category's last change."
)
async def get_category_last_updated(request: web.Request) -> web.Response:
    return _respond_category(request, "/last_updated")
