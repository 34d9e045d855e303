"""Catalog reads on the real data: image baselines, licensing, text guidance, the licensing search
filters; a read replica serves all of it from the snapshot alone."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import Category, converter
from horde_model_records.licensing import ModelLicensing
from shared.dataset import Dataset, publish_dataset, upsert_record
from shared.snapshot import SnapshotStore

V2 = "/api/model_references/v2"
B = f"{V2}/image_generation/baselines"
L = f"{V2}/licensing"
G = f"{V2}/text_generation/guidance"

MIT = {
    "license_expression": "MIT",
    "license_ids": ["MIT"],
    "commercial_use": "allowed",
    "redistribution": "allowed_with_conditions",
    "obligations": ["include_license"],
    "files": {},
}


async def json_of(client: TestClient, path: str, status: int = 200) -> Any:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == status, await resp.text()
    return await resp.json()


# --- image baselines -------------------------------------------------------------------------------


async def test_baseline_list_has_the_13_by_name(client: TestClient) -> None:
    """The list holds the 13 shipped baselines sorted by name, with the catalog's metadata."""
    body = await json_of(client, f"{B}/")
    names = [b["name"] for b in body["items"]]
    assert names == sorted(names) and body["total"] == 13
    assert {"krea2_turbo", "anima"} <= set(names)
    assert body["metadata"] == {"schema_version": 1, "revision": 1, "updated_at": None}


async def test_baseline_list_without_slash_redirects(client: TestClient) -> None:
    """GET /baselines is a 307 to /baselines/."""
    resp = await client.get(B, allow_redirects=False)
    assert resp.status == 307
    assert resp.headers["Location"] == f"{B}/"


async def test_baseline_export_is_the_catalog(client: TestClient) -> None:
    """The export is {metadata, baselines} in stored order, policy and capabilities included."""
    body = await json_of(client, f"{B}/export")
    assert list(body["baselines"])[:2] == ["infer", "stable_diffusion_1"]
    sdxl = body["baselines"]["stable_diffusion_xl"]
    assert sdxl["horde_policy"] == {
        "kudos": 2.0,
        "kudos_qr_code": 4.0,
        "kudos_hires": None,
        "batching": 1,
        "ttl": 1,
        "resolution_floor": 1024,
    }
    assert sdxl["alternative_names"] == ["stable diffusion xl", "SDXL", "stable_diffusion_xl"]


async def test_one_baseline_by_exact_key(client: TestClient) -> None:
    """A baseline reads by its key; an alternative name is a 404 naming it."""
    krea = await json_of(client, f"{B}/krea2_turbo")
    assert krea["display_name"] == "Krea 2 Turbo"
    assert krea["horde_policy"]["batching"] == 8
    missing = await json_of(client, f"{B}/SDXL", 404)
    assert missing == {"detail": "Baseline 'SDXL' not found."}


async def test_baseline_reads_carry_a_revision_etag(client: TestClient) -> None:
    """Baseline answers are tagged W/"image-baselines-<revision>" and honour If-None-Match."""
    resp = await client.get(f"{B}/export")
    assert resp.headers["ETag"] == 'W/"image-baselines-1"'
    again = await client.get(f"{B}/export", headers={"If-None-Match": 'W/"image-baselines-1"'})
    assert again.status == 304


# --- licensing -------------------------------------------------------------------------------------


async def test_licenses_page_sorted_with_nulls(client: TestClient) -> None:
    """16 definitions sorted by case-folded id, each with every field (nulls included)."""
    body = await json_of(client, f"{L}/licenses")
    ids = [d["license_id"] for d in body["items"]]
    assert body["total"] == 16 and ids == sorted(ids, key=str.casefold)
    mit = next(d for d in body["items"] if d["license_id"] == "MIT")
    assert mit == {
        "license_id": "MIT",
        "name": "MIT License",
        "spdx_identifier": "MIT",
        "canonical_url": "https://spdx.org/licenses/MIT.html",
        "commercial_use": "allowed",
        "redistribution": "allowed_with_conditions",
        "obligations": ["include_license"],
        "restrictions": [],
        "notes": None,
        "deprecated": False,
        "metadata": {
            "revision": 1,
            "created_at": None,
            "created_by": None,
            "updated_at": None,
            "updated_by": None,
        },
    }
    assert body["metadata"] == {"schema_version": 1, "revision": 1, "updated_at": 1782705600}


