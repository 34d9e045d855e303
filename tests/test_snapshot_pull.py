"""A read replica on another host pulls snapshots from the write service over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER_KEY, REQUESTOR_KEY
from tests.helpers import wait_for_status

V2 = "/api/model_references/v2"


async def apply_new_model(system: TestClient, name: str) -> None:
    body = {"name": name, "baseline": "flux_1", "nsfw": False}
    resp = await system.post(f"{V2}/image_generation", json=body, headers={"apikey": REQUESTOR_KEY})
    cid = (await resp.json())["change_id"]
    review = {"batch_title": "pull", "approved_ids": [cid]}
    headers = {"apikey": APPROVER_KEY}
    assert (
        await system.post(f"{V2}/pending_queue/batches", json=review, headers=headers)
    ).status == 200
    resp = await system.post(f"{V2}/pending_queue/changes/{cid}/apply", json={}, headers=headers)
    assert resp.status == 200


async def test_replica_pulls_and_follows_the_writer(
    system: TestClient, make_client: Any, tmp_path: Path
) -> None:
    """A replica with its own empty data dir serves the writer's snapshot and follows new ones."""
    source = str(system.make_url("/")).rstrip("/")
    replica = await make_client(tmp_path / "replica", HMR_SNAPSHOT_SOURCE=source)
    writer_etag = (await system.get(f"{V2}/image_generation")).headers["ETag"]
    resp = await replica.get(f"{V2}/image_generation")
    assert resp.status == 200 and resp.headers["ETag"] == writer_etag
    await apply_new_model(system, "Pulled Model")
    await wait_for_status(replica, f"{V2}/image_generation/model/Pulled Model", within=2.0)
    names = sorted(p.name for p in (tmp_path / "replica" / "snapshots").iterdir())
    assert "CURRENT" in names and len(names) >= 3


async def test_snapshot_files_are_served_only_from_the_manifest(system: TestClient) -> None:
    """The internal snapshot route serves listed files and refuses anything else."""
    name = (await (await system.get("/api/internal/snapshots/current")).json())["name"]
    ok = await system.get(f"/api/internal/snapshots/{name}/v2/blip.json")
    assert ok.status == 200 and ok.headers["Cache-Control"].endswith("immutable")
    for path in (
        f"{name}/../../write_queue.sqlite3",
        f"{name}/nope.json",
        "999999-abcdef/manifest.json",
    ):
        resp = await system.get(f"/api/internal/snapshots/{path}")
        assert resp.status == 404, path
