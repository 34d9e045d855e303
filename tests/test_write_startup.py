"""The write service loads its dataset in the background: the server answers at once, writes
answer 503 with Retry-After until the load ends, a load that fails ends the process."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from attrs import Factory, define

from services.read_api.app import setup as read_setup
from services.write_queue.app import setup as write_setup
from services.write_queue.keys import write_loader_key
from services.write_queue.publisher import SnapshotPublisher
from services.write_queue.queue import LOADING, LOADING_RETRY_AFTER
from services.write_queue.store import Store
from shared.dataset import Dataset, publish_dataset
from shared.snapshot import SnapshotStore
from tests.conftest import (
    APPROVER_KEY,
    REQUESTOR_KEY,
    ClientFactory,
    read_config,
    serve,
    write_config,
)
from tests.helpers import HMR, clean_env, free_port, wait_for_status

V2 = "/api/model_references/v2"
REQ = {"apikey": REQUESTOR_KEY}
NEW_MODEL = {"name": "Startup Model", "baseline": "flux_1", "nsfw": False}


@define
class GatedPublisher(SnapshotPublisher):
    """A publisher whose first look at the live snapshot waits until the test opens `gate`: the
    write service's load stops there (off the event loop, as a slow disk would stop it)."""

    gate: threading.Event = Factory(threading.Event)
    entered: threading.Event = Factory(threading.Event)

    def published_version(self) -> int | None:
        self.entered.set()
        self.gate.wait(timeout=60)  # never longer than a test: the fixture opens it at the end
        return super().published_version()


def data_dir_with_snapshot(tmp_path: Path, dataset: Dataset) -> Path:
    """A data dir whose live snapshot is the real data (the read service serves it at once)."""
    data_dir = tmp_path / "data"
    publish_dataset(SnapshotStore(data_dir / "snapshots"), dataset)
    return data_dir


def both_services(data_dir: Path, auth_file: Path, publisher: SnapshotPublisher) -> web.Application:
    """Read and write services on one app, as `hmr all` builds them, the writer publishing
    through `publisher`."""
    app = web.Application()
    read_setup(app, read_config(data_dir))
    write_setup(app, write_config(data_dir, HMR_AUTH_FILE=auth_file), publisher)
    return app


@define
class Loading:
    """A served app whose write service is held in its load until `publisher.gate` opens."""

    app: web.Application
    client: TestClient
    publisher: GatedPublisher

    async def afinish_load(self) -> None:
        self.publisher.gate.set()
        await self.app[write_loader_key]


@pytest.fixture
async def loading(
    aiohttp_client: ClientFactory, tmp_path: Path, auth_file: Path, dataset: Dataset
) -> AsyncIterator[Loading]:
    data_dir = data_dir_with_snapshot(tmp_path, dataset)
    publisher = GatedPublisher(SnapshotStore(data_dir / "snapshots"))
    app = both_services(data_dir, auth_file, publisher)
    client = await aiohttp_client(await serve(app, write_loaded=False))
    try:
        yield Loading(app, client, publisher)
    finally:
        publisher.gate.set()


async def test_a_write_while_the_dataset_loads_answers_503_with_retry_after(
    loading: Loading,
) -> None:
    """A proposal sent while the dataset loads is refused with 503, Retry-After and the loading
    message in the error envelope; the same proposal is queued once the load has ended."""
    resp = await loading.client.post(f"{V2}/image_generation", json=NEW_MODEL, headers=REQ)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == str(LOADING_RETRY_AFTER)
    assert await resp.json() == {"detail": LOADING}
    assert LOADING.startswith("The write service is still loading the dataset")
    await loading.afinish_load()
    resp = await loading.client.post(f"{V2}/image_generation", json=NEW_MODEL, headers=REQ)
    assert resp.status == 202, await resp.text()


@pytest.mark.parametrize(
    ("method", "path", "key", "body"),
    [
        ("GET", f"{V2}/pending_queue/changes", REQUESTOR_KEY, None),
        ("GET", f"{V2}/pending_queue/audit/current", REQUESTOR_KEY, None),
        ("GET", f"{V2}/image_generation/pending", REQUESTOR_KEY, None),
        ("POST", f"{V2}/pending_queue/batches", APPROVER_KEY, {"approved_ids": [1]}),
        ("POST", f"{V2}/pending_queue/apply", APPROVER_KEY, {"change_ids": [1]}),
        ("POST", f"{V2}/text_generation/guidance/migration/preview", REQUESTOR_KEY, None),
        ("PUT", f"{V2}/text_generation/aliases/Foo", APPROVER_KEY, {"aliases": ["foo"]}),
    ],
)
async def test_every_route_that_needs_the_store_answers_503_while_it_loads(
    loading: Loading, method: str, path: str, key: str | None, body: object
) -> None:
    """The queue, the audit log, the beta models, a batch, an apply, the catalog preview and a
    toolkit write all answer the loading 503 until the dataset is loaded."""
    headers = {} if key is None else {"apikey": key}
    resp = await loading.client.request(method, path, json=body, headers=headers)
    assert resp.status == 503, await resp.text()
    assert resp.headers["Retry-After"] == str(LOADING_RETRY_AFTER)
    assert await resp.json() == {"detail": LOADING}