async def test_licenses_paging_and_limits(client: TestClient) -> None:
    """offset/limit page the definitions; a limit over 1000 is a 422."""
    body = await json_of(client, f"{L}/licenses?offset=2&limit=3")
    assert (len(body["items"]), body["total"], body["offset"], body["limit"]) == (3, 16, 2, 3)
    await json_of(client, f"{L}/licenses?limit=1001", 422)
    await json_of(client, f"{L}/licenses?offset=-1", 422)


async def test_one_license_and_its_404(client: TestClient) -> None:
    """A definition reads by id (LicenseRef ids too); an unknown id is a 404 naming it."""
    ref = await json_of(client, f"{L}/licenses/LicenseRef-S-Lab-1.0")
    assert ref["commercial_use"] == "prohibited"
    missing = await json_of(client, f"{L}/licenses/Nope-1.0", 404)
    assert missing == {"detail": "License definition not found: Nope-1.0"}


async def test_assets_are_913_models_and_6_assets(client: TestClient) -> None:
    """The asset list holds every model and the 6 non-model assets: 919."""
    body = await json_of(client, f"{L}/assets?limit=1000")
    assert body["total"] == 919
    kinds = {a["asset_kind"] for a in body["items"]}
    assert kinds == {"custom_node", "model", "other", "software_component"}
    keys = [(a["asset_kind"].casefold(), a["asset_identifier"].casefold()) for a in body["items"]]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("query", "total"),
    [
        ("asset_kind=custom_node", 4),
        ("asset_kind=model", 913),
        ("category=image_generation", 161),
        ("license_id=Apache-2.0", 2),
        ("commercial_use=allowed", 3),
        ("redistribution=allowed_with_conditions", 6),
        ("commercial_use=unknown&category=text_generation", 719),
        ("name_contains=COMFY", 4),
    ],
)
async def test_asset_filters(client: TestClient, query: str, total: int) -> None:
    """Each filter narrows the assets; filters AND together."""
    body = await json_of(client, f"{L}/assets?{query}")
    assert body["total"] == total


async def test_asset_filter_bad_values_are_422(client: TestClient) -> None:
    """An unknown category or permission status is a 422."""
    await json_of(client, f"{L}/assets?category=nope", 422)
    await json_of(client, f"{L}/assets?commercial_use=maybe", 422)


async def test_one_asset_and_its_errors(client: TestClient) -> None:
    """An asset reads by kind and identifier; a missing one is a 404, an unknown kind a 422."""
    node = await json_of(client, f"{L}/assets/custom_node/comfyqr")
    assert node["licensing"]["license_ids"] == ["MIT"]
    missing = await json_of(client, f"{L}/assets/custom_node/nothing", 404)
    assert missing == {"detail": "Licensed asset not found: custom_node:nothing"}
    await json_of(client, f"{L}/assets/model/anything", 422)


async def test_model_licensing_view_resolves_aliases(client: TestClient) -> None:
    """A model's view names it <category>:<name>, links nothing while unreviewed, and a v1 key
    resolves to the record; an unknown model is a 404."""
    view = await json_of(client, f"{L}/models/controlnet/control_qr_sdxl")
    assert view["asset_identifier"] == "controlnet:control_qr_xl"
    assert view["licensing"]["license_expression"] == "NOASSERTION"
    assert view["definition_urls"] == {}
    assert view["source_url"].startswith("https://")
    missing = await json_of(client, f"{L}/models/controlnet/nothing", 404)
    assert missing == {"detail": "Model not found: controlnet/nothing"}
    await json_of(client, f"{L}/models/nope/x", 422)


async def test_licensing_summary_of_the_real_data(client: TestClient) -> None:
    """919 assets, 913 unknown either way, four licences in use."""
    summary = await json_of(client, f"{L}/summary")
    assert summary["total_assets"] == 919
    assert summary["commercial_use"]["unknown"] == 913
    assert summary["redistribution"]["unknown"] == 913
    assert summary["licenses"] == {"AGPL-3.0-only": 1, "Apache-2.0": 2, "GPL-3.0-only": 2, "MIT": 1}


async def test_licensing_export_holds_everything(client: TestClient) -> None:
    """The export holds all definitions, all 919 asset views and the summary."""
    export = await json_of(client, f"{L}/export")
    assert export["schema_version"] == 1
    assert len(export["licenses"]) == 16 and len(export["assets"]) == 919
    assert export["summary"]["total_assets"] == 919


# --- text guidance ---------------------------------------------------------------------------------


