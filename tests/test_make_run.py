"""`make run` for real (its setup step satisfied by a fresh stamp): its variables, its refusals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import AUTH_USERS, REQUESTOR_KEY
from tests.helpers import clean_env, free_port, http_get, wait_for_server
from tests.test_cli_startup import listening

#: every test here runs make, which runs `hmr` as a process
pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def make_run(tmp_path: Path, port: int, **variables: str) -> list[str]:
    """The `make run` command line on `port` with `tmp_path/var` as data dir and this venv.

    STAMP names a file newer than the pyprojects, so `setup` has nothing to do (no pip here).
    """
    stamp = tmp_path / "stamp"
    stamp.touch()
    given = {"DATA_DIR": str(tmp_path / "var"), **variables}
    return [
        "make",
        "--no-print-directory",
        "run",
        f"BIN={VENV_BIN}",
        f"STAMP={stamp}",
        f"PORT={port}",
        *(f"{k}={v}" for k, v in given.items()),
    ]


def make_env() -> dict[str, str]:
    """No HMR_* variable, no make variable of this repository, no outer make's flags."""
    return clean_env(
        drop=("HMR_", "MAKE", "MFLAGS", "SEED_DIR", "AUTH_FILE", "HORDE_URL", "PORT", "DATA_DIR")
    )


def test_make_run_on_a_taken_port_stops_before_it_starts_anything(tmp_path: Path) -> None:
    """A second `make run` (its port taken) fails with one line naming the port and its holder,
    before it prints development keys or seeds the data dir."""
    with listening() as port:
        done = subprocess.run(
            make_run(tmp_path, port),
            cwd=REPO,
            env=make_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert lines[0].startswith(
        f"run: port {port} on 127.0.0.1 is already in use by pid {os.getpid()} ("
    ), done.stderr
    assert lines[0].endswith("choose another port (PORT=<another port>)")
    assert len(lines) == 2 and re.fullmatch(r"make: \*\*\* \[Makefile:\d+: run\] Error 1", lines[1])
    assert "apikey" not in done.stdout and "hmr all" not in done.stdout, done.stdout
    assert not (tmp_path / "var").exists()


def test_make_run_takes_seed_dir_and_auth_file(tmp_path: Path, legacy_dir: Path) -> None:
    """`make run SEED_DIR=... AUTH_FILE=...` seeds from that directory and takes keys from that
    file (and writes no development auth file)."""
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps(AUTH_USERS))
    port = free_port()
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            make_run(tmp_path, port, SEED_DIR=str(legacy_dir), AUTH_FILE=str(auth)),
            cwd=REPO,
            env=make_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and the hmr it starts: one group to stop
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(f"{base}/readyz", proc, log, within=30, ready=lambda s: s == 200)
        # in the real reference data, not in the bundled sample
        model, _ = http_get(
            f"{base}/api/model_references/v2/image_generation/model/stable_diffusion"
        )
        request = urllib.request.Request(
            f"{base}/api/model_references/v2/me/roles", headers={"apikey": REQUESTOR_KEY}
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            roles = json.loads(resp.read())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert model == 200
    assert roles["is_requestor"] is True
    assert not (tmp_path / "var" / "dev-auth.json").exists()
