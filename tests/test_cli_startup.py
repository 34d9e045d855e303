"""How `hmr` servers start: the port first, the URL only once it answers, a clear line otherwise."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import HMR, clean_env, free_port, http_get, running, stop

#: every test here runs the `hmr` console script as a process
pytestmark = pytest.mark.subprocess


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A socket of this process listening on a loopback port that never answers; its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def hmr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HMR, *args],
        env=env if env is not None else clean_env(HMR_HORDE_URL="off"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_all_on_a_taken_port_fails_at_once_naming_its_holder(tmp_path: Path) -> None:
    """`hmr all` on a taken port exits 2 with one line naming the port and the process holding
    it, before it seeds the data dir or prints a URL."""
    data_dir = tmp_path / "data"
    with listening() as port:
        done = hmr("all", "--data-dir", str(data_dir), "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"hmr: error: port {port} on 127.0.0.1 is already in use by pid {os.getpid()} ("
    ), done.stderr
    assert done.stderr.rstrip().endswith("choose another port (--port or HMR_PORT)")
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""
    assert not data_dir.exists()


def test_a_second_writer_on_a_data_dir_stops_before_printing_a_url(tmp_path: Path) -> None:
    """A second `hmr all` on the data dir of a running one (another port) exits 2 with the
    store lock's one line naming the first one's pid, and never prints its URL."""
    data_dir = tmp_path / "data"
    first = free_port()
    argv = [*HMR, "all", "--data-dir", str(data_dir), "--port", str(first)]
    with running(
        argv,
        ready_url=f"http://127.0.0.1:{first}/readyz",
        log=tmp_path / "first.log",
        env=clean_env(HMR_HORDE_URL="off"),
        ready=lambda status: status == 200,
    ) as proc:
        second = free_port()
        done = hmr("all", "--data-dir", str(data_dir), "--port", str(second))
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"hmr: error: another write service (pid {proc.pid}) holds the store in {data_dir}; "
        "only one writer may run on a data directory"
    ), done.stderr
    assert "hmr all: http" not in done.stderr


def test_all_prints_its_url_only_once_it_answers(tmp_path: Path) -> None:
    """With AI-Horde not answering, startup waits for it, and the URL comes only when the
    server accepts connections: a request right after the line is answered."""
    port = free_port()
    log = tmp_path / "all.log"
    with listening() as horde:  # accepts connections, never answers: startup waits its limit
        env = clean_env(
            HMR_HORDE_URL=f"http://127.0.0.1:{horde}/api/",
            HMR_STARTUP_POLL_WAIT="1.5",
            HMR_LOG_FORMAT="text",
        )
        argv = [*HMR, "all", "--data-dir", str(tmp_path / "data"), "--port", str(port)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while f"hmr all: http://127.0.0.1:{port}/api/" not in log.read_text(errors="replace"):
                assert proc.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.01)
            try:
                status, _ = http_get(f"http://127.0.0.1:{port}/livez", timeout=2)
            except OSError as exc:
                pytest.fail(f"the URL was printed before the server answered: {exc}")
        finally:
            stop(proc)
    assert status == 200
