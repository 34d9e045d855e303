"""End to end through real nginx: the `make up` topology (two read replicas, writer, stats)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shlex
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
from tests.fakes.horde import start_fake_horde
from tests.helpers import clean_env, free_port, threaded_http_server

#: the `make up` topology: deploy/local.py starts nginx and four service processes
pytestmark = [pytest.mark.e2e, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
V2 = "/api/model_references/v2"


def local(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `deploy/local.py ARGS` (the recipe of `make up` / `make down`) to its end."""
    return subprocess.run(
        [sys.executable, str(REPO / "deploy" / "local.py"), *args],
        cwd=REPO,
        env=clean_env(),
        timeout=90,
        capture_output=True,
        text=True,
    )


class Deployment:
    """One `deploy/local.py up` on a temporary data dir; stopped with `down`."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "data"
        self.port = free_port()
        self.auth = root / "auth.json"
        self.auth.write_text(json.dumps(AUTH_USERS))
        self.state: dict[str, Any] = {}

    def _local(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = local(*args)
        assert done.returncode == 0, f"deploy/local.py {args[0]} failed:\n{done.stderr}"
        return done

    def up(self, *auth: str) -> subprocess.CompletedProcess[str]:
        """`up` with the real reference data; `auth` are its auth options (default: the test
        auth file, AI-Horde off)."""
        done = self._local(
            "up",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--seed-dir",
            str(LEGACY_DIR),
            *(auth or ("--auth-file", str(self.auth), "--horde-url", "off")),
        )
        self.state = json.loads((self.data_dir / "run" / "state.json").read_text())
        return done

    def down(self) -> None:
        if (self.data_dir / "run" / "state.json").exists():
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
        compose = {"author": "acrastt", "base_name": "Marx", "size": "3B", "version": "V3"}
        status, _, body = await fetch(
            s, "POST", url(f"{V2}/text_generation/compose_name"), json=compose
        )
        assert status == 200 and body["already_exists"] is True  # a POST the read pool answers
        status, _, body = await fetch(
            s, "PUT", url(f"{V2}/text_generation/aliases/Marx"), json={"aliases": []}
        )
        assert status == 401  # toolkit writes reach the writer
        status, _, body = await fetch(s, "GET", url(f"{V2}/text_generation/groups/summary"))
        assert status == 200 and body["total_groups"] == 419  # toolkit reads, the read pool
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
        # nginx serves the whole category from the live snapshot's file (the static path)
        status, headers, _ = await fetch(s, "GET", url(f"{V2}/image_generation"))
        assert headers.get("X-Cache") == "STATIC"
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
        # through nginx: the file of the new live snapshot
        while True:
            status, _, body = await fetch(s, "GET", url(f"{V2}/image_generation"))
            if "Deployed Model" in body:
                break
            assert time.monotonic() - applied_at < 1.0, "nginx kept serving the old category"
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


# --- what `make up` says when it cannot come up, or comes up without auth ---------------------------


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is the deployment's."""


@contextlib.contextmanager
def other_server() -> Iterator[int]:
    """An HTTP server of this process on a loopback port (as `make run` would be), answering
    200 to every GET; yields its port."""
    with threaded_http_server(_Answer) as port:
        yield port


def test_up_refuses_a_taken_port_naming_its_holder(tmp_path: Path) -> None:
    """`up` on a port another server answers on stops at once with one line naming the holder,
    before it seeds or starts anything (nginx could not bind, the check would ask the other)."""
    dep = Deployment(tmp_path)
    try:
        with other_server() as port:
            done = local("up", "--port", str(port), "--data-dir", str(dep.data_dir))
    finally:
        dep.down()  # only if it came up anyway
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith(
        f"up: port {port} on 127.0.0.1 is already in use by pid {os.getpid()} ("
    ), done.stderr
    assert done.stderr.rstrip().endswith("choose another port (PORT=<another port>)")
    assert len(done.stderr.splitlines()) == 1
    assert not dep.data_dir.exists()


