"""Change-detection metadata, v1 (legacy view) and v2."""

from __future__ import annotations

from aiohttp import web

from shared.errors import Unavailable

from ..categories import v2_category
from ..keys import read_config_key
from ..responses import read_model, respond

routes = web.RouteTableDef()

_V2 = "/api/model_references/v2/metadata"
_V1 = "/api/model_references/v1/metadata"


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
    return "v1" if request.path.startswith(_V1) else "v2"


@routes.get(_V2 + "/last_updated")
@routes.get(_V1 + "/last_updated")
async def get_last_updated(request: web.Request) -> web.Response:
    version = _version(request)
    model = read_model(request)
    _guard(request, version, last_updated=True)
    return respond(
        request, model, model.v2_last_updated if version == "v2" else model.v1_last_updated
    )


@routes.get(_V2 + "/metadata")
@routes.get(_V1 + "/metadata")
async def list_metadata(request: web.Request) -> web.Response:
    version = _version(request)
    model = read_model(request)
    _guard(request, version)
    return respond(
        request, model, model.v2_metadata_all if version == "v2" else model.v1_metadata_all
    )


@routes.get(_V2 + "/{category}")
@routes.get(_V1 + "/{category}")
async def get_category_metadata(request: web.Request) -> web.Response:
    model = read_model(request)
    version = _version(request)
    _guard(request, version)
    category = v2_category(request.match_info["category"], loc="category")
    return respond(request, model, model.categories[category].metadata_bodies[version])


@routes.get(_V2 + "/{category}/last_updated")
@routes.get(_V1 + "/{category}/last_updated")
async def get_category_last_updated(request: web.Request) -> web.Response:
    model = read_model(request)
    version = _version(request)
    _guard(request, version)
    category = v2_category(request.match_info["category"], loc="category")
    body = model.categories[category].metadata_bodies[f"{version}/last_updated"]
    return respond(request, model, body)
