"""`ReplicaManager`: upstream's read API, sync and async twins, over a private event loop.

All network and disk work runs on one private event loop in a daemon thread with its own
`aiohttp.ClientSession`, so the sync methods work in plain scripts, in threads and inside a
running event loop (they block the calling thread, not the private loop), and every caller —
sync or async, any thread — shares one cache and one in-flight fetch per category. Reads of a
fresh category are answered on the calling thread without touching the private loop.

A child process forked from one that uses a manager gets a new loop and session on first use
(the parent's thread does not exist in the child); the copies on disk carry the data over.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import enum
import logging
import os
import threading
from collections.abc import Generator, Iterable, Mapping
from types import TracebackType
from typing import Any

import aiohttp
from attrs import frozen

from horde_model_records import RECORD_TYPES, Category, ModelRecord

from ._catalogs import CatalogKind
from ._config import ReplicaConfig
from ._errors import ModelNotFoundError, NoDataError
from ._http import new_session
from ._loop import LoopThread
from ._model_query import QUERY_TYPES, ModelQuery
from ._popular import SORT_KEYS, HordeStatsClient, PopularModelResult, SortBy, rank
from ._replica import (
    REPLICATED_CATEGORIES,
    CategoryData,
    FetchReport,
    Replica,
    as_category,
)
from ._sources import (
    HORDE_SOURCE_ID,
    Gathered,
    ModelProvider,
    ModelProviderRegistry,
    SourceSelector,
    normalize_source_selector,
)

logger = logging.getLogger("horde_model_replica")

Records = dict[str, ModelRecord]


class PrefetchStrategy(enum.StrEnum):
    """When a manager fetches every category (upstream's names and values)."""

    LAZY = "lazy"  # each category on its first read (default)
    SYNC = "sync"  # all of them before the constructor returns
    DEFERRED = "deferred"  # when the caller triggers `deferred_prefetch_handle`
    ASYNC = "async"  # all of them now in the background; the handle waits for that same warm-up
    NONE = "none"  # nothing ahead of a read (as LAZY)


class DeferredPrefetchHandle:
    """A warm-up of every category to run later: `await handle`, `run_async()` or `run_sync()`.

    Triggering it while the manager's warm-up runs joins that warm-up instead of starting another.
    A warm-up never raises: failures are logged, and the reads report what is missing.
    """

    def __init__(self, manager: ReplicaManager, *, force_refresh: bool = False) -> None:
        self._manager = manager
        self._force_refresh = force_refresh

    @property
    def force_refresh(self) -> bool:
        """Whether the warm-up refetches categories that are still fresh."""
        return self._force_refresh

    def run_sync(self) -> None:
        """Warm every category, blocking the calling thread until done."""
        self._manager._warm(self._force_refresh).result()

    async def run_async(self) -> None:
        """Warm every category without blocking the caller's event loop."""
        await asyncio.wrap_future(self._manager._warm(self._force_refresh))

    def __await__(self) -> Generator[Any, None, None]:
        return self.run_async().__await__()


def _records(data: CategoryData | None) -> Records | None:
    return None if data is None else dict(data.records)


def _require(category: Category, records: Records | None) -> Records:
    if records is None:
        raise NoDataError(
            f"model reference category '{category.value}' is unavailable: no source answered "
            "and there is no copy on disk"
        )
    return records


def _model(category: Category, records: Records | None, name: str) -> ModelRecord:
    record = _require(category, records).get(name)
    if record is None:
        raise ModelNotFoundError(f"model '{name}' not found in category '{category.value}'")
    return record


def _canonical_only(source: SourceSelector) -> bool:
    return normalize_source_selector(source) == [HORDE_SOURCE_ID]


def _canonical(gathered: Gathered, category: Category, data: CategoryData | None) -> None:
    if data is None and category in REPLICATED_CATEGORIES:
        gathered.failed(HORDE_SOURCE_ID)  # every source failed and there is no copy
    else:
        gathered.add(HORDE_SOURCE_ID, None if data is None else data.records)


def _query(category: Category, gathered: Gathered) -> ModelQuery[Any]:
    query_type = QUERY_TYPES.get(category, ModelQuery)
    return query_type(
        gathered.records,
        RECORD_TYPES[category],
        sources=gathered.sources,
        source_status=gathered.status,
    )


def _all(found: Mapping[Category, CategoryData | None]) -> dict[Category, Records]:
    out: dict[Category, Records] = {}
    for category in REPLICATED_CATEGORIES:
        data = found.get(category)
        if data is None:
            logger.error("model reference category '%s' is unavailable", category.value)
        out[category] = _records(data) or {}
    return out


def _all_or_none(found: Mapping[Category, CategoryData | None]) -> dict[Category, Records | None]:
    return {category: _records(found.get(category)) for category in Category}


@frozen
class _Runtime:
    """What one process needs for the manager's I/O: the loop thread, its session, the core."""

    pid: int
    thread: LoopThread
    session: aiohttp.ClientSession | None
    replica: Replica
    horde: HordeStatsClient | None  # AI-Horde's live numbers (None offline)

    @classmethod
    def start(cls, config: ReplicaConfig) -> _Runtime:
        thread = LoopThread("horde-model-replica")

        async def astart() -> _Runtime:
            # the session is made on the loop that uses it; offline has no network at all
            session = None if config.offline else new_session()
            horde = None
            if session is not None:
                horde = HordeStatsClient(
                    session,
                    config.horde_url,
                    timeout=config.primary_api_timeout,
                    attempts=config.primary_retry_attempts,
                    backoff_min=config.primary_retry_backoff,
                    backoff_max=config.retry_backoff_max,
                    proxies=config.proxies,
                )
            return cls(thread.pid, thread, session, Replica(config, session), horde)

        try:
            return thread.run(astart())
        except BaseException:
            thread.close()
            raise

    async def _ashutdown(self) -> None:
        # cancel whatever still runs here (fetches, warm-ups), then close the session
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.replica.aclose()
        if self.session is not None:
            await self.session.close()

    def close(self) -> None:
        if self.pid != os.getpid():
            return  # the parent's loop: nothing of it runs in this (forked) process
        if not self.thread.closed:
            self.thread.run(self._ashutdown())
        self.thread.close()

    async def aclose(self) -> None:
        if self.pid != os.getpid():
            return
        if not self.thread.closed:
            await self.thread.arun(self._ashutdown())
        self.thread.close()


class ReplicaManager:
    """Read-only access to the model reference (REPLICA), with upstream's method names.

    `config` defaults to the environment (read here, never at import). `overwrite_existing=True`
    forces a refresh (the fetch chain runs now). Close it with `close()`/`aclose()` or use it as a
    (async) context manager. `ModelReferenceManager` is the process-wide instance of this class.
    """

    def __init__(
        self,
        config: ReplicaConfig | None = None,
        *,
        prefetch_strategy: PrefetchStrategy | str = PrefetchStrategy.LAZY,
    ) -> None:
        self.config = config if config is not None else ReplicaConfig.from_environ(os.environ)
        self._strategy = PrefetchStrategy(prefetch_strategy)
        self._runtime_lock = threading.Lock()
        self._runtime = _Runtime.start(self.config)
        self._closed = False
        self._warm_lock = threading.Lock()
        self._warmup: tuple[int, bool, concurrent.futures.Future[None]] | None = None
        self._handle: DeferredPrefetchHandle | None = None
        self._providers = ModelProviderRegistry()
        if self._strategy is PrefetchStrategy.SYNC:
            self._warm(False).result()
        elif self._strategy is PrefetchStrategy.ASYNC:
            self._warm(False)
            self._handle = DeferredPrefetchHandle(self)
        elif self._strategy is PrefetchStrategy.DEFERRED:
            self._handle = DeferredPrefetchHandle(self)

    @classmethod
    def from_environ(
        cls,
        env: Mapping[str, str],
        *,
        prefetch_strategy: PrefetchStrategy | str = PrefetchStrategy.LAZY,
    ) -> ReplicaManager:
        return cls(ReplicaConfig.from_environ(env), prefetch_strategy=prefetch_strategy)

    # --- settings --------------------------------------------------------------------------------

    @property
    def offline(self) -> bool:
        """True when the manager reads the disk copies only (HORDE_MODEL_REFERENCE_OFFLINE)."""
        return self.config.offline

    @property
    def prefetch_strategy(self) -> PrefetchStrategy:
        return self._strategy

    # --- lifecycle -------------------------------------------------------------------------------

    def _rt(self) -> _Runtime:
        """This process's runtime: started anew in a forked child, refused once closed."""
        runtime = self._runtime
        if runtime.pid == os.getpid() and not self._closed:
            return runtime
        with self._runtime_lock:
            if self._closed:
                raise RuntimeError("the model reference manager is closed")
            if self._runtime.pid != os.getpid():
                logger.info("forked: the model reference manager starts its own loop here")
                self._runtime = _Runtime.start(self.config)
            return self._runtime

    def _take_runtime(self) -> _Runtime | None:
        with self._runtime_lock:
            if self._closed:
                return None
            self._closed = True
            return self._runtime

    def close(self) -> None:
        """Cancel running fetches and warm-ups, close the HTTP session, stop the private loop."""
        runtime = self._take_runtime()
        if runtime is not None:
            runtime.close()

    async def aclose(self) -> None:
        runtime = self._take_runtime()
        if runtime is not None:
            await runtime.aclose()

    def __enter__(self) -> ReplicaManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ReplicaManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- prefetch --------------------------------------------------------------------------------

    async def _aprefetch(self, replica: Replica, force: bool) -> None:
        try:
            await replica.aget_many(force=force)
        except Exception:  # a warm-up never fails its caller (constructor, handle, Future): it logs
            logger.exception("prefetching the model reference failed")

    def _warm(self, force: bool) -> concurrent.futures.Future[None]:
        """The running warm-up (joined when it covers `force`), else a new one."""
        with self._warm_lock:
            if self._warmup is not None:
                pid, running_force, future = self._warmup
                if pid == os.getpid() and not future.done() and (running_force or not force):
                    return future
            runtime = self._rt()
            future = runtime.thread.submit(self._aprefetch(runtime.replica, force))
            self._warmup = (runtime.pid, force, future)
            return future

    def _warming(self) -> bool:
        warmup = self._warmup
        return warmup is not None and warmup[0] == os.getpid() and not warmup[2].done()

    def prefetch(self) -> concurrent.futures.Future[None]:
        """Warm every category in the background now (or join the running warm-up)."""
        return self._warm(False)

    @property
    def deferred_prefetch_handle(self) -> DeferredPrefetchHandle | None:
        """The warm-up handle: set for DEFERRED and ASYNC, None for LAZY, SYNC and NONE."""
        return self._handle

    def create_deferred_prefetch_handle(
        self, *, force_refresh: bool = False
    ) -> DeferredPrefetchHandle:
        """A new handle (it becomes `deferred_prefetch_handle`)."""
        self._handle = DeferredPrefetchHandle(self, force_refresh=force_refresh)
        return self._handle

    @property
    def is_warm(self) -> bool:
        """Every category has been fetched (or tried) at least once in this process."""
        replica = self._rt().replica
        return all(replica.report(c) is not None for c in REPLICATED_CATEGORIES)

    @property
    def prefetch_pending(self) -> bool:
        """A handle waits to be triggered: no warm-up runs and the categories are not all in."""
        return self._handle is not None and not self._warming() and not self.is_warm

    def ensure_ready(self, *, overwrite_existing: bool = False) -> None:
        """Fetch every category that is not fresh (all of them with `overwrite_existing`)."""
        self._get_all(overwrite_existing)

    async def ensure_ready_async(self, *, overwrite_existing: bool = False) -> None:
        await self._aget_all(overwrite_existing)

    async def warm_cache_async(self, *, force_refresh: bool = False) -> None:
        await self._aget_all(force_refresh)

    # --- plumbing --------------------------------------------------------------------------------

    def _get(self, category: Category | str, force: bool) -> tuple[Category, CategoryData | None]:
        category = as_category(category)
        runtime = self._rt()
        if not force and (data := runtime.replica.cached(category)) is not None:
            return category, data
        return category, runtime.thread.run(runtime.replica.aget(category, force=force))

    async def _aget(
        self, category: Category | str, force: bool
    ) -> tuple[Category, CategoryData | None]:
        category = as_category(category)
        runtime = self._rt()
        if not force and (data := runtime.replica.cached(category)) is not None:
            return category, data
        return category, await runtime.thread.arun(runtime.replica.aget(category, force=force))

    @staticmethod
    def _fresh_all(replica: Replica) -> dict[Category, CategoryData | None] | None:
        found = {c: replica.cached(c) for c in REPLICATED_CATEGORIES}
        return None if any(v is None for v in found.values()) else found

    def _get_all(self, force: bool) -> Mapping[Category, CategoryData | None]:
        runtime = self._rt()
        if not force and (found := self._fresh_all(runtime.replica)) is not None:
            return found
        return runtime.thread.run(runtime.replica.aget_many(force=force))

    async def _aget_all(self, force: bool) -> Mapping[Category, CategoryData | None]:
        runtime = self._rt()
        if not force and (found := self._fresh_all(runtime.replica)) is not None:
            return found
        return await runtime.thread.arun(runtime.replica.aget_many(force=force))

    def _needs_spelling(self, records: Records | None, name: str, source: SourceSelector) -> bool:
        return (
            records is not None
            and name not in records
            and HORDE_SOURCE_ID in self._providers.resolve(source)
        )

    def _spelled(
        self, category: Category, records: Records | None, name: str, source: SourceSelector
    ) -> str:
        """The key `name` has in `records`: itself, or the record it is another spelling of."""
        if not self._needs_spelling(records, name, source):
            return name
        runtime = self._rt()
        return runtime.thread.run(runtime.replica.aresolve(category, name)) or name

    async def _aspelled(
        self, category: Category, records: Records | None, name: str, source: SourceSelector
    ) -> str:
        if not self._needs_spelling(records, name, source):
            return name
        runtime = self._rt()
        return await runtime.thread.arun(runtime.replica.aresolve(category, name)) or name

    # --- sources -----------------------------------------------------------------------------------

    @property
    def provider_registry(self) -> ModelProviderRegistry:
        """The providers reads can select by id (see `register_provider`)."""
        return self._providers

    def register_provider(self, provider: ModelProvider, *, replace: bool = False) -> None:
        """Add a provider; ValueError for a reserved, empty or (without `replace`) taken id."""
        self._providers.register(provider, replace=replace)

    def unregister_provider(self, source_id: str) -> bool:
        return self._providers.unregister(source_id)

    def list_providers(self) -> list[str]:
        """The registered source ids, in registration order."""
        return self._providers.source_ids()

    def get_provider(self, source_id: str) -> ModelProvider | None:
        return self._providers.get(source_id)

    def _providers_of(self, source: SourceSelector) -> list[tuple[str, ModelProvider | None]]:
        """The selected sources in order; None stands for the canonical reference."""
        return [
            (source_id, None if source_id == HORDE_SOURCE_ID else self._providers.get(source_id))
            for source_id in self._providers.resolve(source)
        ]

    def _gather(self, category: Category, source: SourceSelector, force: bool) -> Gathered:
        gathered = Gathered()
        for source_id, provider in self._providers_of(source):
            if provider is None:
                _canonical(gathered, category, self._get(category, force)[1])
            elif not provider.serves_category(category):
                gathered.add(source_id, None)
            else:
                try:
                    gathered.add(source_id, provider.fetch_category(category, force_refresh=force))
                except Exception:  # a provider's failure costs its records, not the read
                    logger.exception("%s: source %r failed", category.value, source_id)
                    gathered.failed(source_id)
        return gathered

    async def _agather(self, category: Category, source: SourceSelector, force: bool) -> Gathered:
        gathered = Gathered()
        for source_id, provider in self._providers_of(source):
            if provider is None:
                _canonical(gathered, category, (await self._aget(category, force))[1])
            elif not provider.serves_category(category):
                gathered.add(source_id, None)
            else:
                try:
                    found = await provider.fetch_category_async(category, force_refresh=force)
                except Exception:  # a provider's failure costs its records, not the read
                    logger.exception("%s: source %r failed", category.value, source_id)
                    gathered.failed(source_id)
                else:
                    gathered.add(source_id, found)
        return gathered

    def _read(
        self, category: Category | str, force: bool, source: SourceSelector
    ) -> Records | None:
        category = as_category(category)
        if _canonical_only(source):
            return _records(self._get(category, force)[1])
        return self._gather(category, source, force).merged()

    async def _aread(
        self, category: Category | str, force: bool, source: SourceSelector
    ) -> Records | None:
        category = as_category(category)
        if _canonical_only(source):
            return _records((await self._aget(category, force))[1])
        return (await self._agather(category, source, force)).merged()

    def query(
        self, category: Category | str, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[Any]:
        """A fluent query over the category's records from `source` (see ModelQuery).

        image_generation, text_generation and controlnet get their own query types
        (ImageGenerationQuery, TextModelQuery, ControlNetQuery) with shortcuts.
        """
        category = as_category(category)
        return _query(category, self._gather(category, source, False))

    async def query_async(
        self, category: Category | str, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[Any]:
        category = as_category(category)
        return _query(category, await self._agather(category, source, False))

    def query_all(self) -> ModelQuery[ModelRecord]:
        """A query over every category's canonical records (fields of all records only)."""
        records = [
            r for models in self.get_all_model_references().values() for r in models.values()
        ]
        return ModelQuery(records, ModelRecord)

    # --- upstream's API: the method names existing worker code calls ------------------------------

    def get_all_model_references(self, overwrite_existing: bool = False) -> dict[Category, Records]:
        """{category: {name: record}}; unavailable categories are `{}`; lora and ti are omitted."""
        return _all(self._get_all(overwrite_existing))

    def get_all_model_references_or_none(
        self, overwrite_existing: bool = False
    ) -> dict[Category, Records | None]:
        """Every category; None where there is no data (always for lora and ti)."""
        return _all_or_none(self._get_all(overwrite_existing))

    def get_model_reference(
        self,
        category: Category | str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> Records:
        """{name: record} from `source`; raises NoDataError (a RuntimeError) when none has data."""
        return _require(as_category(category), self._read(category, overwrite_existing, source))

    def get_model_reference_or_none(
        self,
        category: Category | str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> Records | None:
        """{name: record} from `source` (earlier sources win a name); None when none has data."""
        return self._read(category, overwrite_existing, source)

    def get_model(
        self,
        category: Category | str,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> ModelRecord:
        """One record, by its name or another spelling of it (a legacy key); raises NoDataError
        or ModelNotFoundError (both RuntimeError)."""
        category = as_category(category)
        records = self._read(category, overwrite_existing, source)
        return _model(category, records, self._spelled(category, records, model_name, source))

    def get_model_or_none(
        self,
        category: Category | str,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> ModelRecord | None:
        category = as_category(category)
        records = self._read(category, overwrite_existing, source)
        if records is None:
            return None
        return records.get(self._spelled(category, records, model_name, source))

    async def get_all_model_references_async(
        self, overwrite_existing: bool = False
    ) -> dict[Category, Records]:
        return _all(await self._aget_all(overwrite_existing))

    async def get_all_model_references_or_none_async(
        self, overwrite_existing: bool = False
    ) -> dict[Category, Records | None]:
        return _all_or_none(await self._aget_all(overwrite_existing))

    # --- catalogs: image baselines, licensing, text guidance ------------------------------------

    def _catalog(self, kind: CatalogKind, force: bool) -> dict[str, Any] | None:
        runtime = self._rt()
        cached = runtime.replica.catalogs.cached(kind)
        if cached is not None and not force:
            return cached
        return runtime.thread.run(runtime.replica.catalogs.aget(kind, force=force))

    async def _acatalog(self, kind: CatalogKind, force: bool) -> dict[str, Any] | None:
        runtime = self._rt()
        cached = runtime.replica.catalogs.cached(kind)
        if cached is not None and not force:
            return cached
        return await runtime.thread.arun(runtime.replica.catalogs.aget(kind, force=force))

    def get_image_baselines(self, *, refresh: bool = False) -> dict[str, Any]:
        """The image baseline catalog (`{metadata, baselines: {name: baseline}}`): the PRIMARY's
        export, else the last good copy, else the 13 bundled baselines. Fetched once; `refresh`
        asks again (a conditional GET). Its names join the known baselines."""
        catalog = self._catalog(CatalogKind.image_baselines, refresh)
        assert catalog is not None  # there is always the bundled one
        return catalog

    async def get_image_baselines_async(self, *, refresh: bool = False) -> dict[str, Any]:
        catalog = await self._acatalog(CatalogKind.image_baselines, refresh)
        assert catalog is not None
        return catalog

    def get_licensing(self, *, refresh: bool = False) -> dict[str, Any] | None:
        """The licensing export (definitions, every asset view, summary); None when neither the
        PRIMARY nor a disk copy has one."""
        return self._catalog(CatalogKind.licensing, refresh)

    async def get_licensing_async(self, *, refresh: bool = False) -> dict[str, Any] | None:
        return await self._acatalog(CatalogKind.licensing, refresh)

    def get_text_guidance(self, *, refresh: bool = False) -> dict[str, Any]:
        """The text guidance catalog (`{metadata, profiles, assignments}`); empty when neither
        the PRIMARY nor a disk copy has one."""
        catalog = self._catalog(CatalogKind.text_guidance, refresh)
        assert catalog is not None
        return catalog

    async def get_text_guidance_async(self, *, refresh: bool = False) -> dict[str, Any]:
        catalog = await self._acatalog(CatalogKind.text_guidance, refresh)
        assert catalog is not None
        return catalog

    async def get_model_reference_async(
        self,
        category: Category | str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> Records:
        records = await self._aread(category, overwrite_existing, source)
        return _require(as_category(category), records)

    async def get_model_reference_or_none_async(
        self,
        category: Category | str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> Records | None:
        return await self._aread(category, overwrite_existing, source)

    async def get_model_async(
        self,
        category: Category | str,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> ModelRecord:
        category = as_category(category)
        records = await self._aread(category, overwrite_existing, source)
        name = await self._aspelled(category, records, model_name, source)
        return _model(category, records, name)

    async def get_model_or_none_async(
        self,
        category: Category | str,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> ModelRecord | None:
        category = as_category(category)
        records = await self._aread(category, overwrite_existing, source)
        if records is None:
            return None
        return records.get(await self._aspelled(category, records, model_name, source))

    def get_raw_model_reference_json(
        self, category: Category | str, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """The category's v2 document as received (no validation, a copy); None when unavailable."""
        data = self._get(category, overwrite_existing)[1]
        return None if data is None else copy.deepcopy(dict(data.raw))

    def get_raw_model_json(
        self, category: Category | str, model_name: str
    ) -> dict[str, Any] | None:
        data = self._get(category, False)[1]
        if data is None or model_name not in data.raw:
            return None
        raw = data.raw[model_name]
        return copy.deepcopy(raw) if isinstance(raw, dict) else None

    def invalidate_category_cache(self, category: Category | str) -> None:
        """Make the category stale: its next read asks the sources again."""
        self._rt().replica.invalidate(as_category(category))

    def last_updated(self, category: Category | str) -> int | None:
        """Always None: a REPLICA has no metadata."""
        as_category(category)
        return None

    def supports_metadata(self) -> bool:
        return False

    async def get_popular_models(
        self,
        category: Category | str,
        *,
        limit: int = 10,
        sort_by: SortBy = "worker_count",
        include_workers: bool = False,
    ) -> list[PopularModelResult]:
        """The category's models ranked by AI-Horde's live numbers, busiest first.

        Only image_generation and text_generation have such numbers (others give []); so does
        an offline manager, which never asks AI-Horde. `include_workers` adds each model's
        workers (one more, larger request). An AI-Horde that cannot answer raises SourceError.
        """
        category = as_category(category)
        kind = {Category.image_generation: "image", Category.text_generation: "text"}.get(category)
        if sort_by not in SORT_KEYS:
            raise ValueError(f"sort_by must be one of {list(SORT_KEYS)}, got {sort_by!r}")
        runtime = self._rt()
        if kind is None or runtime.horde is None:
            return []
        records = await self.get_model_reference_or_none_async(category)
        if not records:
            return []
        horde = runtime.horde

        async def ask() -> tuple[list[Any], Mapping[str, Any], list[Any] | None]:
            status, usage = await asyncio.gather(horde.status(kind), horde.usage(kind))
            workers = await horde.workers(kind) if include_workers else None
            return status, usage, workers

        status, usage, workers = await runtime.thread.arun(ask())
        return rank(records, status, usage, workers, sort_by=sort_by, limit=limit)

    # --- ours --------------------------------------------------------------------------------------

    def refresh(
        self, categories: Iterable[Category | str] = REPLICATED_CATEGORIES
    ) -> dict[Category, FetchReport]:
        """Fetch the categories now (conditional requests: unchanged ones cost a 304)."""
        runtime = self._rt()
        return runtime.thread.run(runtime.replica.arefresh(list(categories)))

    async def arefresh(
        self, categories: Iterable[Category | str] = REPLICATED_CATEGORIES
    ) -> dict[Category, FetchReport]:
        runtime = self._rt()
        return await runtime.thread.arun(runtime.replica.arefresh(list(categories)))

    def fetch_report(self, category: Category | str) -> FetchReport | None:
        """What the last fetch of the category did (outcome, source, bytes, errors)."""
        return self._rt().replica.report(as_category(category))
