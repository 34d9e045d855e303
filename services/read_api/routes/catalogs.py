"""Catalog reads: image baselines, licensing, text guidance, all from the snapshot."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from horde_model_records import Category
from horde_model_records.licensing import LicensedAssetKind
from horde_model_records.text_claims import guidance_summary
from shared.errors import InvalidInput, NotFound, validation_item
from shared.http import ApiRoutes
from shared.openapi import docs
from shared.wire import read_query

from ..catalog_view import CatalogView, page
from ..catalog_wire import (
    AssetsQuery,
    AssignmentsQuery,
    GuidanceModelQuery,
    LicensesQuery,
    ProfilesQuery,
)
from ..categories import v2_category
from ..openapi import CATEGORY, MODEL_NAME, cached_docs
from ..responses import read_model, respond, respond_json
from ..view import Body, ReadModel, dumps

routes = ApiRoutes()

_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_BASELINES = "/image_generation/baselines"
_LICENSING = "/licensing"
_GUIDANCE = "/text_generation/guidance"


def _respond_revision(
    request: web.Request, model: ReadModel, body: Body, kind: str, revision: int
) -> web.StreamResponse:
    """A catalog read tagged by the catalog's revision (`W/"<kind>-<revision>"`, as upstream)."""
    etag = f'W/"{kind}-{revision}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=60",
        "X-Snapshot-Id": str(model.snapshot_id),
    }
    inm = request.headers.get("If-None-Match", "")
    if any(t.strip() in (etag, etag[2:], "*") for t in inm.split(",") if t.strip()):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body.data, headers=headers, content_type="application/json")


def _catalogs(request: web.Request) -> tuple[ReadModel, CatalogView]:
    model = read_model(request)
    return model, model.catalogs


# --- image baselines ---------------------------------------------------------------------------


@routes.api("GET", _BASELINES)
@docs(
    "The image baseline list (redirect)",
    tags=("catalogs",),
    responses={307: {"description": "To the same path with a trailing slash."}},
)
async def redirect_baselines(request: web.Request) -> web.StreamResponse:
    raise web.HTTPTemporaryRedirect(request.path + "/")


