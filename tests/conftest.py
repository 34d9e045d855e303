"""Shared fixtures: the real legacy data, seeded data dirs, and the real read service app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aioresponses import aioresponses

from services.cli import SAMPLE_DIR
from services.read_api.app import create_app
from services.read_api.app import setup as read_setup
from services.read_api.config import Config
from services.write_queue.app import setup as write_setup
from services.write_queue.config import Config as WriteConfig
from services.write_queue.keys import write_loader_key
from shared.dataset import Dataset, import_legacy_dir, publish_dataset
from shared.http import SERVER_HANDLER_ARGS
from shared.snapshot import SnapshotStore
from tests.helpers import Sleeps

LEGACY_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference-data" / "legacy"

ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture(scope="session")
def dataset(legacy_dir: Path) -> Dataset:
    """The real legacy data as one dataset (immutable: shared by every test that reads it)."""
    return import_legacy_dir(legacy_dir, now=1_700_000_000)[0]


@pytest.fixture(scope="session")
def legacy_dir() -> Path:
    """The real legacy reference files (never copied into this repo)."""
    if not LEGACY_DIR.is_dir():
        pytest.fail(f"reference data not found at {LEGACY_DIR}")
    return LEGACY_DIR


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory: pytest.TempPathFactory, legacy_dir: Path) -> Path:
    """A data dir seeded once from the real legacy files; tests must not write to it."""
    data_dir = tmp_path_factory.mktemp("real-data")
    dataset, _ = import_legacy_dir(legacy_dir, now=1_700_000_000)
    publish_dataset(SnapshotStore(data_dir / "snapshots"), dataset)
    return data_dir


async def serve(app: web.Application, *, write_loaded: bool = True) -> TestServer:
    """A real server on 127.0.0.1 with the same HTTP parser limits as production; with a write
    service on it, returned once its dataset has loaded (unless `write_loaded` is false)."""
    server = TestServer(app)
    await server.start_server(**SERVER_HANDLER_ARGS)
    if write_loaded and write_loader_key in app:
        await app[write_loader_key]  # the background load: writes answer from here on
    return server


def read_config(data_dir: Path, **overrides: object) -> Config:
    env = {
        "HMR_DATA_DIR": str(data_dir),
        "HMR_MODE": "PRIMARY",
        "HMR_SNAPSHOT_POLL_INTERVAL": "0.05",
    }
    return Config.from_environ({**env, **{k: str(v) for k, v in overrides.items()}})


@pytest.fixture
async def client(aiohttp_client: ClientFactory, real_data_dir: Path) -> TestClient:
    """The real read service on the real data (PRIMARY, v2 canonical)."""
    return await aiohttp_client(await serve(create_app(read_config(real_data_dir))))


@pytest.fixture
def make_client(aiohttp_client: ClientFactory) -> Callable[..., Awaitable[TestClient]]:
    """Build a read service client on any data dir with config overrides (HMR_* names)."""

    async def factory(data_dir: Path, **overrides: object) -> TestClient:
        return await aiohttp_client(await serve(create_app(read_config(data_dir, **overrides))))

    return factory


# --- the write service ---------------------------------------------------------------------------

REQUESTOR_KEY = "test-requestor-key"
APPROVER_KEY = "test-approver-key"
APPROVER2_KEY = "test-approver2-key"
READER_KEY = "test-reader-key"
AUTH_USERS = {
    REQUESTOR_KEY: {"user_id": "100", "username": "Req#100", "roles": ["requestor"]},
    APPROVER_KEY: {"user_id": "200", "username": "Appr#200", "roles": ["approver"]},
    APPROVER2_KEY: {"user_id": "201", "username": "Appr2#201", "roles": ["approver"]},
    READER_KEY: {"user_id": "300", "username": "Reader#300", "roles": []},
}


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    """A development auth file with a requestor, two approvers and a plain reader."""
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(AUTH_USERS))
    return path


def write_config(data_dir: Path, **overrides: object) -> WriteConfig:
    env = {"HMR_DATA_DIR": str(data_dir), "HMR_MODE": "PRIMARY", "HMR_SEED_DIR": str(SAMPLE_DIR)}
    return WriteConfig.from_environ({**env, **{k: str(v) for k, v in overrides.items()}})


def system_app(data_dir: Path, **overrides: object) -> web.Application:
    """Read and write services on one app, as `hmr all` builds it."""
    app = web.Application()
    read_setup(app, read_config(data_dir, **overrides))
    write_setup(app, write_config(data_dir, **overrides))
    return app


@pytest.fixture
def make_system(aiohttp_client: ClientFactory) -> Callable[..., Awaitable[TestClient]]:
    """Build `hmr all`'s app (read + write) on a data dir with overrides (HMR_* names)."""

    async def factory(data_dir: Path, **overrides: object) -> TestClient:
        return await aiohttp_client(await serve(system_app(data_dir, **overrides)))

    return factory


@pytest.fixture
async def system(make_system: Any, tmp_path: Path, auth_file: Path) -> TestClient:
    """read + write on a fresh data dir seeded with the bundled sample, auth from `auth_file`."""
    return await make_system(tmp_path / "data", HMR_AUTH_FILE=auth_file)


# --- outbound clients ----------------------------------------------------------------------------


@pytest.fixture
def outbound() -> Iterator[aioresponses]:
    """aioresponses for calls leaving the machine; loopback passes through.

    Without the passthrough it would also intercept the test client (aioresponses#94).
    """
    with aioresponses(passthrough=["http://127.0.0.1"]) as mocked:
        yield mocked


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session, as a service injects into its outbound client."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def sleeps() -> Sleeps:
    """Pass as a client's `sleep` to see its retry schedule without waiting it out."""
    return Sleeps()
