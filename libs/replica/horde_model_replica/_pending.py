"""`PendingModelProvider`: a PRIMARY's beta models (proposals not yet applied) as the source "pending".

It reads `GET {PRIMARY}/model_references/v2/{category}/pending` with an AI-Horde key (any valid
key, the anonymous `0000000000` included) and keeps each answer for the TTL, failures too: a
worker that reads the reference on every job costs the PRIMARY one request per category and TTL.
A key the PRIMARY refuses (401/403), a PRIMARY that cannot be reached or answers 5xx are failures
(the read marks the source "error"); a PRIMARY without the route (404) just has no beta models.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

import aiohttp
import yarl

from horde_model_records import Category, ModelRecord

from ._errors import SourceError, StatusError
from ._http import ReplicaClient, new_session
from ._loop import LoopThread
from ._proxy import ProxySettings
from ._replica import as_category
from ._sources import PENDING_SOURCE_ID, ModelProvider

logger = logging.getLogger("horde_model_replica")

Records = dict[str, ModelRecord]
#: one cached answer: the records (None = none served), or the failure to raise again
_Answer = Records | None | SourceError


class _Runtime:
    """The provider's loop thread, its session and client, for the process that started them."""

    def __init__(self, make_client: Callable[[aiohttp.ClientSession], ReplicaClient]) -> None:
        self.pid = os.getpid()
        self.thread = LoopThread("horde-model-replica-pending")
        self.inflight: dict[tuple[Category, bool], asyncio.Task[_Answer]] = {}

        async def astart() -> tuple[aiohttp.ClientSession, ReplicaClient]:
            session = new_session()  # made on the loop that uses it
            return session, make_client(session)

        try:
            self.session, self.client = self.thread.run(astart())
        except BaseException:
            self.thread.close()
            raise

    def close(self) -> None:
        if self.pid != os.getpid():
            return  # the parent's thread: nothing of it runs in this (forked) process
        if not self.thread.closed:
            self.thread.run(self.session.close())
        self.thread.close()


class PendingModelProvider(ModelProvider):
    """The beta models of `categories`, from the PRIMARY at `primary_api_url` (ending in /api).

    Upstream's keywords; `proxies` is ours (default: the environment's, as the manager reads it).
    Answers, failures included, are reused for `cache_ttl_seconds`; `force_refresh` asks again.
    Sync and async calls work from any thread or event loop (the requests run on the provider's
    own loop, started on first use). Close it with `close()`, or leave that to interpreter exit.
    """

    def __init__(
        self,
        *,
        primary_api_url: str | yarl.URL,
        apikey: str,
        categories: Iterable[Category | str],
        cache_ttl_seconds: float = 60,
        timeout_seconds: float = 10.0,
        retry_max_attempts: int = 3,
        retry_backoff_seconds: float = 1.0,
        proxies: ProxySettings | None = None,
    ) -> None:
        self._categories = {as_category(c) for c in categories}
        self._apikey = apikey
        self._ttl = cache_ttl_seconds
        self._make_client = functools.partial(
            ReplicaClient,
            base_url=primary_api_url,
            timeout=timeout_seconds,
            attempts=retry_max_attempts,
            backoff_min=retry_backoff_seconds,
            proxies=proxies if proxies is not None else ProxySettings.from_environ(os.environ),
        )
        self._answers: dict[Category, tuple[float, _Answer]] = {}
        self._lock = threading.Lock()
        self._runtime: _Runtime | None = None
        self._closed = False

    @property
    def source_id(self) -> str:
        return PENDING_SOURCE_ID

    def provided_categories(self) -> set[Category | str]:
        return set(self._categories)

    def cache_ttl_seconds(self) -> float:
        return self._ttl

    # --- the runtime -------------------------------------------------------------------------------

    def _rt(self) -> _Runtime:
        with self._lock:
            if self._closed:
                raise RuntimeError("the pending model provider is closed")
            if self._runtime is None or self._runtime.pid != os.getpid():
                self._runtime = _Runtime(self._make_client)
                atexit.register(self.close)
            return self._runtime

    def close(self) -> None:
        """Close the session and stop the provider's loop (nothing to do if it never fetched)."""
        with self._lock:
            runtime, self._runtime, self._closed = self._runtime, None, True
        atexit.unregister(self.close)
        if runtime is not None:
            runtime.close()

    def __enter__(self) -> PendingModelProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- fetching ----------------------------------------------------------------------------------

    def _fresh(self, category: Category) -> tuple[bool, _Answer]:
        held = self._answers.get(category)
        if held is None or time.monotonic() - held[0] >= self._ttl:
            return False, None
        return True, held[1]

    @staticmethod
    def _give(answer: _Answer) -> Records | None:
        if isinstance(answer, SourceError):
            raise answer.with_traceback(None)
        return None if answer is None else dict(answer)

    async def _ask(self, client: ReplicaClient, category: Category) -> _Answer:
        try:
            answer: _Answer = await client.fetch_pending(category, self._apikey)
        except StatusError as exc:
            # 401/403: this key is refused, which the worker must see; anything else (404: no
            # such route on this PRIMARY) means there are no beta models to serve
            answer = exc if exc.status in (401, 403) else None
        except SourceError as exc:
            answer = exc
        if isinstance(answer, SourceError):
            logger.warning("pending %s: %s", category.value, answer)
        self._answers[category] = (time.monotonic(), answer)
        return answer

    async def _afetch(self, runtime: _Runtime, category: Category, force: bool) -> _Answer:
        """On the provider's loop: the held answer, else one request however many callers ask."""
        fresh, answer = self._fresh(category)
        if fresh and not force:
            return answer
        key = (category, force)
        task = runtime.inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._ask(runtime.client, category))
            runtime.inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, runtime, key))
        return await asyncio.shield(task)

    @staticmethod
    def _forget(runtime: _Runtime, key: tuple[Category, bool], task: asyncio.Task[_Answer]) -> None:
        if runtime.inflight.get(key) is task:
            del runtime.inflight[key]

    def _served(self, category: Category | str) -> Category | None:
        try:
            resolved = as_category(category)
        except ValueError:
            return None
        return resolved if resolved in self._categories else None

    def _held(self, category: Category | str, force: bool) -> tuple[Category | None, _Answer, bool]:
        """(the category if served, the answer held for it, whether it must be asked again)."""
        resolved = self._served(category)
        if resolved is None:
            return None, None, False
        fresh, answer = self._fresh(resolved)
        return resolved, answer, force or not fresh

    def fetch_category(
        self, category: Category | str, *, force_refresh: bool = False
    ) -> Mapping[str, ModelRecord] | None:
        """The beta models of `category`: {name: record}, None when not served, raises on failure."""
        resolved, answer, stale = self._held(category, force_refresh)
        if resolved is not None and stale:
            runtime = self._rt()
            answer = runtime.thread.run(self._afetch(runtime, resolved, force_refresh))
        return self._give(answer)

    async def fetch_category_async(
        self, category: Category | str, *, force_refresh: bool = False
    ) -> Mapping[str, ModelRecord] | None:
        resolved, answer, stale = self._held(category, force_refresh)
        if resolved is not None and stale:
            runtime = self._rt()
            answer = await runtime.thread.arun(self._afetch(runtime, resolved, force_refresh))
        return self._give(answer)
