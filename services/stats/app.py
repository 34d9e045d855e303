"""The stats service application: setup() adds it to any app, create_app() makes a standalone one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from prometheus_client import Gauge

from shared.observability import Observability
from shared.service import setup_service, setup_snapshot_holder, standalone_app

from .config import Config
from .horde_client import HordeClient
from .keys import (
    poller_key,
    result_cache_key,
    stats_config_key,
    stats_session_key,
    stats_snapshot_key,
    stats_tasks_key,
)
from .model import ResultCache, StatsModel
from .openapi import setup_stats_docs
from .poller import Poller
from .routes import stats


async def stats_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the snapshot watcher and the AI-Horde poller; give the first poll a moment."""
    config = app[stats_config_key]
    holder = app[stats_snapshot_key]
    await holder.arefresh()
    async with aiohttp.ClientSession() as session:
        app[stats_session_key] = session
        poller = Poller(
            client=HordeClient(
                session,
                config.horde_url,
                timeout=config.horde_timeout,
                backoff_min=config.retry_backoff_min,
            ),
            interval=config.poll_interval,
        )
        app[poller_key] = poller
        tasks = [asyncio.create_task(holder.awatch(config.snapshot_poll_interval))]
        if config.polling_enabled:
            first = asyncio.create_task(poller.apoll_once())
            # ready without waiting forever: a down AI-Horde must not keep the service from starting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(first), config.startup_poll_wait)
            tasks += [first, asyncio.create_task(poller.arun())]
        app[stats_tasks_key] = tasks
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _observe_poller(app: web.Application, obs: Observability) -> None:
    def poller() -> Poller | None:
        return app.get(poller_key)

    def gauge(name: str, text: str, value: Callable[[Poller], float]) -> None:
        Gauge(name, text, registry=obs.registry).set_function(
            lambda: value(p) if (p := poller()) is not None else -1
        )

    gauge(
        "hmr_horde_consecutive_failures",
        "AI-Horde fetches failed in a row.",
        lambda p: p.breaker.consecutive_failures,
    )
    gauge(
        "hmr_horde_degraded",
        "1 while the AI-Horde circuit breaker is open or a poll has waited past the timeout.",
        lambda p: float(p.degraded),
    )
    gauge(
        "hmr_horde_last_success_timestamp",
        "Unix time of the last successful AI-Horde fetch.",
        lambda p: p.data.last_success or 0,
    )
    gauge(
        "hmr_horde_poll_generation",
        "Successful AI-Horde polls since start.",
        lambda p: p.data.generation,
    )


def setup(app: web.Application, config: Config) -> None:
    obs = setup_service(app, stats_config_key, config)
    setup_snapshot_holder(app, stats_snapshot_key, config, StatsModel.build, obs, "stats")
    _observe_poller(app, obs)
    app[result_cache_key] = ResultCache()
    app.cleanup_ctx.append(stats_ctx)
    app.add_routes(stats.routes)


def create_app(config: Config) -> web.Application:
    return standalone_app(config, setup, setup_stats_docs)
