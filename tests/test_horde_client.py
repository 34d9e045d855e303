"""The stats service's outbound AI-Horde client and poller, unit-tested with aioresponses.

Retry schedules, Retry-After, timeouts, malformed answers and 5xx vs 4xx, where a loopback fake
would need a switch per case. The fake AI-Horde on loopback (tests/test_stats.py) covers the
service end to end.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from services.stats.horde_client import CLIENT_AGENT, HordeClient, HordeUnavailable
from services.stats.poller import (
    COOLDOWN_SECONDS,
    FAILURES_TO_OPEN,
    RESOURCES,
    CircuitBreaker,
    Poller,
)
from tests.helpers import Sleeps, requests_made

BASE = "https://horde.invalid/api/"
STATUS_URL = f"{BASE}v2/status/models?type=image&model_state=known"
STATUS = [{"name": "Deliberate", "count": 3, "jobs": 1, "queued": 0, "eta": 0, "performance": 1}]
ANY_HORDE_URL = re.compile(r"^https://horde\.invalid/api/v2/.*$")


def client(http_session: aiohttp.ClientSession, sleeps: Sleeps, **kw: Any) -> HordeClient:
    return HordeClient(http_session, BASE, sleep=sleeps, **kw)


def calls(outbound: aioresponses) -> int:
    return len(requests_made(outbound))


async def get_status(horde: HordeClient) -> Any:
    return await horde.aget_json("status/models", {"type": "image", "model_state": "known"})


# --- HordeClient: what is retried, how often, how long it waits -----------------------------------


async def test_5xx_is_retried_until_an_answer(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A 503 and a 502 are retried and the third attempt's 200 is returned."""
    outbound.get(STATUS_URL, status=503)
    outbound.get(STATUS_URL, status=502)
    outbound.get(STATUS_URL, payload=STATUS)
    assert await get_status(client(http_session, sleeps)) == STATUS
    assert calls(outbound) == 3 and len(sleeps.delays) == 2


