"""The write store's schema: migrations carry existing data forward, a newer store is refused."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from services.cli import SAMPLE_DIR
from services.write_queue.store import MIGRATIONS, Store, StoreBusy
from tests.helpers import free_port


def _change(change_id: int, route: str) -> dict[str, object]:
    return {
        "change_id": change_id,
        "category": "image_generation",
        "model_name": f"Model {change_id}",
        "operation": "create",
        "payload": {"name": f"Model {change_id}"},
        "requested_by": "100",
        "requested_username": "Req#100",
        "requested_at": 1,
        "status": "pending",
        "updated_at": 1,
        "request_metadata": {"route": route},
    }


def _version_1_store(path: Path, routes: list[str]) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        for change_id, route in enumerate(routes, start=1):
            db.execute(
                "INSERT INTO changes (change_id, category, model_name, status, requested_by, data)"
                " VALUES (?, 'image_generation', ?, 'pending', '100', ?)",
                (change_id, f"Model {change_id}", json.dumps(_change(change_id, route))),
            )


async def test_migration_2_records_the_payload_format_of_existing_changes(tmp_path: Path) -> None:
    """Changes proposed through /v1 before the format column existed come out as legacy."""
    path = tmp_path / "write_queue.sqlite3"
    _version_1_store(path, ["create_v2_image_generation", "update_legacy_model", "create_v2_model"])
    store = await Store.aopen(path)
    try:
        formats = [c.payload_format for c in await store.list_changes()]
    finally:
        await store.aclose()
    assert formats == ["v2", "legacy", "v2"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_store_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    """A store migrated by a newer release is not opened (its data would be misread)."""
    path = tmp_path / "write_queue.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this release knows"):
        await Store.aopen(path)


async def test_a_second_writer_on_the_same_store_is_refused(tmp_path: Path) -> None:
    """While one writer holds the store, opening it again fails naming the directory and holder."""
    path = tmp_path / "write_queue.sqlite3"
    first = await Store.aopen(path)
    try:
        with pytest.raises(StoreBusy, match=rf"pid {os.getpid()}.*{tmp_path}"):
            await Store.aopen(path)
    finally:
        await first.aclose()
    second = await Store.aopen(path)  # released on close
    await second.aclose()


@pytest.mark.subprocess
async def test_hmr_write_queue_exits_when_another_writer_runs(tmp_path: Path) -> None:
    """`hmr write-queue` on a data dir whose store is held exits 2 with a one-line reason."""
    data_dir = tmp_path / "data"
    held = await Store.aopen(data_dir / "write_queue.sqlite3")
    try:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("hmr")),
            "write-queue",
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port()),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HMR_HORDE_URL": "off", "HMR_SEED_DIR": str(SAMPLE_DIR)},
        )
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        await held.aclose()
    assert proc.returncode == 2
    assert "only one writer may run on a data directory" in err.decode()
    assert "Traceback" not in err.decode()
