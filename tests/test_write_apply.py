"""Applying changes: batches and splits, job ids, concurrency, publishing, recovery."""

from __future__ import annotations

import asyncio
import errno
import json
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import Category
from services.write_queue.keys import write_queue_key
from services.write_queue.publisher import SnapshotPublisher
from services.write_queue.queue import WriteQueue
from services.write_queue.store import Store
from shared.dataset import Dataset
from shared.snapshot import SnapshotStore
from tests.conftest import APPROVER2_KEY, APPROVER_KEY, READER_KEY, REQUESTOR_KEY

V1 = "/api/model_references/v1"
V2 = "/api/model_references/v2"
Q = f"{V2}/pending_queue"

REQ = {"apikey": REQUESTOR_KEY}
APPR = {"apikey": APPROVER_KEY}
APPR2 = {"apikey": APPROVER2_KEY}
READ = {"apikey": READER_KEY}

TEXT_MODEL = "ExampleOrg/Tiny-Tales-1B"
TEXT_VARIANTS = (TEXT_MODEL, f"aphrodite/{TEXT_MODEL}", "koboldcpp/Tiny-Tales-1B")


# --- helpers -----------------------------------------------------------------------------------


async def wait_status(client: TestClient, path: str, status: int) -> bool:
    """True once a read of `path` answers `status` (polled for at most 1 s)."""
    for _ in range(100):
        if (await client.get(path)).status == status:
            return True
        await asyncio.sleep(0.01)
    return False


async def wait_until(client: TestClient, path: str, check: Any) -> Any:
    """The JSON of `path` once `check(body)` holds (polled for at most 1 s)."""
    body = None
    for _ in range(100):
        resp = await client.get(path)
        if resp.status == 200:
            body = await resp.json()
            if check(body):
                return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never satisfied the check; last body: {body!r}"[:500])


async def wait_ready(client: TestClient) -> TestClient:
    assert await wait_status(client, f"{V2}/image_generation", 200)
    return client


@pytest.fixture
async def hmr(system: TestClient) -> TestClient:
    """The `hmr all` app on a fresh sample data dir, once its reads are served."""
    return await wait_ready(system)


def queue_of(client: TestClient) -> WriteQueue:
    return client.server.app[write_queue_key]


async def propose_image(client: TestClient, name: str, **fields: Any) -> int:
    body = {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False, **fields}
    resp = await client.post(f"{V2}/image_generation", json=body, headers=REQ)
    assert resp.status == 202, await resp.text()
    return int((await resp.json())["change_id"])


async def propose_delete(client: TestClient, category: str, name: str) -> int:
    resp = await client.delete(f"{V2}/{category}/model/{name}", headers=REQ)
    assert resp.status == 202, await resp.text()
    return int((await resp.json())["change_id"])


async def approve(client: TestClient, *ids: int) -> int:
    resp = await client.post(
        f"{Q}/batches", json={"batch_title": "review", "approved_ids": list(ids)}, headers=APPR
    )
    assert resp.status == 200, await resp.text()
    return int((await resp.json())["batch_id"])


async def apply_one(
    client: TestClient, change_id: int, job_id: str | None = None, headers: dict[str, str] = APPR
) -> Any:
    body = {} if job_id is None else {"job_id": job_id}
    return await client.post(f"{Q}/changes/{change_id}/apply", json=body, headers=headers)


async def apply_many(client: TestClient, ids: list[int], **extra: Any) -> Any:
    return await client.post(f"{Q}/apply", json={"change_ids": ids, **extra}, headers=APPR)


async def change(client: TestClient, change_id: int) -> Any:
    resp = await client.get(f"{Q}/changes/{change_id}", headers=READ)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def batch_ids(client: TestClient, *ids: int) -> list[int | None]:
    return [(await change(client, i))["batch_id"] for i in ids]


async def detail(resp: Any) -> Any:
    return (await resp.json())["detail"]


