"""The catalogs of a loaded snapshot, prepared for reading (once per snapshot, off the event loop).

Image baselines and text guidance are served as stored; licensing adds a view of every model
(its record's conclusion, or the NOASSERTION default) beside the non-model assets, a summary and an
export of all of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from attrs import frozen

from horde_model_records import Category
from horde_model_records.licensing import (
    UNKNOWN_LICENSING_JSON,
    LicenseAssignment,
    ModelLicensing,
    PermissionStatus,
)
from horde_model_records.serde import catalog_converter
from shared.catalogs import LICENSING_SCHEMA_VERSION, Catalogs, catalogs_from_snapshot
from shared.snapshot import Snapshot

from .view import Body, CategoryView, dumps

Json = dict[str, Any]

#: where a definition is read, relative to the API root (as upstream links them)
LICENSE_PATH = "/model_references/v2/licensing/licenses/"


def _full_licensing(licensing: Mapping[str, Any]) -> Json:
    """A conclusion in the views' shape: every field, nulls included, `files` always there."""
    model = catalog_converter.structure(
        {"files": {}, **{k: v for k, v in licensing.items()}}, ModelLicensing
    )
    out: Json = catalog_converter.unstructure(model)
    return out


def _definition_urls(licensing: Json) -> Json:
    ids = set(licensing["license_ids"])
    for assignment in licensing["files"].values():
        ids.update(assignment["license_ids"])
    return {i: LICENSE_PATH + quote(i, safe="") for i in sorted(ids)}


def _view(
    *,
    kind: str,
    identifier: str,
    display_name: str,
    category: str | None,
    licensing: Json,
    source_url: str | None = None,
    version: str | None = None,
    locations: list[str] | None = None,
    related: list[str] | None = None,
    notes: str | None = None,
    metadata: Json | None = None,
) -> Json:
    return {
        "asset_kind": kind,
        "asset_identifier": identifier,
        "display_name": display_name,
        "category": category,
        "source_url": source_url,
        "version": version,
        "locations": locations or [],
        "related_assets": related or [],
        "licensing": licensing,
        "definition_urls": _definition_urls(licensing),
        "notes": notes,
        "metadata": metadata,
    }


def _model_views(categories: Mapping[Category, CategoryView]) -> dict[tuple[str, str], Json]:
    """(category, model name) -> the model's asset view, for every record of every category."""
    default = _full_licensing(UNKNOWN_LICENSING_JSON)
    views: dict[tuple[str, str], Json] = {}
    for category in sorted(categories, key=lambda c: c.value):
        view = categories[category]
        for candidate in sorted(view.candidates, key=lambda c: c.name.casefold()):
            record = candidate.record
            licensing = record.get("licensing")
            if licensing is None or licensing == UNKNOWN_LICENSING_JSON:
                full = default
            else:
                full = _full_licensing(licensing)
            urls = [d.get("file_url") for d in record.get("config", {}).get("download", [])]
            views[(category.value, candidate.name)] = _view(
                kind="model",
                identifier=f"{category.value}:{candidate.name}",
                display_name=candidate.name,
                category=category.value,
                source_url=next((u for u in urls if u), None),
                licensing=full,
            )
    return views


def _asset_view(asset: Json) -> Json:
    assignment = catalog_converter.structure(asset["licensing"], LicenseAssignment)
    licensing = _full_licensing(catalog_converter.unstructure(assignment))
    return _view(
        kind=asset["asset_kind"],
        identifier=asset["asset_identifier"],
        display_name=asset["display_name"],
        category=None,
        source_url=asset.get("source_url"),
        version=asset.get("version"),
        locations=asset.get("locations"),
        related=asset.get("related_assets"),
        licensing=licensing,
        notes=asset.get("notes"),
        metadata=asset.get("metadata"),
    )


