"""Licensing writes: definitions and assets edited directly by licence editors, audited and
published; model conclusions checked against the definitions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import Category
from horde_model_records.licensing import UNKNOWN_LICENSING_JSON
from services.write_queue.auth import HordeAuthenticator
from services.write_queue.diff import field_diffs, is_critical
from services.write_queue.keys import write_queue_key
from tests.conftest import APPROVER_KEY, AUTH_USERS, REQUESTOR_KEY

V2 = "/api/model_references/v2"
L = f"{V2}/licensing"
EDITOR_KEY = "test-license-editor-key"
EDITOR = {"apikey": EDITOR_KEY}
APPR = {"apikey": APPROVER_KEY}
REQ = {"apikey": REQUESTOR_KEY}

ZLIB = {
    "license_id": "Zlib",
    "name": "zlib License",
    "spdx_identifier": "Zlib",
    "canonical_url": "https://spdx.org/licenses/Zlib.html",
    "commercial_use": "allowed",
    "redistribution": "allowed_with_conditions",
    "obligations": ["attribution"],
}
NODE = {
    "asset_kind": "custom_node",
    "asset_identifier": "example/nodes pack",
    "display_name": "Example nodes",
    "licensing": {
        "license_expression": "Zlib",
        "license_ids": ["Zlib"],
        "commercial_use": "allowed",
        "redistribution": "allowed_with_conditions",
    },
}


@pytest.fixture
async def hmr(make_system: Any, tmp_path: Path) -> TestClient:
    """`hmr all` with a licence editor (user 400) besides the usual requestor and approvers."""
    users = {
        **AUTH_USERS,
        EDITOR_KEY: {"user_id": "400", "username": "Ed#400", "roles": ["license_editor"]},
    }
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps(users))
    client: TestClient = await make_system(tmp_path / "data", HMR_AUTH_FILE=auth)
    for _ in range(200):
        if (await client.get(f"{L}/licenses")).status == 200:
            break
        await asyncio.sleep(0.01)
    return client


async def served(client: TestClient, path: str, check: Any) -> Any:
    body = None
    for _ in range(200):
        resp = await client.get(path)
        body = await resp.json()
        if check(resp.status, body):
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path}: {body!r}"[:400])


async def test_an_editor_adds_replaces_and_deletes_a_definition(hmr: TestClient) -> None:
    """POST is a 201 with metadata stamped, PUT a 200 with revision 2, DELETE a 204; reads and
    the licensing revision follow each write."""
    resp = await hmr.post(f"{L}/licenses", json=ZLIB, headers=EDITOR)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["metadata"]["revision"] == 1 and created["metadata"]["created_by"] == "400"
    assert created["notes"] is None and created["deprecated"] is False
    await served(hmr, f"{L}/licenses/Zlib", lambda s, b: s == 200)
    page = await served(hmr, f"{L}/licenses", lambda s, b: b["total"] == 17)
    assert page["metadata"]["revision"] == 2
    resp = await hmr.put(f"{L}/licenses/Zlib", json={**ZLIB, "notes": "short"}, headers=EDITOR)
    assert resp.status == 200
    replaced = await resp.json()
    assert replaced["metadata"]["revision"] == 2
    assert replaced["metadata"]["created_at"] == created["metadata"]["created_at"]
    resp = await hmr.delete(f"{L}/licenses/Zlib", headers=EDITOR)
    assert resp.status == 204
    await served(hmr, f"{L}/licenses/Zlib", lambda s, b: s == 404)


async def test_definition_errors(hmr: TestClient) -> None:
    """Existing id 409, missing 404, path/body mismatch 400, bad ids and unknown keys 422."""
    resp = await hmr.post(f"{L}/licenses", json={**ZLIB, "license_id": "MIT"}, headers=EDITOR)
    assert resp.status == 409
    assert await resp.json() == {"detail": "License definition already exists: MIT"}
    resp = await hmr.put(f"{L}/licenses/Zlib", json=ZLIB, headers=EDITOR)
    assert resp.status == 404
    resp = await hmr.put(f"{L}/licenses/MIT", json=ZLIB, headers=EDITOR)
    assert resp.status == 400
    assert await resp.json() == {"detail": "Path and body license identifiers must match."}
    for bad in ("MIT OR X", "NOASSERTION", "has space"):
        resp = await hmr.post(f"{L}/licenses", json={**ZLIB, "license_id": bad}, headers=EDITOR)
        assert resp.status == 422, bad
    resp = await hmr.post(f"{L}/licenses", json={**ZLIB, "colour": "red"}, headers=EDITOR)
    assert resp.status == 422
    resp = await hmr.delete(f"{L}/licenses/Nope", headers=EDITOR)
    assert resp.status == 404


async def test_a_referenced_definition_cannot_be_deleted(hmr: TestClient) -> None:
    """MIT is used by an asset: deleting it is a 409."""
    resp = await hmr.delete(f"{L}/licenses/MIT", headers=EDITOR)
    assert resp.status == 409
    assert await resp.json() == {"detail": "License definition is still referenced: MIT"}


async def test_assets_are_written_and_checked(hmr: TestClient) -> None:
    """An asset naming an unknown id is a 422; once the id is defined it is a 201, readable at
    its path (identifiers may hold '/' and spaces), replaceable and deletable."""
    resp = await hmr.post(f"{L}/assets", json=NODE, headers=EDITOR)
    assert resp.status == 422
    assert await resp.json() == {"detail": "Unknown license definition: Zlib"}
    assert (await hmr.post(f"{L}/licenses", json=ZLIB, headers=EDITOR)).status == 201
    resp = await hmr.post(f"{L}/assets", json=NODE, headers=EDITOR)
    assert resp.status == 201, await resp.text()
    path = f"{L}/assets/custom_node/example/nodes pack"
    await served(hmr, path, lambda s, b: s == 200)
    resp = await hmr.post(f"{L}/assets", json=NODE, headers=EDITOR)
    assert resp.status == 409
    resp = await hmr.put(path, json={**NODE, "display_name": "Renamed"}, headers=EDITOR)
    assert resp.status == 200
    resp = await hmr.put(f"{L}/assets/other/x", json=NODE, headers=EDITOR)
    assert resp.status == 400
    assert (await hmr.delete(f"{L}/assets/model/x", headers=EDITOR)).status == 422
    assert (await hmr.delete(path, headers=EDITOR)).status == 204
    await served(hmr, path, lambda s, b: s == 404)


async def test_writes_need_a_licence_editor(hmr: TestClient) -> None:
    """No key 401, an approver (not an editor) 403 with the editor message."""
    assert (await hmr.post(f"{L}/licenses", json=ZLIB)).status == 401
    resp = await hmr.post(f"{L}/licenses", json=ZLIB, headers=APPR)
    assert resp.status == 403
    assert await resp.json() == {"detail": "You are not on the licensing editor list."}


async def test_roles_report_the_editor(hmr: TestClient) -> None:
    """/v2/me/roles lists license_editor and is_license_editor."""
    roles = await (await hmr.get(f"{V2}/me/roles", headers=EDITOR)).json()
    assert roles["roles"] == ["license_editor"] and roles["is_license_editor"] is True
    roles = await (await hmr.get(f"{V2}/me/roles", headers=APPR)).json()
    assert roles["is_license_editor"] is False


async def test_licensing_writes_are_audited(hmr: TestClient) -> None:
    """Each write is an audit event of category licensing with before and after."""
    assert (await hmr.post(f"{L}/licenses", json=ZLIB, headers=EDITOR)).status == 201
    events = await hmr.server.app[write_queue_key].store.audit_events()
    event = next(e for e in events if e.category == "licensing")
    assert (event.model_name, event.operation, event.logical_user_id) == ("Zlib", "create", "400")
    assert event.payload["before"] is None and event.payload["after"]["license_id"] == "Zlib"
    assert event.payload["record_kind"] == "license_definition"


async def test_the_audit_view_lists_licensing_writes(hmr: TestClient) -> None:
    """`/pending_queue/audit/licensing` shows each direct write, newest first, paged by cursor;
    readers need a key like the other audit views."""
    assert (await hmr.post(f"{L}/licenses", json=ZLIB, headers=EDITOR)).status == 201
    assert (await hmr.post(f"{L}/assets", json=NODE, headers=EDITOR)).status == 201
    assert (
        await hmr.delete(f"{L}/assets/custom_node/example/nodes pack", headers=EDITOR)
    ).status == 204
    view = f"{V2}/pending_queue/audit/licensing"
    assert (await hmr.get(view)).status == 401
    resp = await hmr.get(view, headers=REQ)
    assert resp.status == 200, await resp.text()
    page = await resp.json()
    assert page["domain"] == "v2" and page["next_cursor"] is None
    got = [(e["operation"], e["record_kind"], e["record_key"]) for e in page["events"]]
    assert got == [
        ("delete", "licensed_asset", "custom_node:example/nodes pack"),
        ("create", "licensed_asset", "custom_node:example/nodes pack"),
        ("create", "license_definition", "Zlib"),
    ]
    newest, _, first = page["events"]
    assert newest["editor_id"] == "400" and newest["after"] is None
    assert newest["before"]["display_name"] == "Example nodes"
    assert first["before"] is None and first["after"]["metadata"]["revision"] == 1
    page = await (await hmr.get(view, params={"limit": 2}, headers=REQ)).json()
    assert len(page["events"]) == 2 and page["next_cursor"] == page["events"][1]["event_id"]
    rest = await (await hmr.get(view, params={"cursor": page["next_cursor"]}, headers=REQ)).json()
    assert [e["record_key"] for e in rest["events"]] == ["Zlib"]
    assert (await hmr.get(view, params={"limit": 0}, headers=REQ)).status == 422


async def test_a_model_conclusion_must_name_defined_licences(hmr: TestClient) -> None:
    """A proposed model's licensing naming an unknown id is a 422; clearing it with null too;
    a valid one is queued with the model."""
    base = {"name": "Licensed", "baseline": "stable_diffusion_xl", "nsfw": False}
    unknown = {**NODE["licensing"], "license_expression": "Nope", "license_ids": ["Nope"]}
    resp = await hmr.post(
        f"{V2}/image_generation", json={**base, "licensing": unknown}, headers=REQ
    )
    assert resp.status == 422
    resp = await hmr.post(f"{V2}/image_generation", json={**base, "licensing": None}, headers=REQ)
    assert resp.status == 422
    mit = {
        "license_expression": "MIT",
        "license_ids": ["MIT"],
        "commercial_use": "allowed",
        "redistribution": "allowed",
    }
    resp = await hmr.post(f"{V2}/image_generation", json={**base, "licensing": mit}, headers=REQ)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["payload"]["licensing"]["license_ids"] == ["MIT"]


async def test_a_write_without_licensing_stores_a_noassertion_conclusion(
    hmr: TestClient,
) -> None:
    """A create without `licensing` queues NOASSERTION noting none was supplied (spec 06 §1.2);
    an update of a record that never had one still queues none (reads show the default)."""
    base = {"name": "Unlicensed", "baseline": "stable_diffusion_xl", "nsfw": False}
    resp = await hmr.post(f"{V2}/image_generation", json=base, headers=REQ)
    assert resp.status == 202, await resp.text()
    stored = (await resp.json())["payload"]["licensing"]
    assert stored == {
        **UNKNOWN_LICENSING_JSON,
        "notes": "No licensing conclusion was supplied when this model was created.",
    }
    seeded = "Example Photoreal"
    body = {"name": seeded, "baseline": "flux_1", "nsfw": True}
    resp = await hmr.put(f"{V2}/image_generation/model/{seeded}", json=body, headers=REQ)
    assert resp.status == 202, await resp.text()
    assert "licensing" not in (await resp.json())["payload"]


async def test_clearing_licensing_is_refused_after_the_guards(hmr: TestClient) -> None:
    """`"licensing": null` is a 422 only once the key and the model's existence are checked
    (spec 06 §1.2): no key is a 401, a create of an existing model a 409."""
    body = {"name": "Cleared", "baseline": "stable_diffusion_xl", "nsfw": False, "licensing": None}
    assert (await hmr.post(f"{V2}/image_generation", json=body)).status == 401
    seeded = {**body, "name": "Example Photoreal"}
    assert (await hmr.post(f"{V2}/image_generation", json=seeded, headers=REQ)).status == 409
    resp = await hmr.post(f"{V2}/image_generation", json=body, headers=REQ)
    assert resp.status == 422
    assert (await resp.json())["detail"] == (
        "licensing cannot be explicitly cleared; omit it to preserve the current conclusion."
    )


async def test_explicit_model_licensing_can_be_required(
    make_system: Any, tmp_path: Path, auth_file: Path
) -> None:
    """HMR_REQUIRE_EXPLICIT_MODEL_LICENSING=true refuses a create without a conclusion; one with
    a conclusion, and an update without one, still go through."""
    client = await make_system(
        tmp_path / "data", HMR_AUTH_FILE=auth_file, HMR_REQUIRE_EXPLICIT_MODEL_LICENSING="true"
    )
    base = {"name": "Unlicensed", "baseline": "stable_diffusion_xl", "nsfw": False}
    resp = await client.post(f"{V2}/image_generation", json=base, headers=REQ)
    assert resp.status == 422
    assert (await resp.json())["detail"] == (
        "New v2 model records require an explicit licensing conclusion."
    )
    mit = {
        "license_expression": "MIT",
        "license_ids": ["MIT"],
        "commercial_use": "allowed",
        "redistribution": "allowed",
    }
    resp = await client.post(f"{V2}/image_generation", json={**base, "licensing": mit}, headers=REQ)
    assert resp.status == 202, await resp.text()
    seeded = "Example Photoreal"
    body = {"name": seeded, "baseline": "flux_1", "nsfw": True}
    resp = await client.put(f"{V2}/image_generation/model/{seeded}", json=body, headers=REQ)
    assert resp.status == 202, await resp.text()


async def test_an_empty_editor_list_fails_closed() -> None:
    """With no editor ids, the role is not configured (a 401 before AI-Horde is asked)."""
    async with aiohttp.ClientSession() as session:
        auth = HordeAuthenticator(session, "http://127.0.0.1:9/api/", frozenset(), frozenset())
        assert not auth.role_configured("license_editor")
        auth = HordeAuthenticator(
            session,
            "http://127.0.0.1:9/api/",
            frozenset(),
            frozenset(),
            license_editor_ids=frozenset({"7"}),
        )
        assert auth.role_configured("license_editor")


@pytest.mark.parametrize("category", list(Category))
def test_licensing_and_downloads_are_critical_in_every_category(category: Category) -> None:
    """Spec 06 §1.2 (amending 03 §10): a licensing change, and so a config.download change, is
    critical whatever the category; a description change alone is not."""
    before = {"description": "a", "config": {"download": []}}
    licensed = {**before, "licensing": {"license_expression": "MIT", "license_ids": ["MIT"]}}
    downloads = {**before, "config": {"download": [{"file_name": "x.safetensors"}]}}
    assert is_critical(category, field_diffs(before, licensed))
    assert is_critical(category, field_diffs(before, downloads))
    assert not is_critical(category, field_diffs(before, {**before, "description": "b"}))
