"""Two-person review: the requestor of a change can neither approve nor apply it."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER2_KEY, APPROVER_KEY, REQUESTOR_KEY

V2 = "/api/model_references/v2"
Q = f"{V2}/pending_queue"
A = {"apikey": APPROVER_KEY}  # approver 200
B = {"apikey": APPROVER2_KEY}  # approver 201
REQ = {"apikey": REQUESTOR_KEY}
RULE = "Two-person review"


async def propose(client: TestClient, name: str, headers: dict[str, str]) -> int:
    body = {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False}
    resp = await client.post(f"{V2}/image_generation", json=body, headers=headers)
    assert resp.status == 202, await resp.text()
    return int((await resp.json())["change_id"])


async def review(client: TestClient, headers: dict[str, str], **ids: list[int]) -> Any:
    body: dict[str, Any] = {"batch_title": "review", **ids}
    if ids.get("rejected_ids"):
        body["reject_reason"] = "no"
    return await client.post(f"{Q}/batches", json=body, headers=headers)


async def status_of(client: TestClient, change_id: int) -> str:
    resp = await client.get(f"{Q}/changes/{change_id}", headers=REQ)
    return str((await resp.json())["status"])


async def test_approving_only_ones_own_change_is_403(system: TestClient) -> None:
    """An approver who proposed a change gets a 403 naming the rule, and the change stays pending."""
    own = await propose(system, "Own Model", A)
    resp = await review(system, A, approved_ids=[own])
    assert resp.status == 403
    assert RULE in (await resp.json())["detail"]
    assert await status_of(system, own) == "pending"


async def test_a_mixed_batch_approves_the_others_and_names_the_own(system: TestClient) -> None:
    """Own changes are refused by id in the answer; the others are approved in the same request."""
    own = await propose(system, "Own Mixed", A)
    other = await propose(system, "Other Mixed", REQ)
    resp = await review(system, A, approved_ids=[own, other])
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [c["change_id"] for c in body["approved"]] == [other]
    assert [r["change_id"] for r in body["refused"]] == [own]
    assert RULE in body["refused"][0]["reason"]
    assert (await status_of(system, own), await status_of(system, other)) == ("pending", "approved")


async def test_another_approver_approves_and_the_proposer_cannot_apply(system: TestClient) -> None:
    """B approves A's change; A applying it is a 403, B applying it is a 200."""
    own = await propose(system, "Own Applied", A)
    assert (await review(system, B, approved_ids=[own])).status == 200
    resp = await system.post(f"{Q}/changes/{own}/apply", json={}, headers=A)
    assert resp.status == 403
    assert RULE in (await resp.json())["detail"]
    assert await status_of(system, own) == "approved"
    resp = await system.post(f"{Q}/changes/{own}/apply", json={}, headers=B)
    assert resp.status == 200, await resp.text()
    record = (await resp.json())["record"]
    assert (record["requested_by"], record["approved_by"], record["applied_by"]) == (
        "200",
        "201",
        "201",
    )


async def test_a_batch_apply_applies_the_others_and_names_the_own(system: TestClient) -> None:
    """Applying a batch holding the caller's own change applies the rest and refuses that one."""
    own = await propose(system, "Own In Batch", A)
    other = await propose(system, "Other In Batch", REQ)
    resp = await review(system, B, approved_ids=[own, other])
    batch_id = (await resp.json())["batch_id"]
    resp = await system.post(f"{Q}/apply_batch/{batch_id}", headers=A)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [c["change_id"] for c in body["applied"]] == [other]
    assert [r["change_id"] for r in body["refused"]] == [own]
    assert await status_of(system, own) == "approved"


async def test_a_proposer_may_withdraw_by_rejecting(system: TestClient) -> None:
    """Rejecting one's own change is allowed: it only withdraws it."""
    own = await propose(system, "Own Withdrawn", A)
    resp = await review(system, A, rejected_ids=[own])
    assert resp.status == 200, await resp.text()
    assert await status_of(system, own) == "rejected"