def summarize(views: list[Json]) -> Json:
    """Counts over asset views: per permission status (all four) and per top-level licence id."""
    statuses = [s.value for s in PermissionStatus]
    commercial = dict.fromkeys(statuses, 0)
    redistribution = dict.fromkeys(statuses, 0)
    licenses: dict[str, int] = {}
    for view in views:
        commercial[view["licensing"]["commercial_use"]] += 1
        redistribution[view["licensing"]["redistribution"]] += 1
        for license_id in view["licensing"]["license_ids"]:
            licenses[license_id] = licenses.get(license_id, 0) + 1
    return {
        "total_assets": len(views),
        "commercial_use": commercial,
        "redistribution": redistribution,
        "licenses": dict(sorted(licenses.items())),
    }


def licensing_metadata(licensing: Json) -> Json:
    """The combined metadata of the definitions and assets datasets."""
    parts = (licensing["licenses"], licensing["assets"])
    return {
        "schema_version": LICENSING_SCHEMA_VERSION,
        "revision": max(p["revision"] for p in parts),
        "updated_at": max(p["updated_at"] or 0 for p in parts) or None,
    }


@frozen
class CatalogView:
    """Everything the catalog routes answer from."""

    catalogs: Catalogs
    # image baselines
    baselines_revision: int
    baselines_list: Body
    baselines_export: Body
    baselines: Mapping[str, Body]
    # licensing
    licensing_metadata: Json
    licenses: list[Json]  # every definition, sorted by case-folded id
    license_bodies: Mapping[str, Body]
    assets: list[Json]  # every asset view (models too), sorted by case-folded (kind, identifier)
    model_assets: Mapping[tuple[str, str], Json]
    licensing_summary: Body
    licensing_export: Body
    # text guidance
    guidance_revision: int
    guidance_export: Body

    @classmethod
    def build(cls, snapshot: Snapshot, categories: Mapping[Category, CategoryView]) -> CatalogView:
        catalogs = catalogs_from_snapshot(snapshot)
        baselines = catalogs.baselines
        items = [baselines["baselines"][n] for n in sorted(baselines["baselines"])]
        licensing = catalogs.licensing
        meta = licensing_metadata(licensing)
        licenses = sorted(
            licensing["licenses"]["records"].values(), key=lambda d: d["license_id"].casefold()
        )
        model_views = _model_views(categories)
        assets = [_asset_view(a) for a in licensing["assets"]["records"].values()]
        assets += model_views.values()
        assets.sort(key=lambda v: (v["asset_kind"].casefold(), v["asset_identifier"].casefold()))
        summary = summarize(assets)
        export = {
            "schema_version": LICENSING_SCHEMA_VERSION,
            "metadata": meta,
            "licenses": licenses,
            "assets": assets,
            "summary": summary,
        }
        return cls(
            catalogs=catalogs,
            baselines_revision=int(baselines["metadata"]["revision"]),
            baselines_list=Body.of(
                dumps({"items": items, "total": len(items), "metadata": baselines["metadata"]})
            ),
            baselines_export=Body.of(dumps(baselines)),
            baselines={name: Body.of(dumps(rec)) for name, rec in baselines["baselines"].items()},
            licensing_metadata=meta,
            licenses=licenses,
            license_bodies={d["license_id"]: Body.of(dumps(d)) for d in licenses},
            assets=assets,
            model_assets=model_views,
            licensing_summary=Body.of(dumps(summary)),
            licensing_export=Body.of(dumps(export)),
            guidance_revision=int(catalogs.guidance["metadata"]["revision"]),
            guidance_export=Body.of(dumps(catalogs.guidance)),
        )


def page(items: list[Json], offset: int, limit: int, metadata: Json) -> bytes:
    """A page envelope: `items` after filters, their total, the paging, the catalog metadata."""
    return json.dumps(
        {
            "items": items[offset : offset + limit],
            "total": len(items),
            "offset": offset,
            "limit": limit,
            "metadata": metadata,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
