"""The write service mounted with the read service: one proposal goes all the way to the reads."""

from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER_KEY, REQUESTOR_KEY
from tests.helpers import wait_for_status

V2 = "/api/model_references/v2"


async def test_propose_approve_apply_is_visible(system: TestClient) -> None:
    """A created model, once approved and applied, is served by the read routes within a second."""
    body = {"name": "Smoke Model", "baseline": "flux_1", "nsfw": False}
    resp = await system.post(f"{V2}/image_generation", json=body, headers={"apikey": REQUESTOR_KEY})
    assert resp.status == 202
    change_id = (await resp.json())["change_id"]
    resp = await system.post(
        f"{V2}/pending_queue/batches",
        json={"batch_title": "smoke", "approved_ids": [change_id]},
        headers={"apikey": APPROVER_KEY},
    )
    assert resp.status == 200
    resp = await system.post(
        f"{V2}/pending_queue/changes/{change_id}/apply", json={}, headers={"apikey": APPROVER_KEY}
    )
    assert resp.status == 200, await resp.text()
    await wait_for_status(system, f"{V2}/image_generation/model/Smoke Model")
