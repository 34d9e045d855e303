"""A running read service follows CURRENT: new snapshots within a second, damaged ones refused."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from shared.dataset import Dataset, publish_dataset
from shared.snapshot import SnapshotStore
from tests.helpers import wait_for_status, with_model

V2 = "/api/model_references/v2"


async def test_new_snapshot_is_served_within_a_second(
    make_client: Any, tmp_path: Path, dataset: Dataset
) -> None:
    """After a publish, the running service serves the new model within one second."""
    store = SnapshotStore(tmp_path / "snapshots")
    publish_dataset(store, dataset)
    client = await make_client(tmp_path, HMR_SNAPSHOT_POLL_INTERVAL="0.2")  # the default
    assert (await client.get(f"{V2}/image_generation/model/Fresh")).status == 404
    publish_dataset(store, with_model(dataset, "Fresh"))
    await wait_for_status(client, f"{V2}/image_generation/model/Fresh", 200, within=1.0)
    resp = await client.get(f"{V2}/image_generation")
    assert resp.headers["X-Snapshot-Id"] == "2"


async def test_a_publish_by_this_process_is_served_before_the_next_poll(
    make_client: Any, tmp_path: Path, dataset: Dataset
) -> None:
    """`hmr all`: the writer publishes in the reader's process, which loads the snapshot at once
    rather than at its next poll (here a minute away)."""
    store = SnapshotStore(tmp_path / "snapshots")
    publish_dataset(store, dataset)
    client = await make_client(tmp_path, HMR_SNAPSHOT_POLL_INTERVAL="60")
    assert (await client.get(f"{V2}/image_generation/model/Woken")).status == 404
    # published from a worker thread, as the writer does
    await asyncio.to_thread(publish_dataset, store, with_model(dataset, "Woken"))
    await wait_for_status(client, f"{V2}/image_generation/model/Woken", 200, within=5.0)


async def test_in_flight_requests_survive_publishes(
    make_client: Any, tmp_path: Path, dataset: Dataset
) -> None:
    """Requests running across several publishes all succeed, each from exactly one snapshot."""
    store = SnapshotStore(tmp_path / "snapshots")
    publish_dataset(store, dataset)
    client = await make_client(tmp_path)
    stop = asyncio.Event()
    seen: list[tuple[int, str, bytes]] = []

    async def reader() -> None:
        while not stop.is_set():
            resp = await client.get(f"{V2}/image_generation")
            seen.append((resp.status, resp.headers.get("X-Snapshot-Id", ""), await resp.read()))

    tasks = [asyncio.create_task(reader()) for _ in range(8)]
    current = dataset
    published = {}
    for i in range(3):
        await asyncio.sleep(0.3)
        current = with_model(current, f"Burst {i}")
        snap = publish_dataset(store, current)
        published[str(snap.id)] = snap.files["v2/image_generation.json"]
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tasks)
    assert seen and all(status == 200 for status, _, _ in seen)
    ids = {sid for _, sid, _ in seen}
    assert {"2", "3", "4"} & ids
    for _, sid, body in seen:
        if sid in published:
            assert body == published[sid]  # body and header come from the same snapshot


def install_damaged_snapshot(tmp_path: Path, dataset: Dataset) -> str:
    """Put a snapshot with a corrupted file into the data dir and point CURRENT at it."""
    side = SnapshotStore(tmp_path / "side")
    publish_dataset(side, dataset)
    good = publish_dataset(side, with_model(dataset, "Broken"))
    damaged = good.name.replace(good.name.split("-")[0], "000099")
    shutil.copytree(tmp_path / "side" / good.name, tmp_path / "snapshots" / damaged)
    target = tmp_path / "snapshots" / damaged / "v2" / "image_generation.json"
    target.write_bytes(target.read_bytes().replace(b"Broken", b"Brokem"))
    pointer = tmp_path / "snapshots" / "CURRENT.tmp"
    pointer.write_text(damaged + "\n")
    os.replace(pointer, tmp_path / "snapshots" / "CURRENT")
    return damaged


async def test_damaged_snapshot_is_refused_and_old_one_kept(
    make_client: Any, tmp_path: Path, dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    """A CURRENT pointing at a damaged snapshot is logged and refused; the old one keeps serving."""
    store = SnapshotStore(tmp_path / "snapshots")
    publish_dataset(store, dataset)
    client = await make_client(tmp_path)
    with caplog.at_level(logging.ERROR):
        install_damaged_snapshot(tmp_path, dataset)
        await asyncio.sleep(0.5)
    resp = await client.get(f"{V2}/image_generation/model/Broken")
    assert resp.status == 404 and resp.headers["X-Snapshot-Id"] == "1"
    assert any("snapshot refused" in r.message for r in caplog.records)
    publish_dataset(store, with_model(dataset, "Repaired"))
    await wait_for_status(client, f"{V2}/image_generation/model/Repaired", 200, within=1.0)


async def test_start_with_damaged_current_serves_newest_good(
    make_client: Any, tmp_path: Path, dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    """Starting on a damaged CURRENT, the service serves the newest snapshot that verifies."""
    store = SnapshotStore(tmp_path / "snapshots")
    publish_dataset(store, dataset)
    install_damaged_snapshot(tmp_path, dataset)
    with caplog.at_level(logging.ERROR):
        client = await make_client(tmp_path)
    resp = await client.get(f"{V2}/image_generation")
    assert resp.status == 200 and resp.headers["X-Snapshot-Id"] == "1"


async def test_no_snapshot_yet_is_503_until_one_is_published(
    make_client: Any, tmp_path: Path, dataset: Dataset
) -> None:
    """With an empty data dir reads answer 503 in the envelope, then the first publish is served."""
    client = await make_client(tmp_path)
    resp = await client.get(f"{V2}/image_generation")
    assert resp.status == 503
    assert (await resp.json())["detail"] == "No model reference snapshot has been published yet."
    publish_dataset(SnapshotStore(tmp_path / "snapshots"), dataset)
    await wait_for_status(client, f"{V2}/image_generation", 200, within=1.0)
