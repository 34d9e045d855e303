"""The text toolkit's queued model edits (spec 07 §5): common fields for a group and a model's
name exception go through the review queue (two-person rule), then apply like any update."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER2_KEY, APPROVER_KEY, READER_KEY, REQUESTOR_KEY
from tests.helpers import wait_for_json

V2 = "/api/model_references/v2"
T = V2 + "/text_generation"
Q = V2 + "/pending_queue"
REQ = {"apikey": REQUESTOR_KEY}
APPROVER = {"apikey": APPROVER_KEY}
SystemFactory = Callable[..., Awaitable[TestClient]]

#: the bundled sample's text models, each its own group
TALES = "ExampleOrg/Tiny-Tales-1B"
TALES_GROUP = "Tiny-Tales"


async def put(
    client: TestClient, path: str, body: Any, status: int, key: str = REQUESTOR_KEY
) -> Any:
    resp = await client.put(T + path, json=body, headers={"apikey": key})
    assert resp.status == status, await resp.text()
    return await resp.json()


async def change(client: TestClient, change_id: int) -> Any:
    resp = await client.get(f"{Q}/changes/{change_id}", headers=REQ)
    assert resp.status == 200
    return await resp.json()


async def test_common_fields_queue_one_update_per_canonical_member(system: TestClient) -> None:
    """One update per member, with the fields merged in, notes and a shared batch_id."""
    body = await put(
        system,
        f"/group/common_fields?name={TALES_GROUP}",
        {"baseline": "llama", "tags": ["a"], "x": 1},
        202,
    )
    assert body["updated_count"] == 1 and len(body["pending_change_ids"]) == 1
    uuid.UUID(body["batch_id"], version=4)
    queued = await change(system, body["pending_change_ids"][0])
    assert queued["model_name"] == TALES and queued["operation"] == "update"
    assert queued["status"] == "pending" and queued["batch_id"] is None
    assert queued["notes"] == f"Batch group update for '{TALES_GROUP}'"
    assert queued["request_metadata"] == {
        "route": "update_group_common_fields",
        "batch_id": body["batch_id"],
    }
    assert queued["payload"]["baseline"] == "llama" and queued["payload"]["tags"] == ["a"]
    assert queued["payload"]["description"]  # the rest of the stored record is kept


async def test_common_fields_apply_after_two_person_review(system: TestClient) -> None:
    """The requestor cannot approve its own batch update; an approver approves and applies it."""
    body = await put(system, f"/group/common_fields?name={TALES_GROUP}", {"nsfw": True}, 202)
    ids = body["pending_change_ids"]
    review = {"batch_title": "tales", "approved_ids": ids, "rejected_ids": []}
    resp = await system.post(Q + "/batches", json=review, headers=REQ)
    assert resp.status == 403  # a requestor is no approver
    resp = await system.post(Q + "/batches", json=review, headers=APPROVER)
    assert resp.status == 200, await resp.text()
    batch = (await resp.json())["batch_id"]
    resp = await system.post(f"{Q}/apply_batch/{batch}", headers=APPROVER)
    assert resp.status == 200, await resp.text()
    record = await wait_for_json(system, f"{T}/model/{TALES}", lambda r: r.get("nsfw") is True)
    assert record["text_model_group"] == TALES_GROUP
    detail = await wait_for_json(
        system, f"{T}/group?name={TALES_GROUP}", lambda b: b["common_fields"].get("nsfw") is True
    )
    assert detail["members"][0]["nsfw"] is True


async def test_an_approvers_own_proposal_needs_another_approver(system: TestClient) -> None:
    """Two-person rule: an approver who proposed the edit cannot approve it; a second one can."""
    body = await put(system, f"/{TALES}/name_exception", {"reason": "legacy"}, 202, APPROVER_KEY)
    review = {"batch_title": "t", "approved_ids": [body["pending_change_id"]], "rejected_ids": []}
    resp = await system.post(Q + "/batches", json=review, headers=APPROVER)
    assert resp.status == 403
    resp = await system.post(Q + "/batches", json=review, headers={"apikey": APPROVER2_KEY})
    assert resp.status == 200


@pytest.mark.parametrize(
    ("query", "body", "status", "detail"),
    [
        ("name=Nope", {"nsfw": True}, 404, "No models found in group 'Nope'"),
        (f"name={TALES_GROUP}", {}, 400, "No fields to update. Provide at least one field."),
        (
            f"name={TALES_GROUP}",
            {"nsfw": None, "bogus": 1},
            400,
            "No fields to update. Provide at least one field.",
        ),
    ],
)
async def test_common_fields_refusals(
    system: TestClient, query: str, body: Any, status: int, detail: str
) -> None:
    """No group is a 404; no non-null field a 400."""
    assert await put(system, f"/group/common_fields?{query}", body, status) == {"detail": detail}


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("", {"nsfw": True}),
        (f"name={TALES_GROUP}", {"nsfw": "yes"}),
        (f"name={TALES_GROUP}", {"tags": "a"}),
        (f"name={TALES_GROUP}", [1]),
    ],
)
async def test_common_fields_bad_input_is_422(system: TestClient, query: str, body: Any) -> None:
    """A missing name or a wrongly typed field is a 422 (before the role check)."""
    await put(system, f"/group/common_fields?{query}", body, 422, READER_KEY)


async def test_name_exception_set_and_clear(system: TestClient) -> None:
    """A reason is queued as name_schema_exception; null queues its removal."""
    body = await put(system, f"/{TALES}/name_exception", {"reason": "keeps its old name"}, 202)
    queued = await change(system, body["pending_change_id"])
    assert queued["payload"]["name_schema_exception"] == "keeps its old name"
    assert queued["notes"] == f"Name exception set for '{TALES}'"
    assert queued["request_metadata"] == {"route": "set_name_exception"}
    body = await put(system, f"/{TALES}/name_exception", {"reason": None}, 202)
    queued = await change(system, body["pending_change_id"])
    assert "name_schema_exception" not in queued["payload"]
    assert queued["notes"] == f"Name exception cleared for '{TALES}'"
    body = await put(system, f"/{TALES}/name_exception", {"reason": ""}, 202)
    queued = await change(system, body["pending_change_id"])
    assert queued["payload"]["name_schema_exception"] == ""  # stored, yet noted as cleared
    assert queued["notes"] == f"Name exception cleared for '{TALES}'"


async def test_name_exception_accepts_an_escaped_slash(system: TestClient) -> None:
    """`Org%2FModel` names the same model as `Org/Model`."""
    resp = await system.put(
        T + "/ExampleOrg%2FTiny-Tales-1B/name_exception", json={"reason": "r"}, headers=REQ
    )
    assert resp.status == 202, await resp.text()


async def test_name_exception_applied_shows_in_the_group(system: TestClient) -> None:
    """Once applied, the exception is listed in the group's exception_members."""
    body = await put(system, f"/{TALES}/name_exception", {"reason": "odd"}, 202)
    review = {"batch_title": "t", "approved_ids": [body["pending_change_id"]], "rejected_ids": []}
    batch = (await (await system.post(Q + "/batches", json=review, headers=APPROVER)).json())[
        "batch_id"
    ]
    assert (await system.post(f"{Q}/apply_batch/{batch}", headers=APPROVER)).status == 200
    detail = await wait_for_json(
        system, f"{T}/group?name={TALES_GROUP}", lambda b: bool(b["exception_members"])
    )
    assert detail["exception_members"] == [{"name": TALES, "reason": "odd"}]


