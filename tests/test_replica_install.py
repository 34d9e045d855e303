"""`pip install` of libs/replica in a fresh virtualenv: only its own dependencies, and it works.

Needs the package index (PyPI) for aiohttp, attrs and cattrs; takes some tens of seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_replica import start_primary

#: builds a virtualenv and pip-installs into it from the package index
pytestmark = [pytest.mark.subprocess, pytest.mark.network]

REPO = Path(__file__).resolve().parents[1]
#: the services' dependencies: a worker's environment must not get any of them
SERVICE_ONLY = {
    "aiosqlite",
    "aiohttp-apispec",
    "apispec",
    "marshmallow",
    "webargs",
    "horde-model-reference-services",
}


def _run(*argv: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")}
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done


async def test_library_installs_alone_in_a_fresh_virtualenv(
    tmp_path: Path, aiohttp_client: Any, real_data_dir: Path
) -> None:
    """A clean venv gets the library, the record package and their few dependencies, and fetches."""
    primary = await start_primary(aiohttp_client, real_data_dir)
    src = tmp_path / "src"  # a copy, so no build artefacts land in the repository
    ignore = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__")
    shutil.copytree(REPO / "libs" / "records", src / "records", ignore=ignore)
    shutil.copytree(REPO / "libs" / "replica", src / "replica", ignore=ignore)
    venv = tmp_path / "venv"
    py = venv / "bin" / "python"

    def install() -> list[dict[str, str]]:
        _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
        _run(
            py,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            src / "records",
            src / "replica",
            cwd=tmp_path,
        )
        listed = _run(py, "-m", "pip", "list", "--format=json", cwd=tmp_path).stdout
        return json.loads(listed)

    packages = {p["name"].lower() for p in await asyncio.to_thread(install)}
    assert {"horde-model-replica", "horde-model-records", "aiohttp", "attrs", "cattrs"} <= packages
    assert not packages & SERVICE_ONLY

    proc = await asyncio.create_subprocess_exec(
        str(py),
        "-m",
        "horde_model_replica",
        "fetch",
        "--out",
        str(tmp_path / "snap"),
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": primary.url,
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode().count("primary_v2") == 13

    check = (
        "import importlib.util, horde_model_replica; "
        "assert importlib.util.find_spec('services') is None; "
        "assert importlib.util.find_spec('shared') is None; "
        "print(horde_model_replica.__file__)"
    )
    where = await asyncio.to_thread(_run, py, "-c", check, cwd=tmp_path)
    assert str(venv) in where.stdout
