"""Outbound calls to the public AI-Horde API: timeouts, capped retries on named errors, 429."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

CLIENT_AGENT = "horde-model-reference-stats:0.1:https://github.com/Haidra-Org"


class HordeUnavailable(Exception):
    """AI-Horde did not give a usable answer (after retries)."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class HordeClient:
    """GETs JSON from `<base>v2/...`; retries 5xx, 429, timeouts and connection errors only.

    A 429's Retry-After (in seconds) sets the wait before the next attempt, capped at
    `backoff_max`; otherwise the n-th wait is drawn from [backoff_min, backoff_min·2ⁿ⁻¹].
    `sleep` does the waiting (tests pass a recorder to see the schedule without waiting it out).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff_min: float = 1.0,
        backoff_max: float = 15.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._sleep = sleep
        self._root = URL(base_url.rstrip("/") + "/v2/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take, answer included."""
        return float(self._timeout.total or 0.0)

    async def aget_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        last = "no attempt made"
        for attempt in range(self._attempts):
            try:
                return await self._aget_once(path, params)
            except _Retryable as exc:
                last = str(exc)
                if attempt + 1 == self._attempts:
                    break
                delay = exc.retry_after
                if delay is None:
                    # full jitter: spread retries from many processes over the window
                    cap = min(self._backoff_max, self._backoff_min * 2**attempt)
                    delay = random.uniform(self._backoff_min, max(self._backoff_min, cap))
                await self._sleep(min(delay, self._backoff_max))
        raise HordeUnavailable(last)

    async def _aget_once(self, path: str, params: dict[str, str] | None) -> Any:
        url = self._root.join(URL(path))
        try:
            async with self._session.get(
                url,
                params=params,
                headers={"Client-Agent": CLIENT_AGENT},
                timeout=self._timeout,
            ) as resp:
                if resp.status == 429:
                    raise _Retryable(
                        "AI-Horde answered 429", _retry_after(resp.headers.get("Retry-After"))
                    )
                if resp.status >= 500:
                    raise _Retryable(f"AI-Horde answered {resp.status}")
                if resp.status != 200:
                    raise HordeUnavailable(f"AI-Horde answered {resp.status} for {path}")
                raw = await resp.read()
        except TimeoutError:
            raise _Retryable(f"timed out after {self._timeout.total} s") from None
        except aiohttp.ClientError as exc:
            raise _Retryable(f"connection failed: {exc.__class__.__name__}") from None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise HordeUnavailable(f"AI-Horde sent a body that is not JSON for {path}") from None