async def test_name_exception_refusals(system: TestClient) -> None:
    """An unknown model is a 404; a body without `reason` a 422."""
    assert await put(system, "/No/Such/name_exception", {"reason": "r"}, 404) == {
        "detail": "Model 'No/Such' not found in text_generation category"
    }
    await put(system, f"/{TALES}/name_exception", {}, 422)
    await put(system, f"/{TALES}/name_exception", {"reason": 5}, 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/group/common_fields?name={TALES_GROUP}", {"nsfw": True}),
        (f"/{TALES}/name_exception", {"reason": "r"}),
    ],
)
async def test_queued_edits_check_key_role_mode_and_queue(
    system: TestClient,
    make_system: SystemFactory,
    tmp_path: Path,
    auth_file: Path,
    path: str,
    body: Any,
) -> None:
    """401 without a key, 403 for a reader, 503 on a REPLICA, a legacy PRIMARY or with no queue."""
    resp = await system.put(T + path, json=body)
    assert resp.status == 401
    await put(system, path, body, 403, READER_KEY)
    for n, overrides in enumerate(
        [
            {"HMR_MODE": "REPLICA"},
            {"HMR_CANONICAL_FORMAT": "legacy"},
            {"HMR_QUEUE_ENABLED": "false"},
        ]
    ):
        client = await make_system(tmp_path / f"v{n}", HMR_AUTH_FILE=auth_file, **overrides)
        await put(client, path, body, 503)
