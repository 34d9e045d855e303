"""End to end through real nginx: the `make up` topology (two read replicas, writer, stats)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import APPROVER_KEY, AUTH_USERS, LEGACY_DIR, REQUESTOR_KEY
from tests.helpers import clean_env, free_port

#: the `make up` topology: deploy/local.py starts nginx and four service processes
pytestmark = [pytest.mark.e2e, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[1]
V2 = "/api/model_references/v2"


class Deployment:
    """One `deploy/local.py up` on a temporary data dir; stopped with `down`."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "data"
        self.port = free_port()
        self.auth = root / "auth.json"
        self.auth.write_text(json.dumps(AUTH_USERS))
        self.state: dict[str, Any] = {}

    def _local(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, str(REPO / "deploy" / "local.py"), *args],
            cwd=REPO,
            env=clean_env(),
            timeout=90,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"deploy/local.py {args[0]} failed:\n{done.stderr}"

    def up(self) -> None:
        self._local(
            "up",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--seed-dir",
            str(LEGACY_DIR),
            "--auth-file",
            str(self.auth),
            "--horde-url",
            "off",
        )
        self.state = json.loads((self.data_dir / "run" / "state.json").read_text())

    def down(self) -> None:
        self._local("down", "--data-dir", str(self.data_dir))

    def url(self, path: str, service: str = "nginx") -> str:
        return f"http://127.0.0.1:{self.state['ports'][service]}{path}"

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        os.killpg(int(self.state["pids"][service]), sig)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    dep = Deployment(tmp_path)
    dep.up()
    try:
        yield dep
    finally:
        dep.down()


async def fetch(
    session: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any, Any]:
    async with session.request(method, url, **kw) as resp:
        body = await resp.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body
        return resp.status, resp.headers, parsed


async def test_every_route_reaches_its_service(deployment: Deployment) -> None:
    """Each family of paths is answered by the service the routing table names."""
    url = deployment.url
    async with aiohttp.ClientSession() as s:
        status, headers, body = await fetch(s, "GET", url(f"{V2}/image_generation"))
        assert status == 200 and "X-Snapshot-Id" in headers and len(body) == 161  # read
        status, _, body = await fetch(s, "GET", url("/api/heartbeat"))
        assert status == 200 and "ai_horde" in body  # stats
        status, _, body = await fetch(s, "GET", url(f"{V2}/image_generation/popular"))
        assert status == 200 and body == []  # stats, AI-Horde off
        status, _, body = await fetch(s, "GET", url("/api/model_references/statistics/blip"))
        assert status == 200 and body["total_models"] == 2  # stats
        for path in (f"{V2}/pending_queue/changes", f"{V2}/me/roles", f"{V2}/blip/pending"):
            status, _, body = await fetch(s, "GET", url(path))
            assert (status, body) == (401, {"detail": "Not authenticated"}), path  # write
        status, _, body = await fetch(s, "POST", url(f"{V2}/blip"), json={"name": "x"})
        assert status == 401  # a write reaches the writer, not the read service's 503
        status, _, body = await fetch(
            s, "GET", url(f"{V2}/text_generation/model/acrastt/Marx-3B-V3")
        )
        assert status == 200 and body["name"] == "acrastt/Marx-3B-V3"  # slashes kept
        status, _, body = await fetch(s, "GET", url("/api/openapi.json"))
        assert status == 200 and "/api/heartbeat" in body["paths"]
        for path in ("/api/metrics", "/api/internal/snapshots/current"):
            status, _, _ = await fetch(s, "GET", url(path))
            assert status == 404, path


