"""End to end through the real `hmr all` command: propose, review, approve, apply, read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import APPROVER_KEY, AUTH_USERS, REQUESTOR_KEY
from tests.helpers import running_hmr_all, wait_for_status

#: a real `hmr all` process, driven over HTTP like a client would
pytestmark = [pytest.mark.e2e, pytest.mark.subprocess]

V1 = "/api/model_references/v1"
V2 = "/api/model_references/v2"
Q = f"{V2}/pending_queue"
REQ = {"apikey": REQUESTOR_KEY}
APPR = {"apikey": APPROVER_KEY}
NAME = "E2E Vista"


@pytest.fixture
def hmr_all(tmp_path: Path) -> Iterator[str]:
    """A real `hmr all` process on a fresh data dir and a free port; its base URL."""
    with running_hmr_all(tmp_path, AUTH_USERS) as base:
        yield base


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    status: int,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> Any:
    async with session.request(method, url, headers=headers, json=body) as resp:
        text = await resp.text()
        assert resp.status == status, f"{method} {url}: {resp.status} {text}"
        return json.loads(text)


async def etag(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as resp:
        assert resp.status == 200
        return resp.headers["ETag"]


async def test_proposed_model_goes_live_everywhere(hmr_all: str) -> None:
    """A proposal reviewed, approved and applied is served by v2, v1, search and metadata."""
    base = hmr_all
    async with aiohttp.ClientSession() as session:
        image_etag = await etag(session, f"{base}{V2}/image_generation")
        text_etag = await etag(session, f"{base}{V2}/text_generation")
        await call(session, "GET", f"{base}{V2}/image_generation/model/{NAME}", 404)

        # the requestor proposes an image model
        proposal = {
            "name": NAME,
            "baseline": "stable_diffusion_1",
            "nsfw": False,
            "description": "A model proposed by the end-to-end test.",
            "config": {
                "download": [
                    {
                        "file_name": "e2e_vista.safetensors",
                        "file_url": "https://huggingface.co/example/e2e_vista.safetensors",
                        "sha256sum": "0" * 64,
                    }
                ]
            },
        }
        record = await call(session, "POST", f"{base}{V2}/image_generation", 202, REQ, proposal)
        cid = record["change_id"]
        assert record["status"] == "pending"
        mine = await call(session, "GET", f"{base}{Q}/my_changes", 200, REQ)
        assert [c["change_id"] for c in mine["items"]] == [cid]

        # the approver finds it in the queue and reviews the diff
        page = await call(session, "GET", f"{base}{Q}/changes?statuses=pending", 200, APPR)
        assert [c["model_name"] for c in page["items"]] == [NAME]
        diff = await call(session, "GET", f"{base}{Q}/changes/{cid}/diff", 200, APPR)
        assert diff["net_operation"] == "added"
        assert diff["is_critical"] is True
        assert "config.download" in diff["fields_added"]

        # approve, then apply
        review = {"batch_title": "e2e", "approved_ids": [cid]}
        result = await call(session, "POST", f"{base}{Q}/batches", 200, APPR, review)
        assert result["batch_id"] == 1
        applied = await call(
            session, "POST", f"{base}{Q}/changes/{cid}/apply", 200, APPR, {"job_id": "e2e-job"}
        )
        assert applied["record"]["status"] == "applied"

        # within one second the read side serves the new snapshot
        url = f"{base}{V2}/image_generation/model/{NAME}"
        model = await (await wait_for_status(session, url, within=1.0)).json()
        assert model["name"] == NAME
        assert model["baseline"] == "stable_diffusion_1"
        assert model["description"] == proposal["description"]

        view = await call(session, "GET", f"{base}{V1}/stable_diffusion.json", 200)
        assert view[NAME]["baseline"] == "stable diffusion 1"
        assert view[NAME]["type"] == "ckpt"
        assert view[NAME]["config"]["download"][0]["file_name"] == "e2e_vista.safetensors"

        found = await call(session, "GET", f"{base}{V2}/search?name_contains=e2e vista", 200)
        assert [r["name"] for r in found["results"]] == [NAME]
        assert found["total"] == 1

        meta = await call(session, "GET", f"{base}{V2}/metadata/image_generation", 200)
        assert meta["total_creates"] == 1
        assert meta["last_operation_type"] == "create"
        assert meta["last_operation_model"] == NAME

        assert await etag(session, f"{base}{V2}/image_generation") != image_etag
        assert await etag(session, f"{base}{V2}/text_generation") == text_etag
