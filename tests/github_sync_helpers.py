"""What the GitHub sync tests share: a real PRIMARY (the read service on a data dir seeded from
the real legacy files, republished as a test changes it) and runs against the fake GitHub API."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from aiohttp.test_utils import TestClient

from horde_model_records import Category, structure_record
from services.github_sync.config import Config
from services.github_sync.runner import Runner, make_github
from services.github_sync.sync import RunReport, Syncer
from shared.dataset import Dataset, delete_record, publish_dataset, upsert_record
from shared.snapshot import SnapshotStore
from tests.fakes.github_api import FakeGitHubApi
from tests.helpers import Sleeps

#: 2026-06-01 12:00:00 UTC: branch names and titles come from this clock
START = 1_780_315_200


class Clock:
    """A clock a second further on every time it is read: every run gets its own branch name."""

    def __init__(self, start: float = START) -> None:
        self._ticks = itertools.count()
        self.start = start

    def __call__(self) -> float:
        return self.start + next(self._ticks)


class Primary:
    """The read service serving a data dir; `publish` puts a changed dataset live and waits."""

    def __init__(self, client: TestClient, data_dir: Path, dataset: Dataset) -> None:
        self.client = client
        self.store = SnapshotStore(data_dir / "snapshots")
        self.dataset = dataset
        self.url = str(client.server.make_url("/api"))
        self._now = itertools.count(1_800_000_000)

    async def publish(self, dataset: Dataset) -> None:
        snapshot = publish_dataset(self.store, dataset)
        self.dataset = dataset
        deadline = time.monotonic() + 10
        while True:  # the read service notices CURRENT within its poll interval
            resp = await self.client.get("/api/model_references/v1/gfpgan")
            await resp.read()
            if resp.headers.get("X-Snapshot-Id") == str(snapshot.id):
                return
            assert time.monotonic() < deadline, f"snapshot {snapshot.name} never went live"
            await asyncio.sleep(0.02)

    def now(self) -> int:
        return next(self._now)

    def upsert(self, category: Category, data: dict[str, Any]) -> Dataset:
        record = structure_record(category, data)
        return upsert_record(self.dataset, category, record, self.now())

    def delete(self, category: Category, *names: str, dataset: Dataset | None = None) -> Dataset:
        dataset = dataset or self.dataset
        for name in names:
            dataset = delete_record(dataset, category, name, self.now())
        return dataset

    def v2(self, category: Category, name: str) -> dict[str, Any]:
        from horde_model_records import unstructure_record

        return unstructure_record(self.dataset.categories[category].records[name])

    def tamper_v1(self, category: Category, key: str, **changes: Any) -> Dataset:
        """The dataset with one v1 entry changed and its v2 record not (a broken PRIMARY)."""
        data = self.dataset.categories[category]
        assert data.legacy is not None
        legacy = {**data.legacy, key: {**data.legacy[key], **changes}}
        changed = attrs.evolve(data, legacy=legacy)
        return Dataset(categories={**self.dataset.categories, category: changed})


def sync_config(primary: Primary, gh: FakeGitHubApi, **env: str) -> Config:
    base = {
        "HMR_GITHUB_SYNC_PRIMARY_API_URL": primary.url,
        "HMR_GITHUB_SYNC_API_URL": gh.url,
        "HMR_GITHUB_SYNC_TOKEN": gh.token,
        "HMR_GITHUB_SYNC_RETRY_BACKOFF": "0.01",
    }
    return Config.from_environ({**base, **{f"HMR_GITHUB_SYNC_{k}": v for k, v in env.items()}})


async def run_sync(
    primary: Primary,
    gh: FakeGitHubApi,
    clock: Clock,
    sleeps: Sleeps | None = None,
    **env: str,
) -> RunReport:
    """One run of the sync, as `hmr github-sync --once` makes it, against the fakes."""
    config = sync_config(primary, gh, **env)
    async with aiohttp.ClientSession() as session:
        kwargs: dict[str, Any] = {}  # GitHub's rate-limit resets are real time: no test clock
        if sleeps is not None:
            kwargs["sleep"] = sleeps
        syncer = Syncer(config, session, github=make_github(config, session, **kwargs), clock=clock)
        return await Runner(config, syncer, clock=clock).once()


def entries(data: bytes) -> dict[str, str]:
    """key -> the exact text of that model in a legacy JSON file."""
    from services.github_sync.legacy_json import parse_layout

    return {e.key: e.leading + e.text for e in parse_layout(data.decode()).entries}


def loads(data: bytes) -> Any:
    return json.loads(data)