async def test_readiness_reports_the_load_and_turns_ready_when_it_ends(loading: Loading) -> None:
    """/readyz says the write store is loading (and what the load is doing) until it ends,
    then the write store is ready."""
    resp = await loading.client.get("/readyz")
    assert resp.status == 503
    check = (await resp.json())["checks"]["write_store"]
    assert check["ok"] is False
    assert check["detail"].startswith("loading the dataset: ")
    await loading.afinish_load()
    resp = await loading.client.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["checks"]["write_store"] == {"ok": True, "detail": "dataset loaded"}


async def test_reads_are_served_while_the_writer_loads(loading: Loading) -> None:
    """Category, single-model and search reads and the snapshot pull answer 200 while the write
    service is still loading."""
    await loading.client.get("/readyz")
    assert not loading.publisher.gate.is_set()
    for path in (
        f"{V2}/image_generation",
        f"{V2}/image_generation/model/stable_diffusion",
        f"{V2}/image_generation/search?baseline=stable_diffusion_xl&limit=2",
        "/api/internal/snapshots/current",
    ):
        resp = await loading.client.get(path)
        assert resp.status == 200, (path, await resp.text())
    assert not loading.app[write_loader_key].done()


async def test_shutdown_during_the_load_is_clean(
    tmp_path: Path, auth_file: Path, dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping the server while the dataset loads cancels the load, logs no error and closes
    the store (its writer lock is free again)."""
    data_dir = data_dir_with_snapshot(tmp_path, dataset)
    publisher = GatedPublisher(SnapshotStore(data_dir / "snapshots"))
    app = both_services(data_dir, auth_file, publisher)
    server = await serve(app, write_loaded=False)
    try:
        while not publisher.entered.is_set():  # the load is under way, held in the publisher
            await asyncio.sleep(0.01)
        loader = app[write_loader_key]
        with caplog.at_level(logging.WARNING):
            await server.close()
    finally:
        publisher.gate.set()
    assert loader.cancelled()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    store = await Store.aopen(write_config(data_dir).database_path)  # no StoreBusy: released
    await store.aclose()


async def corrupt_store(data_dir: Path, dataset: Dataset) -> None:
    """A write store holding the real data with one record the record model refuses."""
    store = await Store.aopen(write_config(data_dir).database_path)
    try:
        async with store.transaction():
            await store.write_dataset(dataset)
            await store.db.execute(
                "UPDATE records SET data = '{\"name\": 5}' "
                "WHERE rowid = (SELECT MIN(rowid) FROM records)"
            )
    finally:
        await store.aclose()


async def test_a_failed_load_in_process_keeps_refusing_and_says_why(
    aiohttp_client: ClientFactory, tmp_path: Path, auth_file: Path, dataset: Dataset
) -> None:
    """An app served in process (no `hmr` to end) whose store does not load keeps answering
    writes with 503, /readyz names the error, and reads go on."""
    data_dir = data_dir_with_snapshot(tmp_path, dataset)
    await corrupt_store(data_dir, dataset)
    snapshots = SnapshotStore(data_dir / "snapshots")
    client = await aiohttp_client(
        await serve(both_services(data_dir, auth_file, SnapshotPublisher(snapshots)))
    )
    resp = await client.post(f"{V2}/image_generation", json=NEW_MODEL, headers=REQ)
    assert resp.status == 503
    assert await resp.json() == {
        "detail": "The write service could not load the dataset; see its log."
    }
    resp = await client.get("/readyz")
    assert resp.status == 503
    detail = (await resp.json())["checks"]["write_store"]["detail"]
    assert detail.startswith("the dataset could not be loaded: "), detail
    await wait_for_status(client, f"{V2}/image_generation")


@pytest.mark.subprocess
@pytest.mark.parametrize("command", ["all", "write-queue"])
async def test_a_store_that_does_not_load_ends_the_process_with_its_error(
    tmp_path: Path, dataset: Dataset, command: str
) -> None:
    """`hmr all` and `hmr write-queue` on a store whose dataset does not load stop (exit 2)
    with one line naming the error after logging it, instead of serving half alive."""
    data_dir = data_dir_with_snapshot(tmp_path, dataset)
    await corrupt_store(data_dir, dataset)
    argv = [*HMR, command, "--data-dir", str(data_dir), "--port", str(free_port())]
    done = await asyncio.to_thread(
        subprocess.run,
        argv,
        env=clean_env(HMR_HORDE_URL="off", HMR_LOG_FORMAT="text"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("hmr: error: the write service could not load its dataset: "), last
    logged = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(logged) == 1, done.stderr  # the error and its traceback, logged once
    assert logged[0].endswith("the write service could not load its dataset"), logged