async def metadata(client: TestClient, version: str, category: str) -> Any:
    resp = await client.get(f"/api/model_references/{version}/metadata/{category}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


def current_snapshot(data_dir: Path) -> str:
    return (data_dir / "snapshots" / "CURRENT").read_text().strip()


async def approved_change(client: TestClient, name: str) -> int:
    cid = await propose_image(client, name)
    await approve(client, cid)
    return cid


# --- the batch split worked example ---------------------------------------


async def test_batch_split_worked_example(hmr: TestClient) -> None:
    """The normative example: one split on the partial apply, none on the full one, then batch 3."""
    a, b, c, d, e, f = [await propose_image(hmr, f"Split {x}") for x in "ABCDEF"]

    assert await approve(hmr, a, b, c) == 1  # 1. A, B, C -> batch 1
    assert await approve(hmr, d) == 1  # 2. D joins batch 1
    assert await batch_ids(hmr, a, b, c, d) == [1, 1, 1, 1]

    resp = await apply_one(hmr, a)  # 3. apply A -> B, C, D move to batch 2
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["record"]["batch_id"] == 1
    assert body["batch_split_occurred"] is True
    assert body["batch_split_original_batch_id"] == 1
    assert body["batch_split_new_batch_id"] == 2
    assert body["batch_split_reassigned_count"] == 3
    assert await batch_ids(hmr, a, b, c, d) == [1, 2, 2, 2]

    assert await approve(hmr, e) == 2  # 4. E joins batch 2

    resp = await apply_many(hmr, [b, c, d, e])  # 5. one call: batch 2 fully applied
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [r["change_id"] for r in body["applied"]] == [b, c, d, e]
    assert [r["batch_id"] for r in body["applied"]] == [2, 2, 2, 2]
    assert body["batch_split_occurred"] is False
    assert "batch_split_new_batch_id" not in body
    assert await batch_ids(hmr, b, c, d, e) == [2, 2, 2, 2]

    assert await approve(hmr, f) == 3  # 6. F opens batch 3
    assert await batch_ids(hmr, f) == [3]


async def test_batch_split_writes_one_audit_event(hmr: TestClient) -> None:
    """A split is recorded once with the reassigned change ids and reason partial_apply."""
    a, b, c = [await propose_image(hmr, f"Audit {x}") for x in "ABC"]
    await approve(hmr, a, b, c)
    assert (await apply_one(hmr, a)).status == 200
    events = await queue_of(hmr).store.audit_events()
    splits = [e for e in events if e.action.get("action") == "batch_split"]
    assert len(splits) == 1
    assert splits[0].model_name == "queue"
    assert splits[0].action == {
        "action": "batch_split",
        "original_batch_id": 1,
        "new_batch_id": 2,
        "reassigned_change_ids": [b, c],
        "reason": "partial_apply",
    }


# --- single apply ------------------------------------------------------------------------------


async def test_apply_single_returns_the_applied_record(hmr: TestClient) -> None:
    """A successful apply answers the applied record (nulls omitted) and no split."""
    cid = await approved_change(hmr, "Single Model")
    resp = await apply_one(hmr, cid, job_id="job-single")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["batch_split_occurred"] is False
    record = body["record"]
    assert record["status"] == "applied"
    assert (record["applied_by"], record["applied_username"]) == ("200", "Appr#200")
    assert record["applied_job_id"] == "job-single"
    assert isinstance(record["applied_at"], int)
    assert None not in record.values()
    assert "rejected_by" not in record and "notes" not in record
    assert await wait_status(hmr, f"{V2}/image_generation/model/Single Model", 200)


async def test_apply_single_generates_a_job_id(hmr: TestClient) -> None:
    """Without a job id (or with a blank one) the reservation token is apply-<id>-<32 hex>."""
    first = await approved_change(hmr, "Gen One")
    second = await approved_change(hmr, "Gen Two")
    record = (await (await apply_one(hmr, first)).json())["record"]
    assert re.fullmatch(rf"apply-{first}-[0-9a-f]{{32}}", record["applied_job_id"])
    record = (await (await apply_one(hmr, second, job_id="   ")).json())["record"]
    assert re.fullmatch(rf"apply-{second}-[0-9a-f]{{32}}", record["applied_job_id"])


async def test_apply_single_unknown_change_is_404(hmr: TestClient) -> None:
    """An unknown change id is 404 with the apply message."""
    resp = await apply_one(hmr, 99)
    assert resp.status == 404
    assert await detail(resp) == "Change 99 not found."


async def test_apply_single_pending_change_is_400(hmr: TestClient) -> None:
    """A change that is not approved cannot be applied and stays untouched."""
    cid = await propose_image(hmr, "Pending Model")
    resp = await apply_one(hmr, cid)
    assert resp.status == 400
    assert await detail(resp) == f"Change {cid} is not approved (status=pending)."
    assert (await change(hmr, cid))["status"] == "pending"


async def test_apply_single_rejected_change_is_400(hmr: TestClient) -> None:
    """A rejected change cannot be applied."""
    cid = await propose_image(hmr, "Rejected Model")
    resp = await hmr.post(
        f"{Q}/batches",
        json={"batch_title": "t", "rejected_ids": [cid], "reject_reason": "no"},
        headers=APPR,
    )
    assert resp.status == 200
    resp = await apply_one(hmr, cid)
    assert resp.status == 400
    assert await detail(resp) == f"Change {cid} is not approved (status=rejected)."


async def test_apply_single_needs_a_json_body(hmr: TestClient) -> None:
    """The body is required ({} is fine); job_id longer than 120 characters is a 422."""
    cid = await approved_change(hmr, "Body Model")
    resp = await hmr.post(f"{Q}/changes/{cid}/apply", headers=APPR)
    assert resp.status == 422
    resp = await apply_one(hmr, cid, job_id="j" * 121)
    assert resp.status == 422
    resp = await hmr.post(f"{Q}/changes/x/apply", json={}, headers=APPR)
    assert resp.status == 422
    assert (await change(hmr, cid))["status"] == "approved"


async def test_apply_single_backend_failure_is_503_and_releases(hmr: TestClient) -> None:
    """Deleting a model that is already gone is a 503; the change goes back to approved."""
    first = await propose_delete(hmr, "image_generation", "Example Photoreal")
    second = await propose_delete(hmr, "image_generation", "Example Photoreal")
    await approve(hmr, first, second)
    assert (await apply_one(hmr, first)).status == 200
    resp = await apply_one(hmr, second, job_id="job-gone")
    assert resp.status == 503
    assert (
        await detail(resp) == "Model 'Example Photoreal' not found in category 'image_generation'"
    )
    record = await change(hmr, second)
    assert record["status"] == "approved"
    assert record["applied_job_id"] is None


async def test_apply_reserved_change_refuses_another_job(hmr: TestClient) -> None:
    """A change reserved under another token is 400 already reserved; that token may re-enter."""
    cid = await approved_change(hmr, "Reserved Model")
    store = queue_of(hmr).store
    data = await store.get_change(cid)
    assert data is not None
    async with store.transaction():
        await store.update_change(data.evolve(status="applying", applied_job_id="other-job"))
    resp = await apply_one(hmr, cid, job_id="my-job")
    assert resp.status == 400
    assert await detail(resp) == f"Change {cid} is already reserved for apply (job_id=other-job)."
    resp = await apply_one(hmr, cid, job_id="other-job")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["record"]["applied_job_id"] == "other-job"


async def test_apply_writes_model_and_queue_audit_events(hmr: TestClient) -> None:
    """An apply appends a create event with the token as request_id and an apply queue event."""
    cid = await approved_change(hmr, "Audited Model")
    assert (await apply_one(hmr, cid, job_id="job-audit")).status == 200
    events = await queue_of(hmr).store.audit_events()
    (create,) = [e for e in events if e.category == "image_generation"]
    assert (create.operation, create.model_name) == ("create", "Audited Model")
    assert create.request_id == "job-audit"
    assert create.payload["after"]["name"] == "Audited Model"
    applies = [e for e in events if e.action.get("action") == "apply"]
    assert [e.action for e in applies] == [
        {"action": "apply", "change_id": cid, "batch_id": 1, "job_id": "job-audit"}
    ]
    assert applies[0].logical_user_id == "200"


# --- multi apply -------------------------------------------------------------------------------


async def test_apply_many_unknown_change_is_404(hmr: TestClient) -> None:
    """Every id must exist before anything is applied."""
    cid = await approved_change(hmr, "Known Model")
    resp = await apply_many(hmr, [cid, 99])
    assert resp.status == 404
    assert await detail(resp) == "Change 99 not found"
    assert (await change(hmr, cid))["status"] == "approved"


async def test_apply_many_unbatched_change_is_400(hmr: TestClient) -> None:
    """A change without a batch id (not approved) refuses the whole request."""
    approved = await approved_change(hmr, "Batched Model")
    pending = await propose_image(hmr, "Unbatched Model")
    resp = await apply_many(hmr, [approved, pending])
    assert resp.status == 400
    assert await detail(resp) == "Cannot apply changes that have not been approved in a batch"
    assert (await change(hmr, approved))["status"] == "approved"


async def test_apply_many_mixed_batches_is_400(hmr: TestClient) -> None:
    """Changes of two batches are refused with the batch ids listed."""
    a, b = await propose_image(hmr, "Mixed A"), await propose_image(hmr, "Mixed B")
    await approve(hmr, a, b)
    assert (await apply_one(hmr, a)).status == 200  # b moves to batch 2
    resp = await apply_many(hmr, [a, b])
    assert resp.status == 400
    assert (
        await detail(resp) == "All changes must belong to the same batch. Found batch IDs: [1, 2]"
    )
    assert (await change(hmr, b))["status"] == "approved"


async def test_apply_many_allow_mixed_batch_skips_the_cohesion_check(hmr: TestClient) -> None:
    """With allow_mixed_batch the changes are tried in order; the pending one fails with 400."""
    approved = await approved_change(hmr, "Mixed Ok")
    pending = await propose_image(hmr, "Mixed Pending")
    resp = await apply_many(hmr, [approved, pending], allow_mixed_batch=True)
    assert resp.status == 400
    body = await resp.json()
    assert [r["change_id"] for r in body["applied"]] == [approved]
    assert body["failed_change_id"] == pending
    assert body["failed_error"] == f"Change {pending} is not approved (status=pending)."
    assert body["failed_error_type"] == "PendingChangeStateError"
    assert (await change(hmr, approved))["status"] == "applied"


async def test_apply_many_validates_change_ids(hmr: TestClient) -> None:
    """change_ids must be a non-empty JSON list of positive integers."""
    cid = await approved_change(hmr, "Valid Model")
    bodies = [{}, {"change_ids": []}, {"change_ids": [cid, 0]}, {"change_ids": [str(cid)]}]
    for body in [*bodies, {"change_ids": cid}]:
        resp = await hmr.post(f"{Q}/apply", json=body, headers=APPR)
        assert resp.status == 422, body
    assert (await change(hmr, cid))["status"] == "approved"


async def test_apply_many_removes_duplicates_keeping_order(hmr: TestClient) -> None:
    """Duplicate ids are applied once, in the order of their first occurrence."""
    a, b = await propose_image(hmr, "Dup A"), await propose_image(hmr, "Dup B")
    await approve(hmr, a, b)
    resp = await apply_many(hmr, [b, a, b], job_id="job-dup")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [r["change_id"] for r in body["applied"]] == [b, a]
    assert {r["applied_job_id"] for r in body["applied"]} == {"job-dup"}


async def test_apply_many_failure_midway_keeps_the_first_change(hmr: TestClient) -> None:
    """When the second change fails (its model was deleted meanwhile) the first stays applied."""
    create = await propose_image(hmr, "Midway Model")
    delete = await propose_delete(hmr, "image_generation", "Example Photoreal")
    meanwhile = await propose_delete(hmr, "image_generation", "Example Photoreal")
    await approve(hmr, create, delete, meanwhile)
    assert (await apply_one(hmr, meanwhile)).status == 200  # create and delete move to batch 2
    resp = await apply_many(hmr, [create, delete], job_id="job-midway")
    assert resp.status == 503
    body = await resp.json()
    assert [r["change_id"] for r in body["applied"]] == [create]
    assert body["applied"][0]["status"] == "applied"
    assert body["failed_change_id"] == delete
    assert body["failed_error_type"] == "PendingChangeBackendError"
    assert body["failed_error"] == (
        "Model 'Example Photoreal' not found in category 'image_generation'"
    )
    record = await change(hmr, delete)
    assert (record["status"], record["applied_job_id"]) == ("approved", None)
    assert await wait_status(hmr, f"{V2}/image_generation/model/Midway Model", 200)


async def test_apply_many_publishes_one_snapshot(hmr: TestClient, tmp_path: Path) -> None:
    """Several changes applied in one request are published together in one snapshot."""
    a, b, c = [await propose_image(hmr, f"Together {x}") for x in "ABC"]
    await approve(hmr, a, b, c)
    snapshots = tmp_path / "data" / "snapshots"
    before = int(current_snapshot(tmp_path / "data").split("-")[0])
    resp = await apply_many(hmr, [a, b, c])
    assert resp.status == 200, await resp.text()
    after = current_snapshot(tmp_path / "data")
    assert int(after.split("-")[0]) == before + 1
    manifest = json.loads((snapshots / after / "manifest.json").read_text())
    assert manifest["categories"]["image_generation"]["metadata"]["total_creates"] == 3


# --- apply_batch -------------------------------------------------------------------------------


async def test_apply_batch_applies_its_approved_changes(hmr: TestClient) -> None:
    """Every approved change of the batch is applied in change_id order under the job id."""
    a, b = await propose_image(hmr, "Batch A"), await propose_image(hmr, "Batch B")
    batch = await approve(hmr, b, a)
    resp = await hmr.post(f"{Q}/apply_batch/{batch}?job_id=job-batch", headers=APPR)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [r["change_id"] for r in body["applied"]] == [a, b]
    assert {r["applied_job_id"] for r in body["applied"]} == {"job-batch"}
    assert body["batch_split_occurred"] is False


async def test_apply_batch_unknown_batch_is_404(hmr: TestClient) -> None:
    """A batch id with no changes is 404."""
    resp = await hmr.post(f"{Q}/apply_batch/9", headers=APPR)
    assert resp.status == 404
    assert await detail(resp) == "No changes found for batch 9"


async def test_apply_batch_already_applied_is_empty_200(hmr: TestClient) -> None:
    """A batch whose changes are all applied (or rejected) answers an empty success."""
    a = await propose_image(hmr, "Done A")
    r = await propose_image(hmr, "Done R")
    resp = await hmr.post(
        f"{Q}/batches",
        json={"batch_title": "t", "approved_ids": [a], "rejected_ids": [r], "reject_reason": "x"},
        headers=APPR,
    )
    batch = (await resp.json())["batch_id"]
    assert (await apply_one(hmr, a)).status == 200
    resp = await hmr.post(f"{Q}/apply_batch/{batch}", headers=APPR)
    assert resp.status == 200
    assert await resp.json() == {"applied": [], "batch_split_occurred": False}


async def test_apply_batch_without_approved_changes_is_404(hmr: TestClient) -> None:
    """A batch whose only change is being applied has no approved change to apply."""
    cid = await approved_change(hmr, "Busy Model")
    store = queue_of(hmr).store
    data = await store.get_change(cid)
    assert data is not None
    async with store.transaction():
        await store.update_change(data.evolve(status="applying", applied_job_id="busy"))
    resp = await hmr.post(f"{Q}/apply_batch/1", headers=APPR)
    assert resp.status == 404
    assert await detail(resp) == "No approved changes found in batch 1"


async def test_apply_batch_validates_the_job_id(hmr: TestClient) -> None:
    """job_id longer than 120 characters is a 422 and nothing is applied."""
    cid = await approved_change(hmr, "Long Job")
    resp = await hmr.post(f"{Q}/apply_batch/1?job_id={'j' * 121}", headers=APPR)
    assert resp.status == 422
    assert (await change(hmr, cid))["status"] == "approved"


# --- job_id idempotency -----------------------------------------------------------


async def test_retry_with_same_job_id_returns_the_same_record(
    hmr: TestClient, tmp_path: Path
) -> None:
    """A retry after success answers 200 with the same record and publishes nothing new."""
    cid = await approved_change(hmr, "Retry Model")
    first = await apply_one(hmr, cid, job_id="job-retry")
    assert first.status == 200
    body = await first.json()
    await wait_until(
        hmr, f"{V2}/metadata/image_generation", lambda m: m["last_operation_model"] == "Retry Model"
    )
    snapshot = current_snapshot(tmp_path / "data")
    etag = (await hmr.get(f"{V2}/image_generation")).headers["ETag"]
    snapshot_id = (await hmr.get(f"{V2}/image_generation")).headers["X-Snapshot-Id"]

    again = await apply_one(hmr, cid, job_id="job-retry")
    assert again.status == 200
    assert await again.json() == body
    await asyncio.sleep(0.1)  # time for a (wrong) new snapshot to be noticed
    assert current_snapshot(tmp_path / "data") == snapshot
    resp = await hmr.get(f"{V2}/image_generation")
    assert (resp.headers["ETag"], resp.headers["X-Snapshot-Id"]) == (etag, snapshot_id)
    assert (await metadata(hmr, "v2", "image_generation"))["total_creates"] == 1


async def test_retry_of_multi_apply_with_same_job_id_changes_nothing(
    hmr: TestClient, tmp_path: Path
) -> None:
    """Repeating a multi apply with its job id returns the applied records and no new snapshot."""
    a, b = await propose_image(hmr, "Multi A"), await propose_image(hmr, "Multi B")
    await approve(hmr, a, b)
    first = await apply_many(hmr, [a, b], job_id="job-multi")
    assert first.status == 200
    snapshot = current_snapshot(tmp_path / "data")
    again = await apply_many(hmr, [a, b], job_id="job-multi")
    assert again.status == 200
    assert (await again.json())["applied"] == (await first.json())["applied"]
    assert current_snapshot(tmp_path / "data") == snapshot
    meta = await wait_until(
        hmr, f"{V2}/metadata/image_generation", lambda m: m["total_creates"] >= 2
    )
    assert meta["total_creates"] == 2


async def test_retry_with_another_job_id_is_400(hmr: TestClient) -> None:
    """An applied change answers 400 to a different (or missing) job id."""
    cid = await approved_change(hmr, "Other Job")
    assert (await apply_one(hmr, cid, job_id="job-1")).status == 200
    for job in ("job-2", None):
        resp = await apply_one(hmr, cid, job_id=job)
        assert resp.status == 400
        assert await detail(resp) == f"Change {cid} is not approved (status=applied)."
    assert (await change(hmr, cid))["applied_job_id"] == "job-1"


async def test_concurrent_applies_of_one_change_exactly_one_wins(hmr: TestClient) -> None:
    """Two approvers applying one change at once: one 200, one 400, the model created once."""
    cid = await approved_change(hmr, "Race Model")
    responses = await asyncio.gather(
        apply_one(hmr, cid, job_id="job-a", headers=APPR),
        apply_one(hmr, cid, job_id="job-b", headers=APPR2),
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 400]
    winner = next(r for r in responses if r.status == 200)
    job = (await winner.json())["record"]["applied_job_id"]
    assert (await change(hmr, cid))["applied_job_id"] == job
    meta = await wait_until(
        hmr, f"{V2}/metadata/image_generation", lambda m: m["last_operation_model"] == "Race Model"
    )
    assert meta["total_creates"] == 1
    events = await queue_of(hmr).store.audit_events()
    assert len([e for e in events if e.category == "image_generation"]) == 1


# --- what an apply publishes ------------------------------------------------------


async def test_apply_create_is_visible_in_v2_and_v1(hmr: TestClient) -> None:
    """A created image model is served by the v2 single read and the v1 view."""
    cid = await approved_change(hmr, "Visible Model")
    assert (await apply_one(hmr, cid)).status == 200
    assert await wait_status(hmr, f"{V2}/image_generation/model/Visible Model", 200)
    view = await (await hmr.get(f"{V1}/stable_diffusion")).json()
    assert view["Visible Model"]["baseline"] == "stable_diffusion_xl"
    assert view["Visible Model"]["type"] == "ckpt"


async def test_apply_text_create_adds_all_variants_to_v1(hmr: TestClient) -> None:
    """A created text model appears in v2 under its base name and in v1 with both backends."""
    resp = await hmr.post(
        f"{V2}/text_generation",
        json={"name": "TestOrg/Story-7B", "parameters": 7_000_000_000},
        headers=REQ,
    )
    assert resp.status == 202, await resp.text()
    cid = (await resp.json())["change_id"]
    await approve(hmr, cid)
    assert (await apply_one(hmr, cid)).status == 200
    assert await wait_status(hmr, f"{V2}/text_generation/model/TestOrg/Story-7B", 200)
    v2 = await (await hmr.get(f"{V2}/text_generation")).json()
    assert "TestOrg/Story-7B" in v2
    assert not [n for n in v2 if n.startswith(("aphrodite/", "koboldcpp/"))]
    view = await (await hmr.get(f"{V1}/text_generation")).json()
    assert {"TestOrg/Story-7B", "aphrodite/TestOrg/Story-7B", "koboldcpp/Story-7B"} <= set(view)


async def test_apply_delete_removes_text_model_and_all_variants(hmr: TestClient) -> None:
    """A text delete removes the model from v2 and all three names from the v1 view."""
    view = await (await hmr.get(f"{V1}/text_generation")).json()
    assert set(TEXT_VARIANTS) <= set(view)
    cid = await propose_delete(hmr, "text_generation", TEXT_MODEL)
    await approve(hmr, cid)
    assert (await apply_one(hmr, cid)).status == 200
    assert await wait_status(hmr, f"{V2}/text_generation/model/{TEXT_MODEL}", 404)
    assert TEXT_MODEL not in await (await hmr.get(f"{V2}/text_generation")).json()
    view = await (await hmr.get(f"{V1}/text_generation")).json()
    assert not set(TEXT_VARIANTS) & set(view)
    assert "ExampleOrg/Helper-Chat-7B" in view


async def test_apply_delete_removes_image_model_from_v1(hmr: TestClient) -> None:
    """An image delete removes the model from v2 and from stable_diffusion.json."""
    cid = await propose_delete(hmr, "image_generation", "Example Photoreal")
    await approve(hmr, cid)
    assert (await apply_one(hmr, cid)).status == 200
    assert await wait_status(hmr, f"{V2}/image_generation/model/Example Photoreal", 404)
    view = await (await hmr.get(f"{V1}/stable_diffusion")).json()
    assert "Example Photoreal" not in view
    assert "Example Anime Inpainting" in view


async def test_apply_update_keeps_created_at_and_moves_updated_at(hmr: TestClient) -> None:
    """An update keeps metadata.created_at from the create and sets a later updated_at."""
    queue = queue_of(hmr)
    base = int(time.time()) + 1000
    queue.clock = lambda: base
    cid = await approved_change(hmr, "Aging Model")
    assert (await apply_one(hmr, cid)).status == 200
    path = f"{V2}/image_generation/model/Aging Model"
    created = await wait_until(hmr, path, lambda r: True)
    assert created["metadata"]["created_at"] == base
    assert created["metadata"]["updated_at"] == base

    queue.clock = lambda: base + 50
    body = {**created, "description": "older now"}
    resp = await hmr.put(path, json=body, headers=REQ)
    assert resp.status == 202, await resp.text()
    update = (await resp.json())["change_id"]
    await approve(hmr, update)
    assert (await apply_one(hmr, update)).status == 200
    record = await wait_until(hmr, path, lambda r: r.get("description") == "older now")
    assert record["metadata"]["created_at"] == base
    assert record["metadata"]["updated_at"] == base + 50


async def test_apply_moves_last_updated_of_the_touched_category_only(hmr: TestClient) -> None:
    """v2 and v1 metadata last_updated move forward for image_generation, not for text."""
    before = {
        (v, c): await metadata(hmr, v, c)
        for v in ("v1", "v2")
        for c in ("image_generation", "text_generation")
    }
    later = int(time.time()) + 1000
    queue_of(hmr).clock = lambda: later
    cid = await approved_change(hmr, "Fresh Model")
    assert (await apply_one(hmr, cid)).status == 200
    await wait_until(hmr, f"{V2}/metadata/image_generation", lambda m: m["last_updated"] == later)
    for version in ("v1", "v2"):
        image = await metadata(hmr, version, "image_generation")
        assert (
            image["last_updated"] == later > before[(version, "image_generation")]["last_updated"]
        )
        assert image["last_operation_type"] == "create"
        assert image["last_operation_model"] == "Fresh Model"
        assert image["total_creates"] == 1
        assert image["total_models"] == before[(version, "image_generation")]["total_models"] + 1
        assert (
            await metadata(hmr, version, "text_generation") == before[(version, "text_generation")]
        )


async def test_apply_publishes_a_new_snapshot_id(hmr: TestClient) -> None:
    """Reads after an apply carry a greater X-Snapshot-Id and a new category ETag."""
    resp = await hmr.get(f"{V2}/image_generation")
    old_id, old_etag = int(resp.headers["X-Snapshot-Id"]), resp.headers["ETag"]
    cid = await approved_change(hmr, "Snapshot Model")
    assert (await apply_one(hmr, cid)).status == 200
    assert await wait_status(hmr, f"{V2}/image_generation/model/Snapshot Model", 200)
    resp = await hmr.get(f"{V2}/image_generation")
    assert int(resp.headers["X-Snapshot-Id"]) > old_id
    assert resp.headers["ETag"] != old_etag


# --- failures and recovery ---------------------------------------------------------------------


async def test_failure_inside_the_commit_leaves_nothing_applied(
    hmr: TestClient, tmp_path: Path
) -> None:
    """An error inside the apply transaction rolls everything back and frees the change."""
    cid = await approved_change(hmr, "Doomed Model")
    # the database itself refuses the apply's model audit event, half-way through the transaction
    database = tmp_path / "data" / "write_queue.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute(
            "CREATE TRIGGER doomed BEFORE INSERT ON audit WHEN NEW.category = 'image_generation' "
            "BEGIN SELECT RAISE(ABORT, 'simulated failure inside the transaction'); END"
        )
    resp = await apply_one(hmr, cid, job_id="job-doomed")
    assert resp.status == 500
    with sqlite3.connect(database) as db:
        db.execute("DROP TRIGGER doomed")
    record = await change(hmr, cid)
    assert (record["status"], record["applied_job_id"]) == ("approved", None)
    queue = queue_of(hmr)
    assert queue.live_record(Category.image_generation, "Doomed Model") is None
    stored = await queue.store.read_dataset()
    assert "Doomed Model" not in stored.categories[Category.image_generation].records
    actions = [e.action.get("action") for e in await queue.store.audit_events()]
    assert "apply" not in actions
    assert (await metadata(hmr, "v2", "image_generation"))["total_creates"] == 0
    resp = await apply_one(hmr, cid, job_id="job-doomed")
    assert resp.status == 200, await resp.text()
    meta = await wait_until(
        hmr, f"{V2}/metadata/image_generation", lambda m: m["total_creates"] == 1
    )
    assert meta["last_operation_model"] == "Doomed Model"


