"""Applies killed with SIGKILL at random moments: nothing is applied twice or half, and the live
snapshot always equals the store.

Bounded: a fixed number of rounds, each a write service started, sent applies, and killed after
a random delay; then retries with the same job ids. Prints its figures (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.cli import SAMPLE_DIR
from services.write_queue.store import Store
from shared.dataset import snapshot_files
from shared.snapshot import SnapshotStore
from tests.conftest import APPROVER2_KEY, APPROVER_KEY, AUTH_USERS, REQUESTOR_KEY
from tests.helpers import HMR, clean_env, free_port, stop, wait_for_server

pytestmark = pytest.mark.subprocess

ROUNDS = 15
CHANGES = 40
IN_FLIGHT = 2  # applies at a time: the lock serialises them, a kill lands inside one
V2 = "/api/model_references/v2"
Q = f"{V2}/pending_queue"


def start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [*HMR, "write-queue", "--data-dir", str(data_dir), "--port", str(port)]
    env = clean_env(
        HMR_AUTH_FILE=str(data_dir.parent / "auth.json"),
        HMR_SEED_DIR=str(SAMPLE_DIR),
        HMR_HORDE_URL="off",
        HMR_ACCESS_LOG="false",
    )
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_for_server(
        f"http://127.0.0.1:{port}/readyz", proc, log, within=20, ready=lambda s: s == 200
    )
    return proc


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json()


async def prepare(base: str) -> list[int]:
    """CHANGES proposals by the requestor, approved by the first approver (one batch)."""
    ids = []
    async with aiohttp.ClientSession() as s:
        for i in range(CHANGES):
            body = {"name": f"Chaos {i:02d}", "baseline": "stable_diffusion_xl", "nsfw": False}
            status, change = await call(
                s,
                "POST",
                f"{base}{V2}/image_generation",
                json=body,
                headers={"apikey": REQUESTOR_KEY},
            )
            assert status == 202, change
            ids.append(change["change_id"])
        review = {"batch_title": "chaos", "approved_ids": ids}
        status, _ = await call(
            s, "POST", f"{base}{Q}/batches", json=review, headers={"apikey": APPROVER_KEY}
        )
        assert status == 200
    return ids


async def apply_all(base: str, ids: list[int], statuses: Counter[int]) -> None:
    """Apply every change with its own job id, a few at a time, until the server dies."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:

        async def one(cid: int) -> None:
            async with gate:
                await attempt(cid)

        async def attempt(cid: int) -> None:
            try:
                status, _ = await call(
                    s,
                    "POST",
                    f"{base}{Q}/changes/{cid}/apply",
                    json={"job_id": f"chaos-{cid}"},
                    headers={"apikey": APPROVER2_KEY},
                )
                statuses[status] += 1
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
                statuses[0] += 1  # the connection died with the server

        await asyncio.gather(*(one(cid) for cid in ids))


async def live_equals_store(data_dir: Path) -> tuple[bool, str]:
    """Whether the live snapshot holds exactly the files the store's dataset publishes."""
    snapshots = SnapshotStore(data_dir / "snapshots")
    live = snapshots.read_current()  # verifies every file's hash
    assert live is not None
    store = await Store.aopen(data_dir / "write_queue.sqlite3")
    try:
        files, _ = snapshot_files(await store.read_dataset())
    finally:
        await store.aclose()
    differing = sorted(rel for rel, data in files.items() if live.files.get(rel) != data)
    return not differing, ", ".join(differing)


async def test_applies_survive_kill_9_at_random_moments(tmp_path: Path) -> None:
    """After ROUNDS kills mid-apply and retries with the same job ids: every change is applied
    exactly once or still approved, retries are idempotent, the live snapshot equals the store,
    and SQLite's integrity check passes."""
    rng = random.Random(20261129)
    data_dir = tmp_path / "data"
    (tmp_path / "auth.json").write_text(json.dumps(AUTH_USERS))
    log = tmp_path / "write-queue.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(data_dir, port, log)
    ids = await prepare(base)
    stop(proc)
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    kills = 0
    for _ in range(ROUNDS):
        proc = start(data_dir, port, log)
        todo = asyncio.create_task(apply_all(base, ids, statuses))
        await asyncio.sleep(rng.uniform(0.05, 0.8))
        if proc.poll() is None:
            proc.kill()  # SIGKILL: no cleanup of any kind
            kills += 1
        proc.wait()
        await todo
    proc = start(data_dir, port, log)  # a last, undisturbed pass: every retry must now succeed
    final: Counter[int] = Counter()
    await apply_all(base, ids, final)
    async with aiohttp.ClientSession() as s:
        changes = [
            (await call(s, "GET", f"{base}{Q}/changes/{cid}", headers={"apikey": REQUESTOR_KEY}))[1]
            for cid in ids
        ]
    stop(proc)

    database = data_dir / "write_queue.sqlite3"
    with sqlite3.connect(database) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        creates = Counter(
            row[0]
            for row in db.execute(
                "SELECT model_name FROM audit WHERE category = 'image_generation' AND operation = 'create'"
            )
        )
    same, differing = await live_equals_store(data_dir)
    print(
        f"\nchaos: {ROUNDS} rounds, {kills} kills in {time.monotonic() - started:.1f} s; "
        f"answers while killing {dict(statuses)}; final pass {dict(final)}; "
        f"applied {sum(c['status'] == 'applied' for c in changes)}/{CHANGES}; "
        f"integrity {integrity}; live snapshot equals store: {same}"
    )
    assert integrity == "ok"
    assert set(final) == {200}  # the same job ids, retried: 200 whether already applied or not
    for change in changes:
        assert change["status"] == "applied", change
        assert change["applied_job_id"] == f"chaos-{change['change_id']}"
        assert creates[change["model_name"]] == 1, change["model_name"]  # exactly once
    assert same, f"live snapshot differs from the store in {differing}"
