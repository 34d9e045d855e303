"""What every service's setup() starts with (HTTP glue, its config, probes, the live snapshot),
and the standalone application around a setup()."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from aiohttp import web
from aiohttp.web_runner import GracefulExit
from attrs import define

from .config import ServiceConfig
from .http import setup_http
from .observability import Observability, setup_observability
from .snapshot import Snapshot, SnapshotStore
from .snapshot_watch import SnapshotHolder

C = TypeVar("C", bound=ServiceConfig)


class SnapshotModel(Protocol):
    """What a service answers from: a model built from one snapshot, named after it."""

    @property
    def snapshot_name(self) -> str: ...


M = TypeVar("M", bound=SnapshotModel)


class ServiceFailed(Exception):
    """A part a service cannot serve without failed after the server started (e.g. the write
    service's dataset would not load): the serving process ends with it."""


def _graceful_exit() -> None:
    raise GracefulExit  # what aiohttp's own SIGTERM handler raises: run_app stops cleanly


@define
class ProcessExit:
    """How a service ends the process that serves it; `hmr` sets one on every app it serves.

    A failure is kept for `hmr` to report once the server has stopped (cleanup contexts run, the
    port closes), so a part that fails in the background never leaves a half-alive server.
    """

    failure: ServiceFailed | None = None

    def fail(self, failure: ServiceFailed) -> None:
        if self.failure is None:
            self.failure = failure
            asyncio.get_running_loop().call_soon(_graceful_exit)


process_exit_key = web.AppKey("process_exit_key", ProcessExit)


def fail_service(app: web.Application, failure: ServiceFailed) -> None:
    """End the process serving `app` with `failure`; an app served in process (tests) has no
    ProcessExit and keeps running, its readiness and answers saying what failed."""
    process_exit = app.get(process_exit_key)
    if process_exit is not None:
        process_exit.fail(failure)


def standalone_app(
    config: C,
    setup: Callable[[web.Application, C], None],
    *more: Callable[[web.Application], None],
) -> web.Application:
    """A new application with one service on it: `setup(app, config)`, then each of `more`
    (its OpenAPI document, ...). `hmr all` instead sets every service up on one application."""
    app = web.Application()
    setup(app, config)
    for add in more:
        add(app)
    return app


def setup_service(app: web.Application, config_key: web.AppKey[C], config: C) -> Observability:
    """CORS and the error envelope, `config` under `config_key`, then request ids, metrics and
    probes (each installed once per application, so services can share one); returns the
    application's Observability for the service's own checks and gauges."""
    setup_http(app, config.cors_origins)
    app[config_key] = config
    return setup_observability(app)


def setup_snapshot_holder(
    app: web.Application,
    key: web.AppKey[SnapshotHolder[M]],
    config: ServiceConfig,
    build: Callable[[Snapshot], M],
    obs: Observability,
    service: str,
) -> SnapshotHolder[M]:
    """The holder of the live model `build` makes from the snapshots in `config.snapshots_dir`,
    under `key`, with its readiness check and gauges named after `service`. The service's
    cleanup context loads and watches it."""
    holder = SnapshotHolder(
        store=SnapshotStore(config.snapshots_dir),
        build=build,
        name_of=lambda model: model.snapshot_name,
    )
    app[key] = holder
    holder.observe(obs, service)
    return holder
