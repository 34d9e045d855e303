"""Licensing writes: licence definitions and non-model assets, direct and audited, by editors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from horde_model_records.licensing import LicensedAsset, LicensedAssetKind, LicenseDefinition
from shared.dataset import Dataset
from shared.errors import InvalidInput, validation_item
from shared.http import ApiRoutes, Handler
from shared.openapi import docs
from shared.wire import read_json, respond

from .. import licensing
from ..auth import api_key_of
from ..guards import aidentify, loaded_queue, require_primary
from ..openapi import REPLICA, SECURITY, authenticated

routes = ApiRoutes()

L = "/licensing"
_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def _write_docs(
    summary: str, status: int, body: bool, errors: dict[int, str]
) -> Callable[[Handler], Handler]:
    return docs(
        summary,
        tags=("licensing",),
        security=SECURITY,
        body=_OBJECT if body else None,
        answer=_OBJECT if status != 204 else None,
        status=status,
        answer_description="The record as stored, server-owned metadata stamped."
        if status != 204
        else "Deleted.",
        errors={**authenticated("license_editor", REPLICA), **errors},
    )


async def _editor_write(request: web.Request, write: Any) -> Any:
    """REPLICA, then the editor's key, then the write (store errors 404/409/422)."""
    require_primary(request)
    who = await aidentify(request, "license_editor")
    queue = loaded_queue(request)
    return await queue.alicensing_write(
        who, lambda data, now, dataset: write(data, now, who.user_id, dataset)
    )


async def _definition_body(request: web.Request) -> Any:
    body = await read_json(request)
    definition = licensing.structure_body(body, LicenseDefinition, ["body"])
    licensing.check_license_id(definition.license_id)
    return body


def _asset_key(request: web.Request) -> str:
    kind = request.match_info["asset_kind"]
    if kind not in {k.value for k in LicensedAssetKind}:
        raise InvalidInput(
            [
                validation_item(
                    "enum",
                    ["path", "asset_kind"],
                    "Input should be 'software_component', 'custom_node' or 'other'",
                    kind,
                )
            ]
        )
    return f"{kind}:{request.match_info['asset_identifier']}"


def _models(dataset: Dataset) -> list[Any]:
    """Every model of the dataset the write runs on (the live one, under the queue's lock)."""
    return [r for data in dataset.categories.values() for r in data.records.values()]


_DEF_ERRORS = {422: "A malformed definition or licence id."}


@routes.api("POST", L + "/licenses")
@_write_docs("Add a licence definition", 201, True, {**_DEF_ERRORS, 409: "The id exists."})
async def create_license(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    body = await _definition_body(request)
    written = await _editor_write(
        request,
        lambda data, now, editor, dataset: licensing.write_definition(
            data, "create", None, body, editor, now, _models(dataset)
        ),
    )
    return respond(written, status=201)


@routes.api("PUT", L + "/licenses/{license_id}")
@_write_docs(
    "Replace a licence definition",
    200,
    True,
    {**_DEF_ERRORS, 400: "Path and body ids differ.", 404: "No such definition."},
)
async def replace_license(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    body = await _definition_body(request)
    path_id = request.match_info["license_id"]
    written = await _editor_write(
        request,
        lambda data, now, editor, dataset: licensing.write_definition(
            data, "update", path_id, body, editor, now, _models(dataset)
        ),
    )
    return respond(written)


@routes.api("DELETE", L + "/licenses/{license_id}")
@_write_docs(
    "Delete a licence definition",
    204,
    False,
    {404: "No such definition.", 409: "An asset or a model still references it."},
)
async def delete_license(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    path_id = request.match_info["license_id"]
    await _editor_write(
        request,
        lambda data, now, editor, dataset: licensing.write_definition(
            data, "delete", path_id, None, editor, now, _models(dataset)
        ),
    )
    return web.Response(status=204)


_ASSET_ERRORS = {422: "A malformed asset, or its licensing names unknown or deprecated ids."}


async def _asset_body(request: web.Request) -> Any:
    body = await read_json(request)
    licensing.structure_body(body, LicensedAsset, ["body"])
    return body


@routes.api("POST", L + "/assets")
@_write_docs("Add a non-model licensed asset", 201, True, {**_ASSET_ERRORS, 409: "It exists."})
async def create_asset(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    body = await _asset_body(request)
    written = await _editor_write(
        request,
        lambda data, now, editor, _: licensing.write_asset(data, "create", None, body, editor, now),
    )
    return respond(written, status=201)


@routes.api("PUT", L + "/assets/{asset_kind}/{asset_identifier:.+}")
@_write_docs(
    "Replace a non-model licensed asset",
    200,
    True,
    {**_ASSET_ERRORS, 400: "Path and body identities differ.", 404: "No such asset."},
)
async def replace_asset(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    key = _asset_key(request)
    body = await _asset_body(request)
    written = await _editor_write(
        request,
        lambda data, now, editor, _: licensing.write_asset(data, "update", key, body, editor, now),
    )
    return respond(written)


@routes.api("DELETE", L + "/assets/{asset_kind}/{asset_identifier:.+}")
@_write_docs(
    "Delete a non-model licensed asset",
    204,
    False,
    {404: "No such asset.", 422: "Not one of the three asset kinds."},
)
async def delete_asset(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    key = _asset_key(request)
    await _editor_write(
        request,
        lambda data, now, editor, _: licensing.write_asset(data, "delete", key, None, editor, now),
    )
    return web.Response(status=204)
