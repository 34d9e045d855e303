"""End to end: models approved and applied on a real `hmr all` PRIMARY (seeded from the real
legacy files) reach the legacy repositories as pull requests through `hmr github-sync --once`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import APPROVER_KEY, AUTH_USERS, REQUESTOR_KEY
from tests.fakes.github_api import IMAGE, TEXT, FakeGitHubApi, start_fake_github_api
from tests.github_sync_helpers import entries
from tests.helpers import HMR, clean_env, running_hmr_all

pytestmark = [pytest.mark.e2e, pytest.mark.subprocess]

V2 = "/api/model_references/v2"
Q = f"{V2}/pending_queue"


@pytest.fixture
def hmr_all(tmp_path: Path, legacy_dir: Path) -> Iterator[str]:
    """A real `hmr all` seeded from the real legacy files; its /api base URL."""
    with running_hmr_all(tmp_path, AUTH_USERS, seed_dir=legacy_dir, within=60) as base:
        yield f"{base}/api"


async def _apply(session: aiohttp.ClientSession, api: str, category: str, body: Any) -> None:
    """Propose as the requestor, approve and apply as the approver."""
    base = api.removesuffix("/api")
    async with session.post(
        f"{base}{V2}/{category}", json=body, headers={"apikey": REQUESTOR_KEY}
    ) as resp:
        assert resp.status == 202, await resp.text()
        change = (await resp.json())["change_id"]
    approver = {"apikey": APPROVER_KEY}
    review = {"batch_title": "sync", "approved_ids": [change]}
    async with session.post(f"{base}{Q}/batches", json=review, headers=approver) as resp:
        assert resp.status == 200, await resp.text()
    job = {"job_id": f"job-{change}"}
    async with session.post(f"{base}{Q}/changes/{change}/apply", json=job, headers=approver) as r:
        assert r.status == 200, await r.text()


async def _sync(api: str, gh: FakeGitHubApi) -> tuple[int, str]:
    env = clean_env(
        drop=("HMR_", "HORDE_", "GITHUB_"),
        HMR_GITHUB_SYNC_PRIMARY_API_URL=api,
        HMR_GITHUB_SYNC_API_URL=gh.url,
        HMR_GITHUB_SYNC_TOKEN=gh.token,
        HMR_LOG_FORMAT="text",
    )
    proc = await asyncio.create_subprocess_exec(
        *HMR,
        "github-sync",
        "--once",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_applied_models_reach_both_repositories(
    hmr_all: str, aiohttp_server: Any, legacy_dir: Path
) -> None:
    """An image and a text model applied on the PRIMARY: one PR per repository, each file a
    one-model diff of the real one; a second run opens nothing."""
    gh = await start_fake_github_api(aiohttp_server, legacy_dir)
    image = {
        "name": "Synced Vista",
        "baseline": "stable_diffusion_xl",
        "nsfw": False,
        "description": "Approved, applied, synced.",
        "config": {
            "download": [
                {
                    "file_name": "vista.safetensors",
                    "file_url": "https://example.org/vista.safetensors",
                    "sha256sum": "0" * 64,
                }
            ]
        },
    }
    text = {
        "name": "SyncOrg/Synced-Model-8B",
        "parameters": 8_000_000_000,
        "baseline": "llama",
        "description": "Synced",
    }
    async with aiohttp.ClientSession() as session:
        await _apply(session, hmr_all, "image_generation", image)
        await _apply(session, hmr_all, "text_generation", text)
    code, out = await _sync(hmr_all, gh)
    assert code == 0, out
    [image_pr] = gh.repos[IMAGE].pulls
    [text_pr] = gh.repos[TEXT].pulls
    before = entries((legacy_dir / "image" / "stable_diffusion.json").read_bytes())
    after = entries(gh.repos[IMAGE].file(image_pr["head"], "stable_diffusion.json"))
    assert list(after) == [*before, "Synced Vista"]
    assert all(after[k] == v for k, v in before.items())
    csv = gh.repos[TEXT].file(text_pr["head"], "models.csv")
    old_csv = (legacy_dir / "text" / "models.csv").read_bytes()
    assert csv == old_csv + b"SyncOrg/Synced-Model-8B,8,,,llama,Synced,,,,\r\n"
    db = json.loads(gh.repos[TEXT].file(text_pr["head"], "db.json"))
    assert list(db)[-3:] == [
        "SyncOrg/Synced-Model-8B",
        "aphrodite/SyncOrg/Synced-Model-8B",
        "koboldcpp/Synced-Model-8B",
    ]
    code, out = await _sync(hmr_all, gh)
    assert code == 0 and out.count("pr-up-to-date") >= 2, out
    assert len(gh.repos[IMAGE].pulls) == 1 and len(gh.repos[TEXT].pulls) == 1