async def test_guidance_catalog_starts_empty(client: TestClient) -> None:
    """Profiles, assignments and the export of the empty catalog."""
    empty = {"schema_version": 1, "revision": 1, "updated_at": None}
    assert await json_of(client, f"{G}/profiles") == {"items": [], "total": 0, "metadata": empty}
    assert await json_of(client, f"{G}/assignments") == {"items": [], "total": 0, "metadata": empty}
    export = await json_of(client, f"{G}/export")
    assert export == {"metadata": empty, "profiles": {}, "assignments": {}}
    resp = await client.get(f"{G}/export")
    assert resp.headers["ETag"] == 'W/"text-guidance-1"'
    missing = await json_of(client, f"{G}/profiles/chatml", 404)
    assert missing == {"detail": "Guidance profile 'chatml' not found."}


@pytest.mark.parametrize("path", ["/profiles", "/assignments", "/export"])
async def test_guidance_lists_carry_a_revision_etag(client: TestClient, path: str) -> None:
    """Guidance lists and the export are tagged W/"text-guidance-<revision>" (spec 06 §0) and
    honour If-None-Match."""
    resp = await client.get(f"{G}{path}")
    assert resp.status == 200 and resp.headers["ETag"] == 'W/"text-guidance-1"'
    again = await client.get(f"{G}{path}", headers={"If-None-Match": 'W/"text-guidance-1"'})
    assert again.status == 304


async def test_guidance_of_one_model(client: TestClient) -> None:
    """A model with an instruct_format resolves to legacy_label; prefixed or unknown names are
    404; a missing name is a 422."""
    records = await json_of(client, f"{V2}/text_generation")
    name, record = next((n, r) for n, r in records.items() if r.get("instruct_format"))
    resolved = await json_of(client, f"{G}/model?name={name}")
    assert resolved["summary"]["status"] == "legacy_label"
    assert resolved["legacy_instruct_format"] == record["instruct_format"]
    assert resolved["primary_profile"] is None and resolved["supplemental_profiles"] == []
    missing = await json_of(client, f"{G}/model?name=aphrodite/{name}", 404)
    assert missing == {"detail": f"Text model 'aphrodite/{name}' not found."}
    await json_of(client, f"{G}/model", 422)


# --- search filters --------------------------------------------------------------------------------


@pytest.fixture
async def licensed(
    tmp_path: Path, dataset: Dataset, make_client: Callable[..., Awaitable[TestClient]]
) -> TestClient:
    """The real data with one image model reviewed as MIT, served by a read service."""
    record = dataset.categories[Category.image_generation].records["Deliberate"]
    reviewed = attrs.evolve(record, licensing=converter.structure(MIT, ModelLicensing))
    changed = upsert_record(dataset, Category.image_generation, reviewed, int(time.time()))
    publish_dataset(SnapshotStore(tmp_path / "snapshots"), changed)
    return await make_client(tmp_path)


async def test_search_by_license_id(licensed: TestClient) -> None:
    """license_id keeps records whose model-level ids hold it; unreviewed ones never match."""
    page = await json_of(licensed, f"{V2}/image_generation/search?license_id=MIT")
    assert [r["name"] for r in page["results"]] == ["Deliberate"]
    page = await json_of(licensed, f"{V2}/search?license_id=MIT")
    assert [r["name"] for r in page["results"]] == ["Deliberate"]
    page = await json_of(licensed, f"{V2}/search?license_id=NOASSERTION")
    assert page["total"] == 0


async def test_search_by_permissions(licensed: TestClient) -> None:
    """commercial_use and redistribution match the conclusion (unreviewed: unknown)."""
    page = await json_of(licensed, f"{V2}/image_generation/search?commercial_use=allowed")
    assert page["total"] == 1
    page = await json_of(licensed, f"{V2}/image_generation/search?redistribution=unknown")
    assert page["total"] == 160
    await json_of(licensed, f"{V2}/image_generation/search?commercial_use=maybe", 422)


async def test_a_reviewed_model_shows_in_licensing_views(licensed: TestClient) -> None:
    """The reviewed model's view links its definition and the summary counts it."""
    view = await json_of(licensed, f"{L}/models/image_generation/Deliberate")
    assert view["definition_urls"] == {"MIT": "/model_references/v2/licensing/licenses/MIT"}
    assert view["licensing"]["attribution"] is None  # views show every field
    summary = await json_of(licensed, f"{L}/summary")
    assert summary["licenses"]["MIT"] == 2
