"""Helpers the test modules share: free ports, the `hmr` command, starting, waiting for, stopping."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aioresponses import aioresponses
from aioresponses.core import RequestCall

from horde_model_records import Category, structure_record
from shared.dataset import Dataset, upsert_record

#: the `hmr` console script of this venv (`python -m services.cli` when it is not installed)
HMR_SCRIPT = Path(sys.executable).with_name("hmr")
HMR = [str(HMR_SCRIPT)] if HMR_SCRIPT.is_file() else [sys.executable, "-m", "services.cli"]

#: urllib without the environment's proxies: every test URL is on 127.0.0.1
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(drop: Sequence[str] = ("HMR_",), **extra: str) -> dict[str, str]:
    """This process's environment without the variables starting with `drop`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop))}
    env.update(extra)
    return env


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET, error statuses included; OSError when nothing answers."""
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def wait_for_server(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    *,
    within: float = 10.0,
    ready: Callable[[int], bool] = lambda status: True,
) -> None:
    """Poll `url` until its status passes `ready` (any answer by default).

    Fails the test with the end of `log` when `proc` exits first or `within` seconds pass.
    """
    deadline = time.monotonic() + within
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError):  # refused, reset or timed out: not up yet
            if ready(http_get(url, timeout=2.0)[0]):
                return
        if time.monotonic() > deadline:
            pytest.fail(f"{url} was not ready within {within} s:\n{_tail(log)}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if `proc` has not exited within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    *,
    ready_url: str,
    log: Path,
    within: float = 10.0,
    ready: Callable[[int], bool] = lambda status: True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv` (output to `log`), wait until `ready_url` is ready, and always stop it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    try:
        wait_for_server(ready_url, proc, log, within=within, ready=ready)
        yield proc
    finally:
        stop(proc)


@contextlib.contextmanager
def running_hmr_all(
    tmp_path: Path,
    auth_users: Mapping[str, Any],
    *,
    seed_dir: Path | None = None,
    within: float = 10.0,
) -> Iterator[str]:
    """A real `hmr all` process on a fresh data dir and a free port (seeded from `seed_dir`, else
    the bundled sample), with a file auth of `auth_users` and no outbound traffic; its base URL,
    once every service is ready (the write service's dataset loaded)."""
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps(auth_users))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [*HMR, "all", "--data-dir", str(tmp_path / "data"), "--port", str(port)]
    command += ["--auth-file", str(auth), "--access-log", "false"]
    if seed_dir is not None:
        command += ["--seed-dir", str(seed_dir)]
    # AI-Horde (stats polling) points at a closed local port
    env = {**os.environ, "HMR_HORDE_URL": "http://127.0.0.1:9/api/", "HMR_STARTUP_POLL_WAIT": "0"}
    with running(
        command,
        # the seeded snapshot is served and the write service has loaded it in the background
        ready_url=f"{base}/readyz",
        ready=lambda status: status == 200,
        log=tmp_path / "hmr.log",
        env=env,
        within=within,
    ):
        yield base


# --- polling a served app --------------------------------------------------------------------------

#: a test client (paths) or a plain session (absolute URLs): both answer `await x.get(url)`
Getter = TestClient | aiohttp.ClientSession


async def wait_for_status(
    client: Getter, path: str, status: int = 200, *, within: float = 5.0
) -> aiohttp.ClientResponse:
    """GET `path` until it answers `status`; that answer, its body read. Fails after `within` s."""
    deadline = time.monotonic() + within
    while True:
        resp = await client.get(path)
        await resp.read()  # releases the connection; .json()/.text() still work
        if resp.status == status:
            return resp
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not answer {status} within {within} s (last {resp.status})")
        await asyncio.sleep(0.02)


async def wait_for_json(
    client: Getter, path: str, check: Callable[[Any], bool], *, within: float = 5.0
) -> Any:
    """The JSON of a 200 from `path` once `check(body)` holds. Fails after `within` s."""
    deadline = time.monotonic() + within
    body: Any = None
    while True:
        resp = await client.get(path)
        if resp.status == 200:
            body = await resp.json()
            if check(body):
                return body
        else:
            await resp.read()
        if time.monotonic() > deadline:
            pytest.fail(f"{path} never satisfied the check in {within} s; last: {body!r}"[:600])
        await asyncio.sleep(0.02)


# --- outbound clients under aioresponses -----------------------------------------------------------


class Sleeps:
    """A `sleep` for clients with one: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def requests_made(outbound: aioresponses) -> list[RequestCall]:
    """Every request that reached the aioresponses mock, of any URL, in order per URL."""
    return [call for made in outbound.requests.values() for call in made]


def with_model(dataset: Dataset, name: str) -> Dataset:
    """`dataset` with one more image model named `name`."""
    record = structure_record(
        Category.image_generation,
        {"name": name, "baseline": "flux_1", "nsfw": False, "config": {"download": []}},
    )
    return upsert_record(dataset, Category.image_generation, record, int(time.time()))


@contextlib.contextmanager
def threaded_http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """A plain HTTP server of this process on a free loopback port, answering with `handler`
    in a thread; yields its port and always shuts it down."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
