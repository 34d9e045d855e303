"""What the replica library's tests share: an offline copy of the data, a provider, a live PRIMARY."""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import CATEGORY_INFO, Category, ModelRecord
from horde_model_replica import REPLICATED_CATEGORIES, ModelProvider, ReplicaConfig
from shared.snapshot import SnapshotStore
from tests.conftest import serve, system_app
from tests.fakes.github import Faults
from tests.fakes.horde import FakeHorde, start_fake_horde
from tests.helpers import wait_for_status


def offline_copy(real_data_dir: Path, cache_home: Path) -> ReplicaConfig:
    """An offline config whose cache dir holds the real data's v2 files (no sidecars)."""
    snapshot = SnapshotStore(real_data_dir / "snapshots").read_current()
    assert snapshot is not None
    base = cache_home / "horde_model_reference"
    base.mkdir(parents=True)
    for category in REPLICATED_CATEGORIES:
        data = snapshot.files[f"v2/{category.value}.json"]
        (base / CATEGORY_INFO[category].v2_file).write_bytes(data)
    return ReplicaConfig.from_environ(
        {"AIWORKER_CACHE_HOME": str(cache_home), "HORDE_MODEL_REFERENCE_OFFLINE": "true"}
    )


class StaticProvider(ModelProvider):
    """A provider serving fixed records (or calling `fail` to raise), counting its calls."""

    def __init__(
        self,
        source_id: str,
        records: Mapping[Category, Mapping[str, ModelRecord] | None],
        fail: Callable[[], None] | None = None,
    ) -> None:
        self._id = source_id
        self._records = dict(records)
        self._fail = fail
        self.calls: list[tuple[Category | str, bool]] = []

    @property
    def source_id(self) -> str:
        return self._id

    def provided_categories(self) -> set[Category | str]:
        return set(self._records)

    def fetch_category(
        self, category: Category | str, *, force_refresh: bool = False
    ) -> Mapping[str, ModelRecord] | None:
        self.calls.append((category, force_refresh))
        if self._fail is not None:
            self._fail()
        return self._records.get(Category(category))


# --- a live PRIMARY with its write queue, asking a fake AI-Horde who owns a key --------------------

#: the fake AI-Horde's users (tests/fakes/horde.py): a requestor, and the anonymous key
REQUESTOR_KEY = "horde-requestor-key"
ANONYMOUS_KEY = "0000000000"


@attrs.define
class LivePrimary:
    """`hmr all`'s app (read + write) on loopback; `api` ends with /api, `faults` counts requests."""

    api: str
    client: TestClient
    faults: Faults
    horde: FakeHorde  # the AI-Horde it asks about keys (also serves the model stats reads)

    async def propose(self, category: Category, record: dict[str, Any]) -> None:
        """Propose a new model as the requestor (it becomes a beta model)."""
        path = f"/api/model_references/v2/{category.value}"
        resp = await self.client.post(path, json=record, headers={"apikey": REQUESTOR_KEY})
        assert resp.status == 202, await resp.text()

    async def propose_update(self, category: Category, record: dict[str, Any]) -> None:
        """Propose a new version of an existing model (the whole record)."""
        path = f"/api/model_references/v2/{category.value}/model/{record['name']}"
        resp = await self.client.put(path, json=record, headers={"apikey": REQUESTOR_KEY})
        assert resp.status == 202, await resp.text()

    async def record(self, category: Category, name: str) -> dict[str, Any]:
        """The live (canonical) record, as JSON."""
        resp = await self.client.get(f"/api/model_references/v2/{category.value}/model/{name}")
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def start_live_primary(
    aiohttp_client: Any, aiohttp_server: Any, data_dir: Path
) -> LivePrimary:
    """The system seeded with the bundled sample data, keys checked by a fake AI-Horde.

    Returns once the first snapshot is served, with the request counters at zero.
    """
    horde = await start_fake_horde(aiohttp_server)
    app = system_app(data_dir, HMR_HORDE_URL=horde.url, HMR_REQUESTOR_IDS="100")
    faults = Faults()
    app.middlewares.insert(0, faults.middleware())
    server = await serve(app)
    client = await aiohttp_client(server)
    # serving once the first snapshot is published; the counters then start from zero
    await wait_for_status(client, "/api/model_references/v2/image_generation")
    faults.calls.clear()
    faults.received.clear()
    return LivePrimary(str(server.make_url("/api")), client, faults, horde)


def run_forked(child: Callable[[], str], timeout: float = 30.0) -> str:
    """`child()` in a forked process (a worker's subprocess); its answer, or the test fails.

    The child reports what it returns or raises through a pipe and leaves with os._exit, never
    returning into pytest; a child that hangs is killed and fails the test.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process may deadlock: that is what we test
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, child().encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 -- whatever the child hits goes to the parent
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child did not finish within {timeout} s")
        time.sleep(0.02)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read().decode()
    assert os.waitstatus_to_exitcode(status[1]) == 0, said
    return said
