"""Bounded retries with jittered exponential backoff, on named exceptions only."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from attrs import frozen

T = TypeVar("T")
logger = logging.getLogger("horde_model_replica")


@frozen
class RetryPolicy:
    """`attempts` tries in all; the n-th wait is min(max, min·2ⁿ⁻¹) stretched by up to 50 % jitter,
    or the failure's own `retry_after` (capped at max) when it carries one."""

    attempts: int = 3
    backoff_min: float = 1.0
    backoff_max: float = 10.0
    retry_on: tuple[type[BaseException], ...] = ()

    def delay(self, failures: int) -> float:
        base = min(self.backoff_max, self.backoff_min * 2.0 ** (failures - 1))
        return min(self.backoff_max, base * random.uniform(1.0, 1.5))


#: what waits between attempts: asyncio.sleep, or a recorder in tests
Sleep = Callable[[float], Awaitable[object]]


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    what: str,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Await `call()` until it succeeds, raises something not in `policy.retry_on`, or tries run out."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except policy.retry_on as exc:
            if attempt >= policy.attempts:
                raise
            # a source that says when to come back (429/503 Retry-After) is believed, up to the cap
            hint: float | None = getattr(exc, "retry_after", None)
            delay = policy.delay(attempt) if hint is None else min(policy.backoff_max, hint)
            logger.info(
                "%s: %s; retry %d/%d in %.2f s",
                what,
                str(exc) or type(exc).__name__,  # e.g. TimeoutError() has no message
                attempt,
                policy.attempts - 1,
                delay,
            )
            await sleep(delay)
    raise AssertionError("unreachable: attempts >= 1")
