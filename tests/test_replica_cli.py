"""`python -m horde_model_replica fetch|show|diff` against the real read service on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from horde_model_records import Category
from horde_model_replica import REPLICATED_CATEGORIES
from horde_model_replica._cli import main
from shared.dataset import Dataset, delete_record, publish_dataset, upsert_record
from shared.snapshot import SnapshotStore
from tests.test_replica import Primary, start_primary, wait_until_served, with_new_model

IMAGE = Category.image_generation


def cli_env(primary: Primary) -> dict[str, str]:
    return {
        "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": primary.url,
        "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
    }


async def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI in a thread (the servers live on this loop) and capture its output."""
    out = io.StringIO()
    code = await asyncio.to_thread(main, list(argv), env or {}, out)
    return code, out.getvalue()


@pytest.fixture
async def primary(aiohttp_client: Any, real_data_dir: Path) -> Primary:
    return await start_primary(aiohttp_client, real_data_dir)


async def test_fetch_writes_every_category(primary: Primary, tmp_path: Path) -> None:
    """`fetch --out DIR` writes one v2 file per category and reports where each came from."""
    code, out = await run_cli("fetch", "--out", str(tmp_path / "snap"), env=cli_env(primary))
    assert code == 0
    for category in REPLICATED_CATEGORIES:
        assert f"{category.value} " in out
    assert out.count("primary_v2") == len(REPLICATED_CATEGORIES)
    assert len(json.loads((tmp_path / "snap" / "stable_diffusion.json").read_bytes())) == 161


async def test_fetching_again_costs_only_304s(primary: Primary, tmp_path: Path) -> None:
    """A second fetch into the same directory receives no body bytes."""
    await run_cli("fetch", "--out", str(tmp_path / "snap"), env=cli_env(primary))
    code, out = await run_cli("fetch", "--out", str(tmp_path / "snap"), env=cli_env(primary))
    assert code == 0
    assert out.count("not_modified") == len(REPLICATED_CATEGORIES)
    assert out.rstrip().endswith(", 0 body bytes received")


async def test_fetch_without_any_source_exits_1(tmp_path: Path) -> None:
    """Categories without data are named on stderr and the exit status is 1."""
    env = {
        "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": "",
        "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
    }
    code, out = await run_cli("fetch", "--out", str(tmp_path / "snap"), env=env)
    assert code == 1 and out.count("no_data") == len(REPLICATED_CATEGORIES)


async def test_show_prints_one_model_from_a_fetched_directory(
    primary: Primary, tmp_path: Path
) -> None:
    """`show CATEGORY NAME --dir DIR` prints the v2 record, offline."""
    await run_cli("fetch", "--out", str(tmp_path / "snap"), env=cli_env(primary))
    calls = primary.faults.total
    code, out = await run_cli(
        "show", "text_generation", "acrastt/Marx-3B-V3", "--dir", str(tmp_path / "snap")
    )
    assert code == 0
    record = json.loads(out)
    assert record["name"] == "acrastt/Marx-3B-V3" and record["parameters"] == 3_000_000_000
    assert primary.faults.total == calls


async def test_show_asks_the_primary_without_a_directory(primary: Primary, tmp_path: Path) -> None:
    """Without --dir, `show` reads through the fetch chain."""
    env = {**cli_env(primary), "AIWORKER_CACHE_HOME": str(tmp_path)}
    code, out = await run_cli("show", "image_generation", "stable_diffusion", env=env)
    assert code == 0 and json.loads(out)["baseline"] == "stable_diffusion_1"


async def test_show_unknown_model_exits_1(primary: Primary, tmp_path: Path) -> None:
    """An unknown model is an error message and exit status 1."""
    env = {**cli_env(primary), "AIWORKER_CACHE_HOME": str(tmp_path)}
    code, out = await run_cli("show", "image_generation", "no such model", env=env)
    assert code == 1 and out == ""


async def test_diff_lists_added_removed_and_changed_models(
    aiohttp_client: Any, tmp_path: Path, dataset: Dataset
) -> None:
    """Two fetches around a publish differ by the added, removed and changed models."""
    store = SnapshotStore(tmp_path / "data" / "snapshots")
    publish_dataset(store, dataset)
    primary = await start_primary(aiohttp_client, tmp_path / "data")
    await run_cli("fetch", "--out", str(tmp_path / "old"), env=cli_env(primary))
    changed = attrs.evolve(
        dataset.categories[IMAGE].records["Deliberate"], description="A new description"
    )
    newer = upsert_record(with_new_model(dataset, "Fresh"), IMAGE, changed, int(time.time()))
    publish_dataset(store, delete_record(newer, IMAGE, "stable_diffusion", int(time.time())))
    await wait_until_served(primary, "Fresh")
    await run_cli("fetch", "--out", str(tmp_path / "new"), env=cli_env(primary))
    code, out = await run_cli(
        "diff", str(tmp_path / "old"), str(tmp_path / "new"), "image_generation"
    )
    assert code == 1
    lines = out.splitlines()
    assert "+ Fresh" in lines and "- stable_diffusion" in lines
    assert "~ Deliberate (description)" in lines
    assert lines[-1] == "image_generation: 1 added, 1 removed, 1 changed"


async def test_diff_of_identical_fetches_exits_0(primary: Primary, tmp_path: Path) -> None:
    """No differences: a summary of zeros and exit status 0."""
    await run_cli("fetch", "--out", str(tmp_path / "a"), env=cli_env(primary))
    code, out = await run_cli("diff", str(tmp_path / "a"), str(tmp_path / "a"), "clip")
    assert (code, out) == (0, "clip: 0 added, 0 removed, 0 changed\n")


async def test_diff_of_a_missing_directory_exits_2(tmp_path: Path) -> None:
    """An unreadable snapshot is reported, exit status 2."""
    code, _ = await run_cli("diff", str(tmp_path / "a"), str(tmp_path / "b"), "clip")
    assert code == 2


@pytest.mark.subprocess
async def test_python_dash_m_runs_the_cli(primary: Primary, tmp_path: Path) -> None:
    """`python -m horde_model_replica fetch` works as a real process."""
    env = {**os.environ, **cli_env(primary)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "horde_model_replica",
        "fetch",
        "--out",
        str(tmp_path / "snap"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, stderr.decode()
    assert b"body bytes received" in stdout
