"""v1 writes on a legacy-canonical PRIMARY: legacy payloads, applied through v2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER_KEY, REQUESTOR_KEY
from tests.helpers import wait_for_json, wait_for_status

V1 = "/api/model_references/v1"
V2 = "/api/model_references/v2"
R = {"apikey": REQUESTOR_KEY}
A = {"apikey": APPROVER_KEY}

LEGACY_IMAGE = {
    "name": "Legacy Written",
    "baseline": "stable diffusion 1",
    "type": "ckpt",
    "inpainting": False,
    "description": "Proposed through v1.",
    "version": "1",
    "style": "realistic",
    "nsfw": False,
    "download_all": False,
    "config": {
        "files": [
            {"path": "legacy_written.safetensors", "sha256sum": "ab" * 32},
            {"path": "v1-inference.yaml"},
        ],
        "download": [
            {
                "file_name": "legacy_written.safetensors",
                "file_path": "",
                "file_url": "https://example.com/lw.safetensors",
            }
        ],
    },
    "available": False,
}


@pytest.fixture
async def legacy_system(make_system: Any, tmp_path: Path, auth_file: Path) -> TestClient:
    return await make_system(
        tmp_path / "data", HMR_AUTH_FILE=auth_file, HMR_CANONICAL_FORMAT="legacy"
    )


async def review_and_apply(client: TestClient, change_id: int) -> None:
    review = {"batch_title": "legacy", "approved_ids": [change_id]}
    assert (await client.post(f"{V2}/pending_queue/batches", json=review, headers=A)).status == 200
    resp = await client.post(f"{V2}/pending_queue/changes/{change_id}/apply", json={}, headers=A)
    assert resp.status == 200, await resp.text()


async def v1_view(client: TestClient, category: str) -> dict[str, Any]:
    """The v1 view of `category`, once the read side serves one."""
    view: dict[str, Any] = await (await wait_for_status(client, f"{V1}/{category}")).json()
    return view


async def wait_v2(client: TestClient, path: str, status: int) -> Any:
    return await (await wait_for_status(client, path, status)).json()


async def test_v1_create_keeps_the_legacy_record_verbatim(legacy_system: TestClient) -> None:
    """A v1 create queues the legacy record as sent; applied, v1 shows it verbatim and v2 converted."""
    resp = await legacy_system.post(f"{V1}/image_generation", json=LEGACY_IMAGE, headers=R)
    assert resp.status == 202
    change = await resp.json()
    assert change["payload"] == LEGACY_IMAGE
    assert change["request_metadata"] == {"route": "create_legacy_image_generation_model"}
    await review_and_apply(legacy_system, change["change_id"])
    record = await wait_v2(legacy_system, f"{V2}/image_generation/model/Legacy Written", 200)
    assert record["baseline"] == "stable_diffusion_1"
    assert record["config"]["download"][0]["file_url"] == "https://example.com/lw.safetensors"
    view = await v1_view(legacy_system, "stable_diffusion.json")
    assert list(view)[-1] == "Legacy Written" and view["Legacy Written"] == LEGACY_IMAGE


async def test_v1_update_replaces_in_place_and_delete_removes(legacy_system: TestClient) -> None:
    """A v1 update keeps the model's position in v1; a v1 delete removes it from v1 and v2."""
    view = await v1_view(legacy_system, "stable_diffusion.json")
    first = next(iter(view))
    changed = {**view[first], "description": "Updated through v1."}
    resp = await legacy_system.put(f"{V1}/image_generation", json=changed, headers=R)
    assert resp.status == 202
    assert (await resp.json())["request_metadata"] == {"route": "update_legacy_model"}
    await review_and_apply(legacy_system, (await resp.json())["change_id"])
    await wait_for_json(
        legacy_system,
        f"{V2}/image_generation/model/{first}",
        lambda record: record["description"] == "Updated through v1.",
    )
    after = await v1_view(legacy_system, "stable_diffusion.json")
    assert next(iter(after)) == first and after[first]["description"] == "Updated through v1."
    resp = await legacy_system.delete(f"{V1}/image_generation/model/{first}", headers=R)
    assert resp.status == 202
    assert (await resp.json())["request_metadata"] == {"route": "delete_legacy_model"}
    await review_and_apply(legacy_system, (await resp.json())["change_id"])
    await wait_v2(legacy_system, f"{V2}/image_generation/model/{first}", 404)
    assert first not in await v1_view(legacy_system, "stable_diffusion.json")


async def test_v1_text_create_generates_variants(legacy_system: TestClient) -> None:
    """A v1 text create (a db.json entry) appears as three v1 entries and one v2 record."""
    entry = {"name": "LegacyOrg/Scribe-7B", "parameters": 7_000_000_000, "description": "v1 text"}
    resp = await legacy_system.post(f"{V1}/text_generation", json=entry, headers=R)
    assert resp.status == 202
    await review_and_apply(legacy_system, (await resp.json())["change_id"])
    record = await wait_v2(legacy_system, f"{V2}/text_generation/model/LegacyOrg/Scribe-7B", 200)
    assert record["parameters"] == 7_000_000_000
    view = await v1_view(legacy_system, "db.json")
    assert list(view)[-3:] == [
        "LegacyOrg/Scribe-7B",
        "aphrodite/LegacyOrg/Scribe-7B",
        "koboldcpp/Scribe-7B",
    ]
    assert view["koboldcpp/Scribe-7B"]["tags"] == ["7B"]


async def test_v1_beta_models_and_diff_speak_their_formats(legacy_system: TestClient) -> None:
    """Pending v1 proposals appear as v2 records in /pending; their diff compares legacy records."""
    resp = await legacy_system.post(f"{V1}/image_generation", json=LEGACY_IMAGE, headers=R)
    cid = (await resp.json())["change_id"]
    beta = await (await legacy_system.get(f"{V2}/image_generation/pending", headers=R)).json()
    assert beta["Legacy Written"]["baseline"] == "stable_diffusion_1"
    assert beta["Legacy Written"]["record_type"] == "image_generation"
    diff = await (
        await legacy_system.get(f"{V2}/pending_queue/changes/{cid}/diff", headers=R)
    ).json()
    assert diff["current_state"] is None and diff["proposed_state"] == LEGACY_IMAGE


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", f"{V1}/image_generation", {**LEGACY_IMAGE, "name": "Example Photoreal"}, 409),
        ("PUT", f"{V1}/image_generation", LEGACY_IMAGE, 404),
        ("POST", f"{V1}/image_generation", {**LEGACY_IMAGE, "baseline": 7}, 422),
        ("POST", f"{V1}/lora", LEGACY_IMAGE, 422),
        ("POST", f"{V1}/text_generation", {"name": "koboldcpp/x", "parameters": 1}, 400),
        ("DELETE", f"{V1}/blip/model/nope", None, 404),
    ],
)
async def test_v1_write_errors(
    legacy_system: TestClient, method: str, path: str, body: Any, status: int
) -> None:
    """Existing, missing, invalid, unsupported-category and backend-prefixed v1 writes are refused."""
    resp = await legacy_system.request(method, path, json=body, headers=R)
    assert resp.status == status, await resp.text()
    assert "detail" in await resp.json()


async def test_v1_writes_refused_on_v2_canonical(system: TestClient) -> None:
    """On a v2-canonical deployment v1 writes are 503 naming the expected format."""
    resp = await system.post(f"{V1}/image_generation", json=LEGACY_IMAGE, headers=R)
    assert resp.status == 503
    assert "Expected canonical_format='legacy', got 'v2'" in (await resp.json())["detail"]
