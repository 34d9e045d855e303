"""Keeping the live snapshot: load at start, notice a new CURRENT, verify, swap one reference."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from attrs import define
from prometheus_client import Gauge

from .memory import release_free_memory
from .observability import Observability
from .snapshot import Snapshot, SnapshotError, SnapshotStore

logger = logging.getLogger(__name__)

M = TypeVar("M")


def settle_heap() -> None:
    """Collect cycles once, then move every object alive to the collector's permanent generation.

    A snapshot at 100x the real data is millions of objects that live until the next publish;
    left in the collector's oldest generation, every full collection walks them all, a pause of
    seconds in the middle of requests and loads. Frozen, they are still freed by reference
    counting when the model that holds them is dropped; only the young are scanned."""
    gc.collect()
    gc.freeze()


@define
class SnapshotHolder(Generic[M]):
    """The one mutable thing: a reference to the live model built from a snapshot, swapped whole.

    `build` turns a verified snapshot into whatever a service answers from (it runs off the event
    loop); `name_of` tells which snapshot a model was built from.
    """

    store: SnapshotStore
    build: Callable[[Snapshot], M]
    name_of: Callable[[M], str]
    current: M | None = None
    marker: tuple[int, int] | None = None
    loaded: tuple[int, int] | None = None  # (id, created_at) of the snapshot behind `current`
    refused: tuple[str, str] | None = None  # (name, why) of the newest snapshot refused
    refusals: int = 0
    said_waiting: bool = False

    async def arefresh(self) -> bool:
        """Load the snapshot CURRENT names if it is new; True when the live model changed.

        A damaged snapshot is logged and refused; the previous one stays live.
        """
        marker = self.store.current_marker()
        if marker is None and self.current is None and not self.said_waiting:
            # a wrong --data-dir looks exactly like this: say where we look
            logger.warning("waiting for a snapshot: %s does not exist yet", self._pointer())
            self.said_waiting = True
        if marker is None or marker == self.marker:
            return False
        self.marker = marker
        try:
            name = self.store.current_name()
        except SnapshotError as exc:
            logger.error("snapshot pointer unreadable, keeping %s: %s", self._live(), exc)
            return False
        if name is None or (self.current is not None and name == self.name_of(self.current)):
            return False
        loop = asyncio.get_running_loop()
        try:
            model, loaded = await loop.run_in_executor(None, self._load, name)
        except SnapshotError as exc:
            logger.error("snapshot refused, keeping %s: %s", self._live(), exc)
            self.refused, self.refusals = (name, str(exc)), self.refusals + 1
            if self.current is None:
                await self._load_newest_good(exclude=name)
            return False
        self.current, self.loaded, self.refused = model, loaded, None
        logger.info("serving snapshot %s", name)
        # the previous model is dropped now: give what it and the load freed back to the system
        await loop.run_in_executor(None, release_free_memory)
        return True

    async def _load_newest_good(self, exclude: str) -> None:
        """At start with a damaged CURRENT: serve the newest older snapshot that verifies."""
        loop = asyncio.get_running_loop()
        for name in reversed(self.store.names()):
            if name == exclude:
                continue
            try:
                self.current, self.loaded = await loop.run_in_executor(None, self._load, name)
            except SnapshotError as exc:
                logger.error("snapshot refused: %s", exc)
                continue
            logger.warning("serving older snapshot %s until a good one is published", name)
            return

    def _load(self, name: str) -> tuple[M, tuple[int, int]]:
        snapshot = self.store.read(name)
        model = self.build(snapshot)
        settle_heap()
        return model, (snapshot.id, int(snapshot.manifest.get("created_at", 0)))

    def observe(self, obs: Observability, service: str) -> None:
        """Readiness (a snapshot is loaded) and snapshot id/age gauges named after `service`."""
        obs.ready_checks[f"{service}_snapshot"] = lambda _app: (
            self.current is not None,
            self._readiness(),
        )
        Gauge(
            f"hmr_{service}_snapshot_refusals",
            "Snapshots refused as damaged since start (the previous one kept serving).",
            registry=obs.registry,
        ).set_function(lambda: self.refusals)
        Gauge(
            f"hmr_{service}_snapshot_id",
            f"Id of the snapshot the {service} service answers from.",
            registry=obs.registry,
        ).set_function(lambda: self.loaded[0] if self.loaded else -1)
        Gauge(
            f"hmr_{service}_snapshot_age_seconds",
            "Seconds since that snapshot was published.",
            registry=obs.registry,
        ).set_function(lambda: time.time() - self.loaded[1] if self.loaded else -1)

    def _pointer(self) -> str:
        return str(self.store.root / "CURRENT")

    def _readiness(self) -> str:
        live = self._live() if self.current is not None else f"waiting for {self._pointer()}"
        if self.refused is None:
            return live
        return f"{live}; refused {self.refused[0]}: {self.refused[1]}"

    def _live(self) -> str:
        return self.name_of(self.current) if self.current is not None else "nothing"

    async def awatch(self, interval: float) -> None:
        """Poll CURRENT (a stat) every `interval` seconds until cancelled; a publish by this
        process (the writer of `hmr all`) is loaded at once, not at the next poll."""
        loop = asyncio.get_running_loop()
        published = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(published.set)

        stop = self.store.on_switch(wake)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(published.wait(), interval)
                published.clear()
                try:
                    await self.arefresh()
                except Exception:
                    logger.exception("snapshot refresh failed")
        finally:
            stop()
