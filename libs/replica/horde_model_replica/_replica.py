"""The async core: per-category cache with TTL, the fetch chain and single flight.

A `Replica` is bound to one event loop and one injected `aiohttp.ClientSession`. Reads of a fresh
category never await anything; a stale or missing one runs the chain once, however many callers
ask at the same time (they all await the same task).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp
import attrs
import yarl
from attrs import frozen

from horde_model_records import CATEGORY_INFO, V2_LISTED_CATEGORIES, Category, ModelRecord

from ._catalogs import CatalogCopies
from ._config import ReplicaConfig
from ._decode import CategoryPayload, decode_v2
from ._errors import InvalidBody, SourceError, UnreachableError
from ._http import Fetched, GitHubRawClient, ReplicaClient
from ._store import DiskStore, FileStamp, Source

logger = logging.getLogger("horde_model_replica")

#: the categories the replica serves: every one but lora and ti (managed elsewhere)
REPLICATED_CATEGORIES: tuple[Category, ...] = V2_LISTED_CATEGORIES

Fetch = Callable[[Category, str | None], Awaitable[Fetched[CategoryPayload]]]


@frozen
class CategoryData:
    """One category as the replica holds it: typed records, the raw v2 document, provenance."""

    category: Category
    records: Mapping[str, ModelRecord]
    raw: Mapping[str, Any]
    source: Source
    etag: str | None = None
    url: str | None = None
    aliases: Mapping[str, str] = attrs.field(factory=dict)  # other spelling -> record name


class Outcome(enum.StrEnum):
    """What the last fetch of a category did."""

    updated = "updated"  # a source sent new data (200), now in memory and on disk
    not_modified = "not_modified"  # a source answered 304: the copy held is current
    last_good = "last_good"  # every source failed; the last good copy is served
    from_disk = "from_disk"  # offline: read (or confirmed unchanged) from disk
    no_data = "no_data"  # every source failed and there is no copy


@frozen
class FetchReport:
    """The last fetch of one category: outcome, source, models, body bytes received, errors."""

    category: Category
    outcome: Outcome
    source: Source | None
    models: int
    wire_bytes: int
    errors: tuple[str, ...]
    seconds: float


@frozen
class _Entry:
    data: CategoryData
    document: bytes  # the v2 document bytes, to restore a deleted disk copy after a 304
    fetched_at: float  # clock() when last confirmed by a source (or read, offline)
    stamp: FileStamp | None  # the disk file this entry matches


def as_category(category: Category | str) -> Category:
    """A Category from a member or its value; ValueError names the valid ones."""
    if isinstance(category, Category):
        return category
    try:
        return Category(category)
    except ValueError:
        valid = ", ".join(c.value for c in Category)
        raise ValueError(f"unknown model category {category!r}; valid: {valid}") from None


class Replica:
    """Read-only model reference for one event loop: cache, fetch chain, last good copy on disk.

    `session` is injected and never closed here; it may be None only when `config.offline`.
    """

    def __init__(
        self,
        config: ReplicaConfig,
        session: aiohttp.ClientSession | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if session is None and not config.offline:
            raise ValueError("a ClientSession is required unless the config is offline")
        self.config = config
        self.store = DiskStore(config.cache_dir)
        self._clock = clock
        self.primary: ReplicaClient | None = None
        self.github: GitHubRawClient | None = None
        if session is not None and not config.offline:
            if config.primary_api_url is not None:
                self.primary = ReplicaClient(
                    session,
                    config.primary_api_url,
                    timeout=config.primary_api_timeout,
                    attempts=config.primary_retry_attempts,
                    backoff_min=config.primary_retry_backoff,
                    backoff_max=config.retry_backoff_max,
                    proxies=config.proxies,
                )
            if config.enable_github_fallback:
                self.github = GitHubRawClient(
                    session,
                    raw_base=config.github_raw_base,
                    image_repo=config.image_repo,
                    text_repo=config.text_repo,
                    proxy_base=config.github_proxy_url_base,
                    timeout=config.github_timeout,
                    attempts=config.legacy_retry_attempts,
                    backoff_min=config.legacy_retry_backoff,
                    backoff_max=config.retry_backoff_max,
                    proxies=config.proxies,
                )
        self._entries: dict[Category, _Entry] = {}
        #: image baselines, licensing, text guidance: their exports, kept like the categories
        self.catalogs = CatalogCopies(self.primary, config.cache_dir)
        self._reports: dict[Category, FetchReport] = {}
        self._inflight: dict[Category, asyncio.Task[_Entry | None]] = {}
        # spellings the PRIMARY resolved (or did not know), per category version (its ETag)
        self._spellings: dict[Category, tuple[str | None, dict[str, str | None]]] = {}

    # --- reads that never wait (safe from any thread) --------------------------------------------

    def cached(self, category: Category) -> CategoryData | None:
        """The category if it is fresh: younger than the TTL and its disk file unchanged."""
        entry = self._entries.get(category)
        if entry is None or self._clock() - entry.fetched_at >= self.config.cache_ttl:
            return None
        if self.store.stamp(category) != entry.stamp:
            return None
        return entry.data

    def invalidate(self, category: Category) -> None:
        """Make the category stale: the next read revalidates it (the copy stays for a 304)."""
        entry = self._entries.get(category)
        if entry is not None:
            self._entries[category] = attrs.evolve(entry, fetched_at=-math.inf)

    def report(self, category: Category) -> FetchReport | None:
        """What the last fetch of the category did; None before the first one."""
        return self._reports.get(category)

    # --- reads that may fetch ----------------------------------------------------------------------

    async def aget(self, category: Category | str, *, force: bool = False) -> CategoryData | None:
        """The category, fetched first when stale, missing or `force`d; None when no data."""
        category = as_category(category)
        if CATEGORY_INFO[category].managed_elsewhere:
            return None
        if not force and (data := self.cached(category)) is not None:
            return data
        task = self._inflight.get(category)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._refresh(category), name=f"horde-model-replica:{category.value}"
            )
            self._inflight[category] = task
            task.add_done_callback(functools.partial(self._forget, category))
        # shield: a caller that gives up must not cancel the fetch the other callers wait for
        entry = await asyncio.shield(task)
        return None if entry is None else entry.data

    async def aget_many(
        self, categories: Iterable[Category | str] = REPLICATED_CATEGORIES, *, force: bool = False
    ) -> dict[Category, CategoryData | None]:
        """Several categories at once, fetched concurrently."""
        wanted = [as_category(c) for c in categories]
        found = await asyncio.gather(*(self.aget(c, force=force) for c in wanted))
        return dict(zip(wanted, found, strict=True))

    async def arefresh(
        self, categories: Iterable[Category | str] = REPLICATED_CATEGORIES
    ) -> dict[Category, FetchReport]:
        """Force a fetch of each category now; returns what each fetch did."""
        got = await self.aget_many(categories, force=True)
        return {c: r for c in got if (r := self._reports.get(c)) is not None}

    async def aclose(self) -> None:
        """Cancel fetches still running (the session belongs to the caller)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, category: Category, task: asyncio.Task[_Entry | None]) -> None:
        if self._inflight.get(category) is task:
            del self._inflight[category]

    async def aresolve(self, category: Category, name: str) -> str | None:
        """The record name `name` spells in the category, or None: the name itself, a legacy key
        the conversion saw, or (for a v2 document, which carries no other spellings) what the
        PRIMARY's single-model read answers. The PRIMARY is asked once per name and version."""
        data = await self.aget(category)
        if data is None:
            return None
        if name in data.records:
            return name
        if (known := data.aliases.get(name)) is not None:
            return known
        if self.primary is None or data.source is not Source.primary_v2:
            return None
        etag, answers = self._spellings.get(category, (None, {}))
        if etag != data.etag:
            answers = {}
            self._spellings[category] = (data.etag, answers)
        if name not in answers:
            try:
                answers[name] = await self.primary.fetch_model_name(category, name)
            except UnreachableError:
                return None  # not an answer: ask again next time
            except SourceError as exc:
                logger.warning("%s: cannot resolve %r: %s", category.value, name, exc)
                answers[name] = None
        found = answers[name]
        return found if found in data.records else None

    # --- the refresh -----------------------------------------------------------------------------

    async def _refresh(self, category: Category) -> _Entry | None:
        started = self._clock()
        current = self._entries.get(category)
        on_disk = self.store.stamp(category)
        if current is None or (on_disk is not None and on_disk != current.stamp):
            # first use, or somebody replaced the file: the disk copy is the one to revalidate
            loaded = await self._load_disk(category)
            if loaded is not None:
                current = loaded
            elif current is not None:
                # an unusable file: keep the memory copy, and do not reread that file every time
                current = attrs.evolve(current, stamp=on_disk)
        if self.config.offline:
            entry, outcome, source, wire, errors = self._offline(current)
        else:
            entry, outcome, source, wire, errors = await self._run_chain(category, current)
        if entry is not None:
            self._entries[category] = entry
        self._reports[category] = FetchReport(
            category=category,
            outcome=outcome,
            source=source,
            models=0 if entry is None else len(entry.data.records),
            wire_bytes=wire,
            errors=tuple(errors),
            seconds=self._clock() - started,
        )
        return entry

    def _offline(
        self, current: _Entry | None
    ) -> tuple[_Entry | None, Outcome, Source | None, int, list[str]]:
        if current is None:
            return None, Outcome.no_data, None, 0, ["offline and no copy on disk"]
        entry = attrs.evolve(current, fetched_at=self._clock())
        return entry, Outcome.from_disk, entry.data.source, 0, []

    async def _load_disk(self, category: Category) -> _Entry | None:
        stored = await asyncio.to_thread(self.store.read, category)
        if stored is None:
            return None
        path = self.store.v2_path(category)
        try:
            payload = decode_v2(category, stored.document, str(path))
        except InvalidBody as exc:
            logger.error("ignoring the copy on disk: %s", exc)
            return None
        v = stored.validator
        data = CategoryData(
            category=category,
            records=payload.records,
            raw=payload.raw,
            source=v.source if v else Source.disk,
            etag=v.etag if v else None,
            url=v.url if v else None,
            aliases=v.aliases if v else {},
        )
        return _Entry(data, stored.document, fetched_at=-math.inf, stamp=stored.stamp)

    def _steps(self, category: Category) -> list[tuple[Source, yarl.URL, Fetch]]:
        steps: list[tuple[Source, yarl.URL, Fetch]] = []
        if self.primary is not None:
            steps.append((Source.primary_v2, self.primary.v2_url(category), self.primary.fetch_v2))
            if CATEGORY_INFO[category].has_legacy:
                # not in upstream's chain: the PRIMARY's own v1 view, converted, tried before GitHub
                steps.append(
                    (Source.primary_v1, self.primary.v1_url(category), self.primary.fetch_v1)
                )
        if self.github is not None and (url := self.github.url_for(category)) is not None:
            steps.append((Source.github, url, self.github.fetch))
        return steps

    async def _run_chain(
        self, category: Category, current: _Entry | None
    ) -> tuple[_Entry | None, Outcome, Source | None, int, list[str]]:
        errors: list[str] = []
        wire = 0
        primary_unreachable = False
        for source, url, fetch in self._steps(category):
            if source is Source.primary_v1 and primary_unreachable:
                continue  # the same host: v1 would fail the same way, only slower
            etag = None
            if (
                current is not None
                and current.data.source is source
                and current.data.url == str(url)
            ):
                etag = current.data.etag
            try:
                fetched = await fetch(category, etag)
            except SourceError as exc:
                primary_unreachable |= source is Source.primary_v2 and isinstance(
                    exc, UnreachableError
                )
                logger.warning("%s: %s failed: %s", category.value, source.value, exc)
                errors.append(f"{source.value}: {exc}")
                continue
            wire += fetched.wire_bytes
            if fetched.payload is None:
                assert current is not None  # a 304 only answers our own ETag
                entry = attrs.evolve(current, fetched_at=self._clock())
                if self.store.stamp(category) is None:
                    entry = await self._persist(category, entry, legacy=None)
                return entry, Outcome.not_modified, source, wire, errors
            payload = fetched.payload
            data = CategoryData(
                category=category,
                records=payload.records,
                raw=payload.raw,
                source=source,
                etag=fetched.etag,
                url=str(url),
                aliases=payload.aliases,
            )
            entry = _Entry(data, payload.document, fetched_at=self._clock(), stamp=None)
            entry = await self._persist(category, entry, legacy=payload.legacy)
            return entry, Outcome.updated, source, wire, errors
        if current is not None:
            logger.error(
                "%s: every source failed; serving the last good copy (%s)",
                category.value,
                current.data.source.value,
            )
            # retried after the TTL, not on every read while the network is down
            entry = attrs.evolve(current, fetched_at=self._clock())
            return entry, Outcome.last_good, current.data.source, wire, errors
        logger.error("%s: no data: every source failed and there is no copy", category.value)
        return None, Outcome.no_data, None, wire, errors or ["no source configured"]

    async def _persist(self, category: Category, entry: _Entry, legacy: bytes | None) -> _Entry:
        data = entry.data
        stamp: FileStamp | None
        try:
            stamp = await asyncio.to_thread(
                self.store.write,
                category,
                entry.document,
                source=data.source,
                url=data.url,
                etag=data.etag,
                legacy=legacy,
                aliases=data.aliases,
            )
        except OSError as exc:
            # keep serving from memory; match whatever is on disk so reads do not reload it
            logger.error("%s: cannot write %s: %s", category.value, self.store.root, exc)
            stamp = self.store.stamp(category)
        return attrs.evolve(entry, stamp=stamp)
