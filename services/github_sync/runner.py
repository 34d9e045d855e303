"""`hmr github-sync`: one run (--once) or a watch of the PRIMARY's metadata with a periodic full
reconcile (--watch); builds the clients from the config and reports every run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from shared.config import ConfigError

from .config import PREFIX, Config, describe
from .github import AppAuth, GitHubClient
from .metrics import serve_metrics
from .primary import PrimaryError
from .status import SyncStatus
from .sync import RunReport, Syncer

logger = logging.getLogger("hmr.github_sync")

Clock = Callable[[], float]
#: the longest wait between polls while runs or polls keep failing
MAX_BACKOFF = 900.0


def check(config: Config) -> None:
    """Refuse what cannot run: writing to GitHub needs credentials; --no-pr needs somewhere to
    write unless it is also a dry run."""
    if not config.offline and not config.has_credentials:
        raise ConfigError(
            "no GitHub credentials: set HMR_GITHUB_SYNC_TOKEN (or GITHUB_TOKEN) or a GitHub App "
            "(HMR_GITHUB_SYNC_APP_ID and HMR_GITHUB_SYNC_APP_PRIVATE_KEY[_PATH]); "
            "--dry-run and --no-pr need none"
        )
    if config.no_pr and config.output_dir is None and not config.dry_run:
        raise ConfigError("--no-pr needs --output-dir (HMR_GITHUB_SYNC_OUTPUT_DIR)")


def make_github(config: Config, session: aiohttp.ClientSession, **kwargs: Any) -> GitHubClient:
    app = None
    if config.app_id and config.app_private_key and not config.offline:
        app = AppAuth(config.app_id, config.app_private_key, config.app_installation_id)
    return GitHubClient(
        session,
        config.api_url,
        token=None if app is not None else config.token,
        app=app,
        backoff=config.retry_backoff,
        max_wait=config.max_rate_limit_wait,
        **kwargs,
    )


class Runner:
    """Owns one Syncer and the status of its runs."""

    def __init__(self, config: Config, syncer: Syncer, *, clock: Clock = time.time) -> None:
        self.config = config
        self.syncer = syncer
        self.status = SyncStatus()
        self.polls = 0  # metadata polls a watch has made (answered or not)
        self._clock = clock

    async def once(self) -> RunReport:
        report = await self.syncer.run()
        self.status.record(report)
        line = self.status.line()
        (logger.info if report.ok else logger.error)("%s", line)
        print(line, flush=True)
        if self.config.status_file is not None:
            try:
                self.status.write(self.config.status_file)
            except OSError as exc:  # the sync itself is done: say so, and go on
                logger.error(
                    "github-sync: status file %s not written: %s",
                    self.config.status_file,
                    exc.strerror or exc,
                )
        return report

    async def watch(self, stop: asyncio.Event, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Poll the PRIMARY's metadata; run when it moved since the last successful run, when
        the full reconcile is due, or at start with WATCH_STARTUP_SYNC. Errors never end it."""
        config = self.config
        await sleep(config.watch_initial_delay)
        #: the metadata at the last successful run, and when that was
        stored: dict[str, Any] | None = None
        last_ok: float | None = None
        failures = 0
        first = True
        while not stop.is_set():
            current = await self._poll()
            self.polls += 1
            if first and not config.watch_startup_sync and current is not None:
                stored, last_ok = current, self._clock()  # the starting point, as upstream
                due = False
            else:
                due = self._due(first, current, stored, last_ok)
            first = False
            ok = current is not None
            if due and not stop.is_set():
                report = await self._run_in_watch()
                ok = ok and report is not None and report.ok
                if report is not None and report.ok:
                    stored, last_ok = current, self._clock()
            failures = 0 if ok else failures + 1
            delay = min(MAX_BACKOFF, config.watch_interval * 2**failures)
            if failures:
                logger.warning("watch: next poll in %.1f s (%d failures in a row)", delay, failures)
            await sleep_or_stop(sleep, delay, stop)

    async def _poll(self) -> dict[str, Any] | None:
        """The synced categories' {category: last_updated}, or None when the poll failed."""
        try:
            return await self.syncer.primary.metadata(self.config.categories)
        except PrimaryError as exc:
            logger.warning("watch: metadata poll failed: %s", exc)
            return None

    def _due(
        self,
        first: bool,
        current: dict[str, Any] | None,
        stored: dict[str, Any] | None,
        last_ok: float | None,
    ) -> bool:
        """Whether this poll runs a sync: at start only with WATCH_STARTUP_SYNC; later when the
        metadata differs from the last successful run's (or there was none yet), or when the
        full reconcile is due."""
        if first:
            return self.config.watch_startup_sync
        moved = current is not None and current != stored
        reconcile = last_ok is not None and (
            self._clock() - last_ok >= self.config.full_reconcile_interval
        )
        return moved or reconcile

    async def _run_in_watch(self) -> RunReport | None:
        try:
            return await self.once()
        except Exception:  # errors never end the watch (spec 08 §2)
            logger.exception("watch: the run failed unexpectedly")
            return None


async def sleep_or_stop(
    sleep: Callable[[float], Awaitable[None]], delay: float, stop: asyncio.Event
) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    sleeper = asyncio.ensure_future(sleep(delay))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, sleeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def arun(config: Config, stop: asyncio.Event | None = None) -> int:
    """One run, or the watch until `stop` (SIGTERM) is set; the exit status."""
    stop = stop or asyncio.Event()
    logger.info("github-sync starting: %s", describe(config))
    async with aiohttp.ClientSession(trust_env=True) as session:
        syncer = Syncer(config, session, github=make_github(config, session))
        runner = Runner(config, syncer)
        if not config.watch:
            return (await runner.once()).exit_code
        metrics = None
        if config.metrics_port is not None:
            try:
                metrics = await serve_metrics(
                    runner.status, config.metrics_host, config.metrics_port
                )
            except OSError as exc:  # the port is taken, or the host is not ours
                logger.error(
                    "github-sync: cannot serve metrics on %s:%d (%sMETRICS_HOST/PORT): %s",
                    config.metrics_host,
                    config.metrics_port,
                    PREFIX,
                    exc.strerror or exc,
                )
                return 1
            logger.info(
                "github-sync metrics on http://%s:%d/metrics",
                config.metrics_host,
                config.metrics_port,
            )
        try:
            await runner.watch(stop, asyncio.sleep)
        finally:
            if metrics is not None:
                await metrics.cleanup()
        return 0


def main(env: Mapping[str, str]) -> int:
    if (
        not env.get(PREFIX + "TOKEN")
        and env.get("HORDE_GITHUB_SYNC_GITHUB_TOKEN")
        and env.get("GITHUB_TOKEN")
    ):
        logger.warning(
            "both HORDE_GITHUB_SYNC_GITHUB_TOKEN and GITHUB_TOKEN are set: using the first"
        )
    try:
        config = Config.from_environ(env)
        check(config)
    except ConfigError as exc:
        print(f"hmr github-sync: error: {exc}", file=sys.stderr)
        return 1

    async def go() -> int:
        stop = asyncio.Event()
        if config.watch:  # a watch finishes the current call and exits 0; --once just stops
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
        return await arun(config, stop)

    return asyncio.run(go())
