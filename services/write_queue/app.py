"""The write service application: setup() adds it to any app, create_app() makes a standalone one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import Gauge

from shared.observability import Observability
from shared.service import ServiceFailed, fail_service, setup_service, standalone_app
from shared.snapshot import SnapshotStore

from .auth import AuthOff, FileAuthenticator, HordeAuthenticator
from .config import Config
from .keys import (
    authenticator_key,
    horde_session_key,
    publisher_key,
    snapshot_store_key,
    write_config_key,
    write_loader_key,
    write_queue_key,
    write_start_key,
)
from .models import STATUSES
from .openapi import setup_write_docs
from .publisher import Publisher, SnapshotPublisher
from .queue import WriteQueue
from .routes import (
    audit,
    catalogs,
    licensing,
    me,
    pending_queue,
    proposals,
    snapshots,
    text_toolkit,
)
from .store import Store

logger = logging.getLogger(__name__)


async def horde_session_ctx(app: web.Application) -> AsyncIterator[None]:
    """One outbound session for AI-Horde, and the authenticator that uses it."""
    config = app[write_config_key]
    async with aiohttp.ClientSession() as session:
        app[horde_session_key] = session
        if config.auth_file is not None:
            app[authenticator_key] = FileAuthenticator.from_file(config.auth_file)
        elif (reason := config.auth_off) is not None:
            logger.warning("every call with an API key will answer 503: %s", reason)
            app[authenticator_key] = AuthOff(reason)
        else:
            app[authenticator_key] = HordeAuthenticator(
                session,
                config.horde_url,
                requestor_ids=config.requestor_ids,
                approver_ids=config.approver_ids,
                license_editor_ids=config.license_editor_ids,
                timeout=config.auth_timeout,
                cache_ttl=config.auth_cache_ttl,
                # a refused key is asked about again sooner: it may just have been created
                refusal_ttl=min(10.0, config.auth_cache_ttl),
            )
        yield


async def _aload(app: web.Application, queue: WriteQueue, seed_dir: Path | None) -> None:
    """Load the dataset in the background once the app has started; a failure ends the serving
    process (never a server left half alive), an app in process keeps answering 503 and
    /readyz says why."""
    await app[write_start_key].wait()
    start = time.perf_counter()
    try:
        await queue.astart(seed_dir)
    except Exception as exc:  # every failure of the load ends the service alike
        logger.exception("the write service could not load its dataset")
        queue.failed(exc)
        fail_service(
            app,
            ServiceFailed(
                f"the write service could not load its dataset: {exc.__class__.__name__}: {exc}"
            ),
        )
        return
    logger.info(
        "write service ready: dataset version %s loaded in %.1f s",
        queue.version,
        time.perf_counter() - start,
    )


async def write_queue_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the store, then load it in the background (import, recover, publish if behind)
    while the server answers; at exit stop a load still running and close the store."""
    config = app[write_config_key]
    snapshots = app[snapshot_store_key] = SnapshotStore(config.snapshots_dir)
    # the writer lock and the migrations are taken before the port listens: a second writer on
    # this data dir, or a store from a newer release, stops the start here with its one line
    store = await Store.aopen(config.database_path)
    try:
        publisher: Publisher = app.get(publisher_key) or SnapshotPublisher(
            snapshots, keep=config.keep_snapshots
        )
        queue = app[write_queue_key] = WriteQueue(
            store=store, publisher=publisher, domain=config.canonical_format
        )
        app[write_start_key] = asyncio.Event()
        loader = app[write_loader_key] = asyncio.create_task(_aload(app, queue, config.seed_dir))
        try:
            yield
        finally:
            # a load cut short writes nothing half: its transaction rolls back, a publish in
            # flight finishes in its thread (snapshots are renamed into place whole)
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
    finally:
        await store.aclose()


async def _start_loading(app: web.Application) -> None:
    """After every cleanup context has entered (aiohttp runs on_startup handlers after them):
    the server listens next, and the write service loads its dataset."""
    app[write_start_key].set()


def _observe(obs: Observability) -> None:
    obs.ready_checks["write_store"] = lambda _app: (
        _app[write_queue_key].readiness()
        if write_queue_key in _app
        else (False, "store not open yet")
    )
    changes = Gauge(
        "hmr_queue_changes", "Changes in the queue, by status.", ["status"], registry=obs.registry
    )
    versions = Gauge(
        "hmr_dataset_version",
        "Dataset version in the database and in the live snapshot.",
        ["where"],
        registry=obs.registry,
    )

    async def refresh(_app: web.Application) -> None:
        queue = _app.get(write_queue_key)
        if queue is None or not queue.loaded:
            return
        counts = await queue.astatus_counts()
        for status in STATUSES:
            changes.labels(status).set(counts.get(status, 0))
        versions.labels("database").set(queue.version)
        versions.labels("published").set(queue.published_version or 0)

    obs.scrape_hooks.append(refresh)


def setup(app: web.Application, config: Config, publisher: Publisher | None = None) -> None:
    """Add the write routes, state and background resources to `app`; committed datasets go
    to `publisher` (default: snapshots in the config's data dir)."""
    _observe(setup_service(app, write_config_key, config))
    if publisher is not None:
        app[publisher_key] = publisher
    app.cleanup_ctx.append(horde_session_ctx)
    app.cleanup_ctx.append(write_queue_ctx)
    app.on_startup.append(_start_loading)
    # literal paths first: /me/roles before {category}, /audit before /changes/{change_id}
    for module in (
        me,
        audit,
        pending_queue,
        catalogs,
        licensing,
        proposals,
        snapshots,
        text_toolkit,
    ):
        app.add_routes(module.routes)


def create_app(config: Config) -> web.Application:
    return standalone_app(config, setup, setup_write_docs)
