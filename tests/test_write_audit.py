"""Audit views, rebuilt by replaying the event log."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER_KEY, READER_KEY, REQUESTOR_KEY
from tests.helpers import wait_for_status

V2 = "/api/model_references/v2"
AUDIT = f"{V2}/pending_queue/audit"
R = {"apikey": REQUESTOR_KEY}
A = {"apikey": APPROVER_KEY}


async def propose(client: TestClient, name: str) -> int:
    body = {"name": name, "baseline": "flux_1", "nsfw": False}
    resp = await client.post(f"{V2}/image_generation", json=body, headers=R)
    assert resp.status == 202
    return int((await resp.json())["change_id"])


async def get(client: TestClient, path: str, **params: Any) -> Any:
    resp = await client.get(path, headers={"apikey": READER_KEY}, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_current_lists_pending_newest_first(system: TestClient) -> None:
    """/audit/current lists the pending changes, newest first, with their events."""
    first, second = await propose(system, "Aud A"), await propose(system, "Aud B")
    body = await get(system, f"{AUDIT}/current")
    assert [c["change_id"] for c in body["pending_changes"]] == [second, first]
    assert body["total_pending"] == 2 and body["domain"] == "v2"
    assert body["pending_changes"][0]["events"][0]["action"] == "enqueue"


async def test_batch_views_follow_review_apply_and_split(system: TestClient) -> None:
    """Batch summaries count approvals, rejections, applies, and a split moves the left-overs."""
    a = await propose(system, "Aud A")
    b = await propose(system, "Aud B")
    c = await propose(system, "Aud C")
    review = {
        "batch_title": "t1",
        "approved_ids": [a, b],
        "rejected_ids": [c],
        "reject_reason": "dup",
    }
    assert (await system.post(f"{V2}/pending_queue/batches", json=review, headers=A)).status == 200
    assert (
        await system.post(f"{V2}/pending_queue/changes/{a}/apply", json={}, headers=A)
    ).status == 200
    page = await get(system, f"{AUDIT}/batches")
    assert [s["batch_id"] for s in page["batches"]] == [2, 1] and page["next_cursor"] is None
    one = await get(system, f"{AUDIT}/batches/1")
    assert one["batch_title"] == "t1" and one["rejected_change_count"] == 1
    assert one["applied_change_count"] == 1 and one["approved_by"] == "200"
    two = await get(system, f"{AUDIT}/batches/2")
    assert [ch["change_id"] for ch in two["changes"]] == [b] and two["batch_title"] is None
    assert (await get(system, f"{AUDIT}/batches", limit=1))["next_cursor"] == 2


async def test_net_changes_report_added_models(system: TestClient) -> None:
    """net_changes of an applied batch reports the created model as added, with its diff."""
    cid = await propose(system, "Aud Net")
    review = {"batch_title": "net", "approved_ids": [cid]}
    assert (await system.post(f"{V2}/pending_queue/batches", json=review, headers=A)).status == 200
    assert (
        await system.post(f"{V2}/pending_queue/changes/{cid}/apply", json={}, headers=A)
    ).status == 200
    net = await get(system, f"{AUDIT}/batches/1/net_changes")
    assert net["models_added"] == 1 and net["model_changes"][0]["net_operation"] == "added"
    assert net["model_changes"][0]["before_state"] is None
    assert net["model_changes"][0]["after_state"]["name"] == "Aud Net"
    assert net["has_critical_changes"] is True  # baseline and nsfw appear


async def test_purged_changes_leave_the_views(system: TestClient) -> None:
    """A purged change no longer shows as pending in /audit/current."""
    await propose(system, "Aud Purge")
    purge = {"model_name": "Aud Purge"}
    assert (await system.post(f"{V2}/pending_queue/purge", json=purge, headers=A)).status == 200
    assert (await get(system, f"{AUDIT}/current"))["total_pending"] == 0


async def test_audit_errors(system: TestClient) -> None:
    """Unknown batch is 404, a bad cursor 422, no key 401, and the v1 prefix answers too."""
    assert (await system.get(f"{AUDIT}/batches/9", headers=R)).status == 404
    assert (await system.get(f"{AUDIT}/batches", params={"cursor": "0"}, headers=R)).status == 422
    assert (await system.get(f"{AUDIT}/current")).status == 401
    v1 = await system.get("/api/model_references/v1/pending_queue/audit/current", headers=R)
    assert v1.status == 200


async def test_net_changes_report_updates_of_seeded_models_as_modified(system: TestClient) -> None:
    """Updating a model that was seeded (no earlier audit events) is a modification, not an add."""
    # the read side serves the writer's first snapshot within a moment
    resp = await wait_for_status(system, f"{V2}/image_generation/model/Example Photoreal")
    current = await resp.json()
    changed = {**current, "description": "Edited for the audit view."}
    resp = await system.put(
        f"{V2}/image_generation/model/Example Photoreal", json=changed, headers=R
    )
    cid = (await resp.json())["change_id"]
    review = {"batch_title": "edit", "approved_ids": [cid]}
    assert (await system.post(f"{V2}/pending_queue/batches", json=review, headers=A)).status == 200
    assert (
        await system.post(f"{V2}/pending_queue/changes/{cid}/apply", json={}, headers=A)
    ).status == 200
    net = await get(system, f"{AUDIT}/batches/1/net_changes")
    entry = net["model_changes"][0]
    assert entry["net_operation"] == "modified" and net["models_modified"] == 1
    assert entry["before_state"]["description"] != "Edited for the audit view."
    assert entry["after_state"]["description"] == "Edited for the audit view."
    assert [d["field_path"] for d in entry["field_diffs"]][:1] == ["description"]