def test_up_with_a_missing_seed_dir_prints_only_the_message(tmp_path: Path) -> None:
    """A SEED_DIR that does not exist stops `up` with hmr seed's one line, no traceback."""
    missing = tmp_path / "missing"
    data_dir = tmp_path / "data"
    done = local(
        "up", "--port", str(free_port()), "--data-dir", str(data_dir), "--seed-dir", str(missing)
    )
    assert done.returncode == 2
    assert done.stderr == f"hmr: error: legacy directory not found: {missing}\n"
    assert not (data_dir / "run").exists()


def test_make_up_passes_its_variables_to_local_up() -> None:
    """`make up`'s variables reach deploy/local.py up as its options, JSON id lists intact."""
    variables = {
        "PORT": "19900",
        "DATA_DIR": "/d",
        "SEED_DIR": "/seed",
        "AUTH_FILE": "/auth.json",
        "HORDE_URL": "http://127.0.0.1:9/api/",
        "REQUESTOR_IDS": '["100", "101"]',
        "APPROVER_IDS": "200,201",
    }
    shown = subprocess.run(
        ["make", "-n", "up", f"BIN={VENV_BIN}", *(f"{k}={v}" for k, v in variables.items())],
        cwd=REPO,
        env=clean_env(drop=("HMR_", "MAKE", "MFLAGS")),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in shown.splitlines() if "deploy/local.py up" in line)
    argv = shlex.split(line)
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert options == {
        "--port": "19900",
        "--data-dir": "/d",
        "--seed-dir": "/seed",
        "--auth-file": "/auth.json",
        "--horde-url": "http://127.0.0.1:9/api/",
        "--requestor-ids": '["100", "101"]',
        "--approver-ids": "200,201",
    }


async def test_up_gives_the_writer_requestor_and_approver_ids(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    """With AI-Horde and ids, `up` says nothing about auth and keys get the roles of their ids."""
    fake = await start_fake_horde(aiohttp_server)
    dep = Deployment(tmp_path)
    ids = ("--requestor-ids", "100", "--approver-ids", "[200]")
    # in a thread: the fake AI-Horde on this loop answers the services while `up` waits
    done = await asyncio.to_thread(dep.up, "--horde-url", fake.url, *ids)
    try:
        assert "up:" not in done.stderr  # (the real data's seed warnings come before)
        async with aiohttp.ClientSession() as s:
            roles = {}
            for key in ("horde-requestor-key", "horde-approver-key", "horde-reader-key"):
                status, _, body = await fetch(
                    s, "GET", dep.url(f"{V2}/me/roles"), headers={"apikey": key}
                )
                assert status == 200, body
                roles[key] = (body["is_requestor"], body["is_approver"])
    finally:
        await asyncio.to_thread(dep.down)
    assert roles == {
        "horde-requestor-key": (True, False),
        "horde-approver-key": (True, True),
        "horde-reader-key": (False, False),
    }


async def test_up_without_auth_says_what_is_missing(tmp_path: Path) -> None:
    """Without AUTH_FILE and with AI-Horde off, `up` warns, and a write's 503 names the settings."""
    dep = Deployment(tmp_path)
    done = dep.up("--horde-url", "off")
    try:
        assert done.stderr.splitlines()[-1].startswith(
            "up: every call with an API key answers 503: AI-Horde auth is off (HORDE_URL=off) "
            "and no AUTH_FILE is given; give AUTH_FILE=FILE"
        ), done.stderr
        async with aiohttp.ClientSession() as s:
            status, _, body = await fetch(
                s,
                "POST",
                dep.url(f"{V2}/blip"),
                json={"name": "x"},
                headers={"apikey": REQUESTOR_KEY},
            )
    finally:
        dep.down()
    assert status == 503
    assert body["detail"].startswith(
        "Auth service unavailable: AI-Horde auth is off (HMR_HORDE_URL=off) and no auth file is "
        "set: start the write service with HMR_AUTH_FILE"
    ), body