class DiskFullPublisher(SnapshotPublisher):
    """A publisher whose disk is full: every publish fails as the filesystem would."""

    def publish(self, dataset: Dataset, version: int) -> str:
        raise OSError(errno.ENOSPC, "simulated disk full while publishing")


async def test_publish_failure_after_commit_keeps_the_change_applied(
    make_system: Any, tmp_path: Path, auth_file: Path
) -> None:
    """Once the transaction commits, a failed publish must not put the change back to approved."""
    data_dir = tmp_path / "data"
    client = await wait_ready(await make_system(data_dir, HMR_AUTH_FILE=auth_file))
    cid = await approved_change(client, "Unpublished Model")
    queue = queue_of(client)
    working = queue.publisher
    queue.publisher = DiskFullPublisher(SnapshotStore(data_dir / "snapshots"))
    resp = await apply_one(client, cid, job_id="job-unpublished")
    assert resp.status == 503, await resp.text()
    queue.publisher = working
    record = await change(client, cid)
    # the database holds the model; the change must say so (it cannot be applied twice)
    assert record["status"] == "applied"
    assert record["applied_job_id"] == "job-unpublished"
    await client.close()

    restarted = await make_system(data_dir, HMR_AUTH_FILE=auth_file)
    assert await wait_status(restarted, f"{V2}/image_generation/model/Unpublished Model", 200)
    assert (await metadata(restarted, "v2", "image_generation"))["total_creates"] == 1