async def test_attempts_are_capped(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A 5xx on every attempt gives up after `attempts` requests with HordeUnavailable."""
    outbound.get(STATUS_URL, status=500, repeat=True)
    with pytest.raises(HordeUnavailable, match="500"):
        await get_status(client(http_session, sleeps, attempts=4))
    assert calls(outbound) == 4 and len(sleeps.delays) == 3  # no wait after the last attempt


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_4xx_is_not_retried(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps, status: int
) -> None:
    """A 4xx other than 429 fails at once: one request, no wait."""
    outbound.get(STATUS_URL, status=status, repeat=True)
    with pytest.raises(HordeUnavailable, match=str(status)):
        await get_status(client(http_session, sleeps))
    assert calls(outbound) == 1 and sleeps.delays == []


async def test_backoff_grows_exponentially_with_jitter_and_a_cap(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """The n-th wait lies in [min, min·2ⁿ⁻¹], never above backoff_max."""
    outbound.get(STATUS_URL, status=500, repeat=True)
    horde = client(http_session, sleeps, attempts=6, backoff_min=1.0, backoff_max=5.0)
    with pytest.raises(HordeUnavailable):
        await get_status(horde)
    assert len(sleeps.delays) == 5
    for n, delay in enumerate(sleeps.delays):
        assert 1.0 <= delay <= min(5.0, 2.0**n), (n, sleeps.delays)


@pytest.mark.parametrize(("header", "wait"), [("7", 7.0), ("0", 0.0), ("-3", 0.0), ("2.5", 2.5)])
async def test_retry_after_seconds_is_honoured(
    outbound: aioresponses,
    http_session: aiohttp.ClientSession,
    sleeps: Sleeps,
    header: str,
    wait: float,
) -> None:
    """A 429's Retry-After in seconds is the wait before the next attempt (negative means 0)."""
    outbound.get(STATUS_URL, status=429, headers={"Retry-After": header})
    outbound.get(STATUS_URL, payload=STATUS)
    assert await get_status(client(http_session, sleeps, backoff_max=15.0)) == STATUS
    assert sleeps.delays == [wait]


async def test_retry_after_is_capped_by_backoff_max(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """An hour-long Retry-After waits only backoff_max: the poller must not stall for an hour."""
    outbound.get(STATUS_URL, status=429, headers={"Retry-After": "3600"})
    outbound.get(STATUS_URL, payload=STATUS)
    assert await get_status(client(http_session, sleeps, backoff_max=15.0)) == STATUS
    assert sleeps.delays == [15.0]


async def test_retry_after_as_a_date_falls_back_to_own_backoff(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A Retry-After HTTP date is not parsed: the wait is the client's own first backoff."""
    outbound.get(STATUS_URL, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    outbound.get(STATUS_URL, payload=STATUS)
    assert await get_status(client(http_session, sleeps, backoff_min=2.0)) == STATUS
    assert sleeps.delays == [2.0]


async def test_429_on_every_attempt_is_unavailable(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """Rate limiting that never ends is reported as HordeUnavailable after the capped attempts."""
    outbound.get(STATUS_URL, status=429, headers={"Retry-After": "1"}, repeat=True)
    with pytest.raises(HordeUnavailable, match="429"):
        await get_status(client(http_session, sleeps))
    assert calls(outbound) == 3 and sleeps.delays == [1.0, 1.0]


async def test_timeouts_are_retried_then_reported(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A request that times out is retried; timing out every time reports the timeout."""
    outbound.get(STATUS_URL, timeout=True, repeat=True)
    with pytest.raises(HordeUnavailable, match=r"timed out after 2\.5 s"):
        await get_status(client(http_session, sleeps, timeout=2.5))
    assert calls(outbound) == 3


async def test_the_configured_timeout_is_sent_with_each_request(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """Every request carries a total timeout of the configured seconds, and the Client-Agent."""
    outbound.get(STATUS_URL, payload=STATUS)
    await get_status(client(http_session, sleeps, timeout=4.0))
    (call,) = requests_made(outbound)
    assert call.kwargs["timeout"].total == 4.0
    assert call.kwargs["headers"]["Client-Agent"] == CLIENT_AGENT


async def test_connection_errors_are_retried(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A refused or reset connection is retried like a 5xx."""
    outbound.get(STATUS_URL, exception=aiohttp.ClientConnectionError("reset"))
    outbound.get(STATUS_URL, exception=aiohttp.ServerDisconnectedError())
    outbound.get(STATUS_URL, payload=STATUS)
    assert await get_status(client(http_session, sleeps)) == STATUS
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize("body", [b"<html>Bad gateway</html>", b'{"cut": ', b"\x80 not utf-8"])
async def test_a_body_that_is_not_json_is_not_retried(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps, body: bytes
) -> None:
    """A 200 whose body is not JSON is HordeUnavailable at once, not a retry and not data."""
    outbound.get(STATUS_URL, body=body, repeat=True)
    with pytest.raises(HordeUnavailable, match="not JSON"):
        await get_status(client(http_session, sleeps))
    assert calls(outbound) == 1 and sleeps.delays == []


async def test_base_url_without_trailing_slash_reaches_v2(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """`https://host/api` and `https://host/api/` both ask `https://host/api/v2/...`."""
    outbound.get(STATUS_URL, payload=STATUS)
    horde = HordeClient(http_session, BASE.rstrip("/"), sleep=sleeps)
    assert await get_status(horde) == STATUS


# --- Poller: malformed payloads, last good data, the circuit breaker ------------------------------


def answer_everything(outbound: aioresponses, status_image: Any = STATUS) -> None:
    """Every resource answers 200: the image status with `status_image`, the rest with sane data."""
    usage = {"day": {}, "month": {}, "total": {}}
    for resource in RESOURCES:
        url = URL(f"{BASE}v2/{resource.path}").with_query(resource.params or {})
        payload: Any = {
            "status_image": status_image,
            "status_text": [],
            "usage_image": usage,
            "usage_text": usage,
            "workers_image": [],
            "workers_text": [],
            "heartbeat": {"message": "OK"},
        }[resource.key]
        outbound.get(str(url), body=json.dumps(payload))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_malformed_payload_keeps_the_last_good_data(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A payload of the wrong shape is skipped: the resource keeps its last good value."""
    poller = Poller(client=client(http_session, sleeps), interval=60)
    answer_everything(outbound)
    await poller.apoll_once()
    good = poller.data.get("status_image")
    assert set(good) == {"deliberate"}
    answer_everything(outbound, status_image={"not": "a list"})
    await poller.apoll_once()
    assert poller.data.get("status_image") == good
    assert poller.data.generation == 2  # the six good resources were still taken


async def test_breaker_opens_after_five_failures_and_stops_asking(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """After five failures in a row no request goes out until the cooldown has passed."""
    clock = Clock()
    poller = Poller(
        client=client(http_session, sleeps, attempts=1),
        interval=60,
        breaker=CircuitBreaker(clock=clock),
    )
    outbound.get(ANY_HORDE_URL, status=500, repeat=True)
    await poller.apoll_once()
    asked = calls(outbound)
    # resources still waiting for their turn when the fifth failure opens the breaker are skipped
    assert FAILURES_TO_OPEN <= asked <= len(RESOURCES)
    assert poller.breaker.degraded
    generation = poller.data.generation
    clock.now += COOLDOWN_SECONDS - 1
    await poller.apoll_once()
    assert calls(outbound) == asked  # open: nothing was asked
    assert poller.data.generation == generation


async def test_breaker_closes_when_the_probe_after_the_cooldown_succeeds(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """Once the cooldown is over the next poll asks again, and good answers close the breaker."""
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    for _ in range(FAILURES_TO_OPEN):
        breaker.record(False)
    poller = Poller(client=client(http_session, sleeps), interval=60, breaker=breaker)
    clock.now += COOLDOWN_SECONDS
    answer_everything(outbound)
    await poller.apoll_once()
    assert not poller.breaker.degraded and poller.breaker.consecutive_failures == 0
    assert set(poller.data.get("status_image")) == {"deliberate"}
