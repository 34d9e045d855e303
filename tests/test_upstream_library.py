"""Upstream's own library (horde-model-reference 8.6.2) in REPLICA mode against a live `hmr all`.

It runs in upstream's interpreter (Python 3.12, its own venv: HMR_UPSTREAM_PYTHON, by default
/work/upstream-venv/bin/python); without one the test is skipped. The library is given our
service as its PRIMARY and no other source, so every record, export and catalog it ends up with
came from us.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import HMR, free_port, running

UPSTREAM_PYTHON = Path(os.environ.get("HMR_UPSTREAM_PYTHON", "/work/upstream-venv/bin/python"))
CHECK = Path(__file__).with_name("upstream_replica_check.py")

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not UPSTREAM_PYTHON.is_file(), reason="no upstream 8.6.2 interpreter"),
]


def test_upstream_library_loads_everything_without_a_warning(
    tmp_path: Path, legacy_dir: Path
) -> None:
    """Every category loads with no record dropped, and the licensing, guidance and baseline
    exports are taken (16 definitions, 6 assets, 13 baselines) with 0 warnings."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/api"
    command = [
        *HMR,
        "all",
        "--data-dir",
        str(tmp_path / "data"),
        "--seed-dir",
        str(legacy_dir),
        "--port",
        str(port),
        "--access-log",
        "false",
    ]
    env = {**os.environ, "HMR_HORDE_URL": "http://127.0.0.1:9/api/", "HMR_STARTUP_POLL_WAIT": "0"}
    with running(
        command,
        ready_url=f"{base}/model_references/v2/image_generation",
        ready=lambda status: status == 200,
        log=tmp_path / "hmr.log",
        env=env,
        within=30.0,
    ):
        done = subprocess.run(
            [str(UPSTREAM_PYTHON), str(CHECK), base],
            capture_output=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if not k.startswith("HORDE_MODEL_")},
            check=False,
        )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()[-3000:]
    result = json.loads(done.stdout)
    assert result["warnings"] == []
    assert result["invalid_records"] == 0
    assert result["categories"]["image_generation"] == 161
    assert result["categories"]["text_generation"] == 719
    assert (result["licenses"], result["assets"]) == (16, 6)
    assert len(result["baselines"]) == 13 and "krea2_turbo" in result["baselines"]
