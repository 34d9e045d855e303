"""A writer with neither AI-Horde nor an auth file: every key's 503 says which setting is missing."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import REQUESTOR_KEY

V2 = "/api/model_references/v2"
MISSING = (
    "Auth service unavailable: AI-Horde auth is off (HMR_HORDE_URL=off) and no auth file is set: "
    "start the write service with HMR_AUTH_FILE (a development auth file), or with "
    "HMR_HORDE_URL and HMR_REQUESTOR_IDS / HMR_APPROVER_IDS"
)

SystemFactory = Callable[..., Awaitable[TestClient]]


async def test_every_key_gets_a_503_naming_the_missing_setting(
    make_system: SystemFactory, tmp_path: Path
) -> None:
    """Proposals, reviews and the queue all answer 503 with the settings to give, not a bare
    "Auth service unavailable" or an allow-list's 401."""
    client = await make_system(tmp_path / "data", HMR_HORDE_URL="off")
    headers = {"apikey": REQUESTOR_KEY}
    record = {"name": "x", "baseline": "flux_1", "nsfw": False}
    answers = [
        await client.post(f"{V2}/image_generation", json=record, headers=headers),
        await client.post(f"{V2}/pending_queue/batches", json={}, headers=headers),
        await client.get(f"{V2}/me/roles", headers=headers),
        await client.get(f"{V2}/pending_queue/changes", headers=headers),
    ]
    assert [(r.status, (await r.json())["detail"]) for r in answers] == [(503, MISSING)] * 4


async def test_the_writer_says_so_at_start(
    make_system: SystemFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer logs, once at start, that every call with a key will answer 503, and why."""
    with caplog.at_level(logging.WARNING, logger="services.write_queue.app"):
        await make_system(tmp_path / "data", HMR_HORDE_URL="none")
    warnings = [r.getMessage() for r in caplog.records if r.name == "services.write_queue.app"]
    assert warnings == [
        "every call with an API key will answer 503: "
        + MISSING.removeprefix("Auth service unavailable: ").replace("=off", "=none")
    ]