async def test_apply_is_visible_on_both_replicas(deployment: Deployment) -> None:
    """propose -> approve -> apply through nginx; both replicas serve the model within a second."""
    url = deployment.url
    async with aiohttp.ClientSession() as s:
        body = {"name": "Deployed Model", "baseline": "flux_1", "nsfw": False}
        status, _, change = await fetch(
            s, "POST", url(f"{V2}/image_generation"), json=body, headers={"apikey": REQUESTOR_KEY}
        )
        assert status == 202
        # warm nginx's micro-cache on the category: the publish must get through it
        for _ in range(3):
            status, headers, _ = await fetch(s, "GET", url(f"{V2}/image_generation"))
        assert headers.get("X-Cache") == "HIT"
        approver = {"apikey": APPROVER_KEY}
        review = {"batch_title": "deploy", "approved_ids": [change["change_id"]]}
        status, _, _ = await fetch(
            s, "POST", url(f"{V2}/pending_queue/batches"), json=review, headers=approver
        )
        assert status == 200
        apply_url = url(f"{V2}/pending_queue/changes/{change['change_id']}/apply")
        status, _, _ = await fetch(s, "POST", apply_url, json={}, headers=approver)
        assert status == 200
        applied_at = time.monotonic()
        for replica in ("read_api_0", "read_api_1"):
            model_url = url(f"{V2}/image_generation/model/Deployed Model", replica)
            while True:
                status, _, _ = await fetch(s, "GET", model_url)
                if status == 200:
                    break
                assert time.monotonic() - applied_at < 1.0, f"{replica} did not see the model"
                await asyncio.sleep(0.02)
        # through nginx: at most the micro-cache's second on top
        while True:
            status, _, body = await fetch(s, "GET", url(f"{V2}/image_generation"))
            if "Deployed Model" in body:
                break
            assert time.monotonic() - applied_at < 2.5, "nginx kept serving the old category"
            await asyncio.sleep(0.05)


async def test_killing_a_replica_loses_no_request(deployment: Deployment) -> None:
    """Requests keep succeeding while one read replica is killed: nginx retries the other."""
    statuses: list[int] = []
    async with aiohttp.ClientSession() as s:

        async def hammer(worker: int) -> None:
            for i in range(60):
                # distinct URLs bypass the micro-cache, so every request reaches a replica
                path = f"{V2}/image_generation/search?limit={1 + (worker * 60 + i) % 500}"
                status, _, _ = await fetch(s, "GET", deployment.url(path))
                statuses.append(status)

        tasks = [asyncio.create_task(hammer(w)) for w in range(4)]
        await asyncio.sleep(0.1)
        deployment.kill("read_api_0")
        await asyncio.gather(*tasks)
    assert len(statuses) == 240 and set(statuses) == {200}


async def test_writer_down_leaves_reads_working(deployment: Deployment) -> None:
    """With the write queue stopped, reads answer and writes get 503 in the error envelope."""
    deployment.kill("write_queue", signal.SIGTERM)
    await asyncio.sleep(0.5)
    async with aiohttp.ClientSession() as s:
        status, _, body = await fetch(
            s, "GET", deployment.url(f"{V2}/text_generation/search?limit=7")
        )
        assert status == 200 and len(body["results"]) == 7
        status, _, body = await fetch(
            s,
            "POST",
            deployment.url(f"{V2}/blip"),
            json={"name": "x"},
            headers={"apikey": REQUESTOR_KEY},
        )
        assert status == 503 and isinstance(body["detail"], str)


async def test_stats_down_leaves_reads_working(deployment: Deployment) -> None:
    """With stats stopped, reads answer and stats paths get 503 in the error envelope."""
    deployment.kill("stats", signal.SIGTERM)
    await asyncio.sleep(0.5)
    async with aiohttp.ClientSession() as s:
        status, _, _ = await fetch(
            s, "GET", deployment.url(f"{V2}/image_generation/search?limit=3")
        )
        assert status == 200
        status, _, body = await fetch(s, "GET", deployment.url("/api/heartbeat"))
        assert status == 503 and isinstance(body["detail"], str)


async def test_nginx_own_errors_speak_the_error_envelope(deployment: Deployment) -> None:
    """An overlong URL is a JSON 414 and overlong headers a JSON 431, not nginx's HTML pages."""
    async with aiohttp.ClientSession() as s:
        status, headers, body = await fetch(s, "GET", deployment.url("/api/" + "a" * 9000))
        assert (status, body) == (414, {"detail": "URI Too Long"})
        assert headers["Content-Type"] == "application/json"
        status, headers, body = await fetch(
            s, "GET", deployment.url(f"{V2}/blip"), headers={"X-Big": "b" * 9000}
        )
        assert (status, body) == (431, {"detail": "Request Header Fields Too Large"})
        assert headers["Content-Type"] == "application/json"
