"""A file damaged in place never spreads: publishes check what they reuse, readers say what they
refuse, and every replica ends on the newest good snapshot."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from shared.dataset import Dataset, publish_dataset
from shared.snapshot import SnapshotStore
from tests.conftest import APPROVER2_KEY, APPROVER_KEY, REQUESTOR_KEY
from tests.helpers import wait_for_status, with_model

V2 = "/api/model_references/v2"
Q = f"{V2}/pending_queue"
BLIP = "v2/blip.json"


def flip_one_byte(path: Path) -> None:
    """Damage a file in place (same inode), as a disk or a stray editor would."""
    with path.open("r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0x01]))


def test_a_publish_rewrites_a_damaged_file_instead_of_linking_it(
    tmp_path: Path, dataset: Dataset
) -> None:
    """An unchanged category whose live file was damaged is written afresh, so the new snapshot
    verifies and carries the right bytes."""
    store = SnapshotStore(tmp_path / "snapshots")
    first = publish_dataset(store, dataset)
    good = first.files[BLIP]
    flip_one_byte(store.root / first.name / BLIP)
    second = publish_dataset(store, with_model(dataset, "After Damage"))
    assert store.read(second.name).files[BLIP] == good  # read() verifies every hash
    assert (store.root / second.name / BLIP).stat().st_ino != (
        store.root / first.name / BLIP
    ).stat().st_ino


def test_an_intact_unchanged_file_is_still_linked(tmp_path: Path, dataset: Dataset) -> None:
    """The check costs a read, not a copy: intact unchanged files are still hard links."""
    store = SnapshotStore(tmp_path / "snapshots")
    first = publish_dataset(store, dataset)
    second = publish_dataset(store, with_model(dataset, "Linked"))
    assert (store.root / second.name / BLIP).stat().st_ino == (
        store.root / first.name / BLIP
    ).stat().st_ino


async def test_a_reader_says_which_snapshot_and_file_it_refused(
    make_client: Any, tmp_path: Path, dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    """/readyz names the refused snapshot and file, /metrics counts refusals, and the next good
    snapshot clears the note."""
    store = SnapshotStore(tmp_path / "snapshots")
    publish_dataset(store, dataset)
    client = await make_client(tmp_path, HMR_SNAPSHOT_POLL_INTERVAL="0.05")
    side = SnapshotStore(tmp_path / "side")
    damaged = publish_dataset(side, with_model(dataset, "Damaged"))  # built aside, then broken
    flip_one_byte(side.root / damaged.name / BLIP)
    with caplog.at_level(logging.ERROR):
        store.install(damaged.manifest, damaged.files)  # verifies the good bytes it is given
        flip_one_byte(store.root / damaged.name / BLIP)  # ... damaged on disk afterwards
        await asyncio.sleep(0.4)
    ready = await (await client.get("/readyz")).json()
    detail = ready["checks"]["read_snapshot"]["detail"]
    assert f"refused {damaged.name}" in detail and BLIP in detail
    metrics = await (await client.get("/metrics")).text()
    assert "hmr_read_snapshot_refusals 1.0" in metrics
    assert any(BLIP in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    publish_dataset(store, with_model(dataset, "Repaired"))
    await wait_for_status(client, f"{V2}/image_generation/model/Repaired", 200, within=1.0)
    ready = await (await client.get("/readyz")).json()
    assert "refused" not in ready["checks"]["read_snapshot"]["detail"]


async def test_an_apply_after_in_place_damage_publishes_a_good_snapshot(
    system: TestClient, tmp_path: Path
) -> None:
    """After one byte of the live blip file is flipped, the next apply is served by the replica
    (its snapshot verifies) and blip reads still answer the original bytes."""
    await wait_for_status(system, "/readyz")
    blip = await (await system.get(f"{V2}/blip")).read()
    snapshots = tmp_path / "data" / "snapshots"
    live = (snapshots / "CURRENT").read_text().strip()
    flip_one_byte(snapshots / live / BLIP)
    body = {"name": "After The Flip", "baseline": "stable_diffusion_xl", "nsfw": False}
    resp = await system.post(f"{V2}/image_generation", json=body, headers={"apikey": REQUESTOR_KEY})
    change_id = (await resp.json())["change_id"]
    review = {"batch_title": "after the flip", "approved_ids": [change_id]}
    assert (
        await system.post(f"{Q}/batches", json=review, headers={"apikey": APPROVER_KEY})
    ).status == 200
    resp = await system.post(
        f"{Q}/changes/{change_id}/apply", json={}, headers={"apikey": APPROVER2_KEY}
    )
    assert resp.status == 200, await resp.text()
    await wait_for_status(system, f"{V2}/image_generation/model/After The Flip", 200, within=1.0)
    assert await (await system.get(f"{V2}/blip")).read() == blip
    newest = (snapshots / "CURRENT").read_text().strip()
    SnapshotStore(snapshots).read(newest)  # verifies every file's hash
