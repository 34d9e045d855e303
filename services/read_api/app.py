"""The read service application: setup() adds it to any app, create_app() makes a standalone one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from yarl import URL

from shared.service import setup_service, setup_snapshot_holder, standalone_app

from .config import Config
from .keys import read_config_key, snapshot_holder_key, snapshot_watcher_key
from .openapi import setup_read_docs
from .puller import PullError, SnapshotPuller
from .routes import capabilities, catalogs, metadata, models, search, text_toolkit, writes
from .view import ReadModel


async def snapshot_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load the live snapshot before serving, then watch CURRENT until shutdown.

    With HMR_SNAPSHOT_SOURCE set, a puller first copies the writer's snapshots over HTTP.
    """
    config = app[read_config_key]
    holder = app[snapshot_holder_key]
    async with contextlib.AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []
        if config.snapshot_source is not None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            puller = SnapshotPuller(session, URL(config.snapshot_source), holder.store)
            with contextlib.suppress(PullError):
                await puller.apull_once()
            tasks.append(asyncio.create_task(puller.arun(config.snapshot_poll_interval)))
        await holder.arefresh()
        tasks.append(asyncio.create_task(holder.awatch(config.snapshot_poll_interval)))
        app[snapshot_watcher_key] = tasks
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def setup(app: web.Application, config: Config) -> None:
    """Add the read routes, state and snapshot watcher to `app` (literal routes before {category})."""
    obs = setup_service(app, read_config_key, config)
    setup_snapshot_holder(app, snapshot_holder_key, config, ReadModel.build, obs, "read")
    app.cleanup_ctx.append(snapshot_ctx)
    for module in (capabilities, metadata, catalogs, search, text_toolkit, models):
        app.add_routes(module.routes)


def setup_write_rejection(app: web.Application) -> None:
    """For deployments with no write service: writes answer 503 instead of 404/405."""
    app.add_routes(writes.routes)


def create_app(config: Config) -> web.Application:
    return standalone_app(config, setup, setup_write_rejection, setup_read_docs)
