"""The PRIMARY's views, read over HTTP like any client (ours or upstream's deployment)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from attrs import frozen

from horde_model_records import Category

from .config import public_url
from .legacy_json import strip_nulls

logger = logging.getLogger("hmr.github_sync.primary")

Sleep = Callable[[float], Awaitable[None]]
ATTEMPTS = 3


class PrimaryError(Exception):
    """The PRIMARY did not give a usable answer; the message says which URL and why."""


@frozen
class View:
    data: dict[str, Any]
    snapshot_id: str | None


def base_url(url: str) -> str:
    """The part before /model_references, without a trailing slash."""
    url = url.strip().rstrip("/")
    if "/model_references" in url:
        url = url.split("/model_references", 1)[0]
    return url


def v1_path(category: Category) -> str:
    return f"/model_references/v1/{category.value}"


class PrimaryReader:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        timeout: float = 30.0,
        backoff: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._url = base_url(url)
        #: the base URL as it may be shown: in logs, errors and PR bodies
        self.url = public_url(self._url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._backoff = backoff
        self._sleep = sleep

    async def get(self, path: str) -> View:
        """GET a JSON body: 3 attempts on 5xx, 429, timeouts and connection errors."""
        url = self.url + path
        problem = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._session.get(self._url + path, timeout=self._timeout) as resp:
                    if resp.status >= 500 or resp.status == 429:
                        problem = f"HTTP {resp.status}"
                    elif resp.status != 200:
                        text = (await resp.text(errors="replace"))[:200]
                        raise PrimaryError(f"GET {url}: HTTP {resp.status}: {text}")
                    else:
                        try:
                            body = await resp.json(content_type=None)
                        except ValueError:
                            raise PrimaryError(f"GET {url}: the answer is not JSON") from None
                        if not isinstance(body, dict):
                            raise PrimaryError(f"GET {url}: expected a JSON object")
                        return View(strip_nulls(body), resp.headers.get("X-Snapshot-Id"))
            except (aiohttp.ClientError, TimeoutError) as exc:  # no (whole) answer
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < ATTEMPTS:
                delay = min(15.0, self._backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                logger.warning("GET %s failed (%s); retrying in %.1f s", url, problem, delay)
                await self._sleep(delay)
        raise PrimaryError(f"GET {url} failed after {ATTEMPTS} attempts: {problem}")

    async def v1(self, category: Category) -> View:
        return await self.get(v1_path(category))

    async def v2(self, category: Category) -> View:
        return await self.get(f"/model_references/v2/{category.value}")

    async def metadata(self, categories: tuple[Category, ...]) -> dict[str, Any]:
        """{category: last_updated} of the synced categories' legacy views (works whatever the
        canonical format; `/v1/metadata/last_updated` answers 503 on a v2-canonical PRIMARY)."""
        view = await self.get("/model_references/v1/metadata/metadata")
        out: dict[str, Any] = {}
        for category in categories:
            entry = view.data.get(category.value)
            out[category.value] = entry.get("last_updated") if isinstance(entry, dict) else None
        return out