@routes.api("GET", _BASELINES + "/")
@cached_docs(
    "Every image baseline, by name",
    _OBJECT,
    '`{"items": [baseline...], "total": n, "metadata": {schema_version, revision, updated_at}}`.',
    tags=("catalogs",),
    description="Without the trailing slash: a 307 to this path.",
)
async def list_baselines(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    return _respond_revision(
        request, model, cat.baselines_list, "image-baselines", cat.baselines_revision
    )


@routes.api("GET", _BASELINES + "/export")
@cached_docs(
    "The image baseline catalog",
    _OBJECT,
    "`{metadata, baselines: {name: baseline}}` in stored order: what AI-Horde prices and "
    "schedules with, and what workers merge into their baseline vocabulary.",
    tags=("catalogs",),
)
async def export_baselines(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    return _respond_revision(
        request, model, cat.baselines_export, "image-baselines", cat.baselines_revision
    )


@routes.api("GET", _BASELINES + "/{baseline_name}")
@cached_docs(
    "One image baseline",
    _OBJECT,
    "The baseline: capabilities, horde_policy, alternative names, metadata.",
    tags=("catalogs",),
    errors={404: "No baseline has exactly this name (alternative names do not resolve)."},
)
async def get_baseline(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    name = request.match_info["baseline_name"]
    body = cat.baselines.get(name)
    if body is None:
        raise NotFound(f"Baseline '{name}' not found.")
    return _respond_revision(request, model, body, "image-baselines", cat.baselines_revision)


# --- licensing ---------------------------------------------------------------------------------


@routes.api("GET", _LICENSING + "/licenses")
@cached_docs(
    "Licence definitions, by case-folded id",
    _OBJECT,
    '`{"items", "total", "offset", "limit", "metadata"}`.',
    tags=("licensing",),
    query=LicensesQuery,
    errors={422: "A bad parameter value."},
)
async def list_licenses(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    query = read_query(request, LicensesQuery)
    items = [d for d in cat.licenses if query.include_deprecated or not d["deprecated"]]
    return respond_json(model, page(items, query.offset, query.limit, cat.licensing_metadata))


@routes.api("GET", _LICENSING + "/licenses/{license_id}")
@cached_docs(
    "One licence definition",
    _OBJECT,
    "The definition, nulls included.",
    tags=("licensing",),
    errors={404: "No such definition."},
)
async def get_license(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    license_id = request.match_info["license_id"]
    body = cat.license_bodies.get(license_id)
    if body is None:
        raise NotFound(f"License definition not found: {license_id}")
    return respond(request, model, body)


@routes.api("GET", _LICENSING + "/assets")
@cached_docs(
    "Licensed assets: every model and every non-model asset",
    _OBJECT,
    '`{"items", "total", "offset", "limit", "metadata"}`, sorted by case-folded '
    "(asset_kind, asset_identifier); filters AND together.",
    tags=("licensing",),
    query=AssetsQuery,
    errors={422: "A bad parameter value."},
)
async def list_assets(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    q = read_query(request, AssetsQuery)
    needle = None if q.name_contains is None else q.name_contains.casefold()
    items = [
        v
        for v in cat.assets
        if (q.asset_kind is None or v["asset_kind"] == q.asset_kind)
        and (q.category is None or v["category"] == q.category.value)
        and (q.license_id is None or q.license_id in v["licensing"]["license_ids"])
        and (q.commercial_use is None or v["licensing"]["commercial_use"] == q.commercial_use)
        and (q.redistribution is None or v["licensing"]["redistribution"] == q.redistribution)
        and (needle is None or needle in v["display_name"].casefold())
    ]
    return respond_json(model, page(items, q.offset, q.limit, cat.licensing_metadata))


@routes.api("GET", _LICENSING + "/assets/{asset_kind}/{asset_identifier:.+}")
@cached_docs(
    "One non-model licensed asset",
    _OBJECT,
    "The asset as stored.",
    tags=("licensing",),
    errors={
        404: "No such asset.",
        422: "asset_kind is not software_component, custom_node or other.",
    },
)
async def get_asset(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    kind = request.match_info["asset_kind"]
    identifier = request.match_info["asset_identifier"]
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
    asset = cat.catalogs.licensing["assets"]["records"].get(f"{kind}:{identifier}")
    if asset is None:
        raise NotFound(f"Licensed asset not found: {kind}:{identifier}")
    return respond(request, model, Body.of(dumps(asset)))


@routes.api("GET", _LICENSING + "/models/{category}/{model_name:.+}")
@cached_docs(
    "A model's licensing, as an asset view",
    _OBJECT,
    "The model's conclusion (NOASSERTION when unreviewed) with links to its definitions.",
    tags=("licensing",),
    path={"category": CATEGORY, "model_name": MODEL_NAME},
    errors={404: "No such model.", 422: "Not a category."},
)
async def get_model_licensing(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    category = v2_category(request.match_info["category"])
    name = request.match_info["model_name"]
    view = cat.model_assets.get((category.value, name))
    if view is None:
        # another spelling of the name (a v1 key) reads as the record it names
        body = model.categories[category].models.get(name)
        if body is not None:
            view = cat.model_assets.get((category.value, json.loads(body.data)["name"]))
    if view is None:
        raise NotFound(f"Model not found: {category.value}/{name}")
    return respond(request, model, Body.of(dumps(view)))


@routes.api("GET", _LICENSING + "/summary")
@cached_docs(
    "Counts of assets per permission status and per licence",
    _OBJECT,
    '`{"total_assets", "commercial_use", "redistribution", "licenses"}`.',
    tags=("licensing",),
)
async def get_licensing_summary(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    return respond(request, model, cat.licensing_summary)


@routes.api("GET", _LICENSING + "/export")
@cached_docs(
    "Everything about licensing in one document",
    _OBJECT,
    '`{"schema_version": 1, "metadata", "licenses", "assets", "summary"}`: what workers and '
    "report generators read.",
    tags=("licensing",),
)
async def export_licensing(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    return respond(request, model, cat.licensing_export)


# --- text guidance -----------------------------------------------------------------------------


def _guidance(cat: CatalogView) -> dict[str, Any]:
    return cat.catalogs.guidance


@routes.api("GET", _GUIDANCE + "/profiles")
@cached_docs(
    "Guidance profiles, by id",
    _OBJECT,
    '`{"items": [{profile_id, kind, display_name, summary, aliases, deprecated, '
    'assigned_model_count}], "total", "metadata"}`.',
    tags=("guidance",),
    query=ProfilesQuery,
    errors={422: "A bad parameter value."},
)
async def list_profiles(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    query = read_query(request, ProfilesQuery)
    guidance = _guidance(cat)
    counts: dict[str, int] = {}
    for a in guidance["assignments"].values():
        for pid in [a["primary_profile_id"], *a.get("supplemental_profile_ids", [])]:
            counts[pid] = counts.get(pid, 0) + 1
    items = [
        {
            "profile_id": p["profile_id"],
            "kind": p["kind"],
            "display_name": p["display_name"],
            "summary": p["summary"],
            "aliases": p.get("aliases", []),
            "deprecated": p.get("deprecated", False),
            "assigned_model_count": counts.get(p["profile_id"], 0),
        }
        for _, p in sorted(guidance["profiles"].items())
        if query.include_deprecated or not p.get("deprecated", False)
    ]
    body = {"items": items, "total": len(items), "metadata": guidance["metadata"]}
    return _respond_revision(
        request, model, Body.of(dumps(body)), "text-guidance", cat.guidance_revision
    )


@routes.api("GET", _GUIDANCE + "/profiles/{profile_id}")
@cached_docs(
    "One guidance profile (deprecated ones too)",
    _OBJECT,
    "The full profile.",
    tags=("guidance",),
    errors={404: "No such profile."},
)
async def get_profile(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    profile_id = request.match_info["profile_id"]
    profile = _guidance(cat)["profiles"].get(profile_id)
    if profile is None:
        raise NotFound(f"Guidance profile '{profile_id}' not found.")
    return _respond_revision(
        request, model, Body.of(dumps(profile)), "text-guidance", cat.guidance_revision
    )


@routes.api("GET", _GUIDANCE + "/assignments")
@cached_docs(
    "Guidance assignments, by model name",
    _OBJECT,
    '`{"items", "total", "metadata"}`.',
    tags=("guidance",),
    query=AssignmentsQuery,
    errors={422: "A bad parameter value."},
)
async def list_assignments(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    q = read_query(request, AssignmentsQuery)
    guidance = _guidance(cat)
    items = [
        a
        for _, a in sorted(guidance["assignments"].items())
        if (q.model_name is None or a["model_name"] == q.model_name)
        and (
            q.profile_id is None
            or q.profile_id == a["primary_profile_id"]
            or q.profile_id in a.get("supplemental_profile_ids", [])
        )
    ]
    body = {"items": items, "total": len(items), "metadata": guidance["metadata"]}
    return _respond_revision(
        request, model, Body.of(dumps(body)), "text-guidance", cat.guidance_revision
    )


@routes.api("GET", _GUIDANCE + "/model")
@cached_docs(
    "The guidance of one text model",
    _OBJECT,
    "`{model_name, summary, primary_profile, supplemental_profiles, legacy_instruct_format, "
    "catalog_metadata}`.",
    tags=("guidance",),
    query=GuidanceModelQuery,
    errors={404: "No stored text model has exactly this name.", 422: "name is missing."},
)
async def get_model_guidance(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    name = read_query(request, GuidanceModelQuery).name
    body = model.categories[Category.text_generation].models.get(name)
    record = None if body is None else json.loads(body.data)
    if record is None or record["name"] != name:
        raise NotFound(f"Text model '{name}' not found.")
    guidance = _guidance(cat)
    assignment = guidance["assignments"].get(name)
    instruct = record.get("instruct_format")
    profiles = guidance["profiles"]
    resolved = {
        "model_name": name,
        "summary": guidance_summary(assignment, instruct),
        "primary_profile": None
        if assignment is None
        else profiles.get(assignment["primary_profile_id"]),
        "supplemental_profiles": []
        if assignment is None
        else [profiles[p] for p in assignment.get("supplemental_profile_ids", []) if p in profiles],
        "legacy_instruct_format": instruct,
        "catalog_metadata": guidance["metadata"],
    }
    return respond(request, model, Body.of(dumps(resolved)))


@routes.api("GET", _GUIDANCE + "/export")
@cached_docs(
    "The text guidance catalog",
    _OBJECT,
    "`{metadata, profiles, assignments}`.",
    tags=("guidance",),
)
async def export_guidance(request: web.Request) -> web.StreamResponse:
    model, cat = _catalogs(request)
    return _respond_revision(
        request, model, cat.guidance_export, "text-guidance", cat.guidance_revision
    )