@pytest.mark.parametrize("snapshot_written", [False, True], ids=["unwritten", "not-switched"])
async def test_restart_publishes_what_the_database_holds(
    make_system: Any, tmp_path: Path, auth_file: Path, snapshot_written: bool
) -> None:
    """A crash between commit and publish (CURRENT still on the old snapshot) is repaired at start."""
    data_dir = tmp_path / "data"
    client = await wait_ready(await make_system(data_dir, HMR_AUTH_FILE=auth_file))
    before = current_snapshot(data_dir)
    cid = await approved_change(client, "Recovered Model")
    assert (await apply_one(client, cid)).status == 200
    published = current_snapshot(data_dir)
    assert published != before
    await client.close()

    # as if the process died after COMMIT: the snapshot was never written, or CURRENT never moved
    if not snapshot_written:
        shutil.rmtree(data_dir / "snapshots" / published)
    (data_dir / "snapshots" / "CURRENT").write_text(before + "\n")

    restarted = await make_system(data_dir, HMR_AUTH_FILE=auth_file)
    assert await wait_status(restarted, f"{V2}/image_generation/model/Recovered Model", 200)
    assert current_snapshot(data_dir) != before
    view = await (await restarted.get(f"{V1}/stable_diffusion")).json()
    assert "Recovered Model" in view
    meta = await metadata(restarted, "v2", "image_generation")
    assert (meta["total_creates"], meta["last_operation_model"]) == (1, "Recovered Model")
    assert (await change(restarted, cid))["status"] == "applied"


