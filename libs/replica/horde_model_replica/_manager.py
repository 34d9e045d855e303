"""`ModelReferenceManager`: upstream's method names, sync and async twins, over a private loop.

All network and disk work runs on one private event loop in a daemon thread with its own
`aiohttp.ClientSession`, so the sync methods work in plain scripts, in threads and inside a
running event loop (they block the calling thread, not the private loop), and every caller —
sync or async, any thread — shares one cache and one in-flight fetch per category. Reads of a
fresh category are answered on the calling thread without touching the private loop.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import copy
import enum
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import aiohttp

from horde_model_records import Category, ModelRecord

from ._config import ReplicaConfig
from ._errors import ModelNotFoundError, NoDataError
from ._http import new_session
from ._loop import LoopThread
from ._replica import (
    REPLICATED_CATEGORIES,
    CategoryData,
    FetchReport,
    Replica,
    as_category,
)

logger = logging.getLogger("horde_model_replica")

Records = dict[str, ModelRecord]


class Prefetch(enum.StrEnum):
    """When the manager fetches every category: the `prefetch` argument (see the README)."""

    lazy = "lazy"  # on first access of each category (default)
    sync = "sync"  # all now, before the constructor returns
    background = "async"  # all now, on the private loop; the constructor does not wait
    deferred = "deferred"  # when the caller calls prefetch() (it returns a Future)
    none = "none"  # never ahead of a read (same as lazy)


def _records(data: CategoryData | None) -> Records | None:
    return None if data is None else dict(data.records)


def _require(category: Category, data: CategoryData | None) -> Records:
    if data is None:
        raise NoDataError(
            f"model reference category '{category.value}' is unavailable: no source answered "
            "and there is no copy on disk"
        )
    return dict(data.records)


def _model(category: Category, data: CategoryData | None, name: str) -> ModelRecord:
    record = _require(category, data).get(name)
    if record is None:
        raise ModelNotFoundError(f"model '{name}' not found in category '{category.value}'")
    return record


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


class ModelReferenceManager:
    """Read-only access to the model reference (REPLICA), with upstream's method names.

    `overwrite_existing=True` forces a refresh (the fetch chain runs now). Close it with
    `close()`/`aclose()` or use it as a (async) context manager; `get_manager()` gives the
    process-wide instance and closes it at exit.
    """

    def __init__(
        self, config: ReplicaConfig | None = None, *, prefetch: Prefetch | str = Prefetch.lazy
    ) -> None:
        # the drop-in `ModelReferenceManager()` reads the environment here, never at import
        self.config = config if config is not None else ReplicaConfig.from_environ(os.environ)
        self.prefetch_strategy = Prefetch(prefetch)
        self._session: aiohttp.ClientSession | None = None
        self._thread = LoopThread("horde-model-replica")
        try:
            self._replica = self._thread.run(self._astart())
        except BaseException:
            self._thread.close()
            raise
        self._prefetch: concurrent.futures.Future[None] | None = None
        if self.prefetch_strategy is Prefetch.sync:
            self._thread.run(self._aprefetch())
        elif self.prefetch_strategy is Prefetch.background:
            self._prefetch = self.prefetch()

    @classmethod
    def from_environ(
        cls, env: Mapping[str, str], *, prefetch: Prefetch | str = Prefetch.lazy
    ) -> ModelReferenceManager:
        return cls(ReplicaConfig.from_environ(env), prefetch=prefetch)

    async def _astart(self) -> Replica:
        if not self.config.offline:
            self._session = new_session()
        return Replica(self.config, self._session)

    async def _aprefetch(self) -> None:
        try:
            await self._replica.aget_many()
        except Exception:  # a prefetch never fails its caller (constructor or Future): it logs
            logger.exception("prefetching the model reference failed")

    def prefetch(self) -> concurrent.futures.Future[None]:
        """Fetch every category in the background now; the Future resolves when done."""
        return self._thread.submit(self._aprefetch())

    # --- lifecycle -------------------------------------------------------------------------------

    async def _ashutdown(self) -> None:
        await self._replica.aclose()
        if self._session is not None:
            await self._session.close()

    def close(self) -> None:
        """Cancel running fetches, close the HTTP session and stop the private loop."""
        if self._thread.closed:
            return
        self._thread.run(self._ashutdown())
        self._thread.close()

    async def aclose(self) -> None:
        if self._thread.closed:
            return
        await self._thread.arun(self._ashutdown())
        self._thread.close()

    def __enter__(self) -> ModelReferenceManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ModelReferenceManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- plumbing --------------------------------------------------------------------------------

    def _get(self, category: Category | str, force: bool) -> tuple[Category, CategoryData | None]:
        category = as_category(category)
        if not force and (data := self._replica.cached(category)) is not None:
            return category, data
        return category, self._thread.run(self._replica.aget(category, force=force))

    async def _aget(
        self, category: Category | str, force: bool
    ) -> tuple[Category, CategoryData | None]:
        category = as_category(category)
        if not force and (data := self._replica.cached(category)) is not None:
            return category, data
        return category, await self._thread.arun(self._replica.aget(category, force=force))

    def _fresh_all(self) -> dict[Category, CategoryData | None] | None:
        found = {c: self._replica.cached(c) for c in REPLICATED_CATEGORIES}
        return None if any(v is None for v in found.values()) else found

    def _get_all(self, force: bool) -> Mapping[Category, CategoryData | None]:
        if not force and (found := self._fresh_all()) is not None:
            return found
        return self._thread.run(self._replica.aget_many(force=force))

    async def _aget_all(self, force: bool) -> Mapping[Category, CategoryData | None]:
        if not force and (found := self._fresh_all()) is not None:
            return found
        return await self._thread.arun(self._replica.aget_many(force=force))

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
        self, category: Category | str, overwrite_existing: bool = False
    ) -> Records:
        """{name: record}; raises NoDataError (a RuntimeError) when unavailable."""
        return _require(*self._get(category, overwrite_existing))

    def get_model_reference_or_none(
        self, category: Category | str, overwrite_existing: bool = False
    ) -> Records | None:
        return _records(self._get(category, overwrite_existing)[1])

    def get_model(
        self, category: Category | str, model_name: str, overwrite_existing: bool = False
    ) -> ModelRecord:
        """One record; raises NoDataError or ModelNotFoundError (both RuntimeError)."""
        return _model(*self._get(category, overwrite_existing), model_name)

    def get_model_or_none(
        self, category: Category | str, model_name: str, overwrite_existing: bool = False
    ) -> ModelRecord | None:
        data = self._get(category, overwrite_existing)[1]
        return None if data is None else data.records.get(model_name)

    async def get_all_model_references_async(
        self, overwrite_existing: bool = False
    ) -> dict[Category, Records]:
        return _all(await self._aget_all(overwrite_existing))

    async def get_all_model_references_or_none_async(
        self, overwrite_existing: bool = False
    ) -> dict[Category, Records | None]:
        return _all_or_none(await self._aget_all(overwrite_existing))

    async def get_model_reference_async(
        self, category: Category | str, overwrite_existing: bool = False
    ) -> Records:
        return _require(*await self._aget(category, overwrite_existing))

    async def get_model_reference_or_none_async(
        self, category: Category | str, overwrite_existing: bool = False
    ) -> Records | None:
        return _records((await self._aget(category, overwrite_existing))[1])

    async def get_model_async(
        self, category: Category | str, model_name: str, overwrite_existing: bool = False
    ) -> ModelRecord:
        return _model(*await self._aget(category, overwrite_existing), model_name)

    async def get_model_or_none_async(
        self, category: Category | str, model_name: str, overwrite_existing: bool = False
    ) -> ModelRecord | None:
        data = (await self._aget(category, overwrite_existing))[1]
        return None if data is None else data.records.get(model_name)

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

    def last_updated(self, category: Category | str) -> int | None:
        """Always None: a REPLICA has no metadata."""
        as_category(category)
        return None

    def supports_metadata(self) -> bool:
        return False

    # --- ours --------------------------------------------------------------------------------------

    def refresh(
        self, categories: Iterable[Category | str] = REPLICATED_CATEGORIES
    ) -> dict[Category, FetchReport]:
        """Fetch the categories now (conditional requests: unchanged ones cost a 304)."""
        return self._thread.run(self._replica.arefresh(list(categories)))

    async def arefresh(
        self, categories: Iterable[Category | str] = REPLICATED_CATEGORIES
    ) -> dict[Category, FetchReport]:
        return await self._thread.arun(self._replica.arefresh(list(categories)))

    def fetch_report(self, category: Category | str) -> FetchReport | None:
        """What the last fetch of the category did (outcome, source, bytes, errors)."""
        return self._replica.report(as_category(category))


_singleton_lock = threading.Lock()
_singleton: ModelReferenceManager | None = None


def get_manager(
    config: ReplicaConfig | None = None, *, prefetch: Prefetch | str | None = None
) -> ModelReferenceManager:
    """The process-wide manager (upstream's is a singleton too), closed at interpreter exit.

    The first call fixes the configuration (`config`, else the environment). Later calls return
    the same instance; passing a different `config` or `prefetch` raises RuntimeError.
    """
    global _singleton
    with _singleton_lock:
        if _singleton is None:
            _singleton = ModelReferenceManager(config, prefetch=prefetch or Prefetch.lazy)
            atexit.register(_singleton.close)
            return _singleton
        other_config = config is not None and config != _singleton.config
        other_prefetch = (
            prefetch is not None and Prefetch(prefetch) is not _singleton.prefetch_strategy
        )
        if other_config or other_prefetch:
            raise RuntimeError(
                "the model reference manager already exists with other settings; "
                "it is configured once per process"
            )
        return _singleton


def reset_manager() -> None:
    """Close the process-wide manager, if there is one, and forget it.

    The next `get_manager()` builds a new one from its arguments (or the environment). For tests,
    and for a process that has to change its configuration.
    """
    global _singleton
    with _singleton_lock:
        manager, _singleton = _singleton, None
    if manager is not None:
        atexit.unregister(manager.close)
        manager.close()