async def test_restart_without_crash_publishes_nothing_new(
    make_system: Any, tmp_path: Path, auth_file: Path
) -> None:
    """A clean restart serves the same snapshot: the live one is not behind the database."""
    data_dir = tmp_path / "data"
    client = await wait_ready(await make_system(data_dir, HMR_AUTH_FILE=auth_file))
    cid = await approved_change(client, "Stable Model")
    assert (await apply_one(client, cid)).status == 200
    published = current_snapshot(data_dir)
    await client.close()
    restarted = await wait_ready(await make_system(data_dir, HMR_AUTH_FILE=auth_file))
    assert current_snapshot(data_dir) == published
    assert (await restarted.get(f"{V2}/image_generation/model/Stable Model")).status == 200


async def test_restart_recovers_a_change_left_applying(
    make_system: Any, tmp_path: Path, auth_file: Path
) -> None:
    """A change stuck in applying at shutdown is approved again with no token, and applies."""
    data_dir = tmp_path / "data"
    client = await wait_ready(await make_system(data_dir, HMR_AUTH_FILE=auth_file))
    cid = await approved_change(client, "Stuck Model")
    await client.close()

    store = await Store.aopen(data_dir / "write_queue.sqlite3")
    try:
        data = await store.get_change(cid)
        assert data is not None
        async with store.transaction():
            await store.update_change(data.evolve(status="applying", applied_job_id="crashed-job"))
    finally:
        await store.aclose()

    restarted = await wait_ready(await make_system(data_dir, HMR_AUTH_FILE=auth_file))
    record = await change(restarted, cid)
    assert (record["status"], record["applied_job_id"]) == ("approved", None)
    assert (await restarted.get(f"{V2}/image_generation/model/Stuck Model")).status == 404
    resp = await apply_one(restarted, cid, job_id="job-after-restart")
    assert resp.status == 200, await resp.text()
    assert await wait_status(restarted, f"{V2}/image_generation/model/Stuck Model", 200)


async def test_dataset_version_is_recorded_in_the_manifest(hmr: TestClient, tmp_path: Path) -> None:
    """Each apply publishes a snapshot whose manifest carries the next dataset version."""
    data_dir = tmp_path / "data"
    manifest = json.loads(
        (data_dir / "snapshots" / current_snapshot(data_dir) / "manifest.json").read_text()
    )
    version = manifest["dataset_version"]
    cid = await approved_change(hmr, "Versioned Model")
    assert (await apply_one(hmr, cid)).status == 200
    manifest = json.loads(
        (data_dir / "snapshots" / current_snapshot(data_dir) / "manifest.json").read_text()
    )
    assert manifest["dataset_version"] == version + 1
