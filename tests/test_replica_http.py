"""The replica library's outbound clients (PRIMARY and GitHub raw), unit-tested with aioresponses.

Retry schedules, timeouts, malformed answers and 5xx vs 4xx, where a loopback fake would need a
switch per case. tests/test_replica.py runs the whole fetch chain against the real read service.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from horde_model_records import Category
from horde_model_replica import (
    GitHubRawClient,
    GitHubRepo,
    InvalidBody,
    ReplicaClient,
    RetryableStatus,
    SourceError,
    StatusError,
    UnreachableError,
)
from services.cli import SAMPLE_DIR
from tests.helpers import Sleeps, requests_made

IMAGE = Category.image_generation
PRIMARY = "https://primary.invalid/api"
V2_URL = f"{PRIMARY}/model_references/v2/image_generation"
V2_BODY = json.dumps(
    {"Tiny": {"name": "Tiny", "baseline": "flux_1", "nsfw": False, "config": {"download": []}}}
)
REPO = GitHubRepo(owner="Haidra-Org", name="AI-Horde-image-model-reference", branch="main")
RAW = "https://raw.invalid"
BLIP_URL = f"{RAW}/Haidra-Org/AI-Horde-image-model-reference/refs/heads/main/blip.json"
BLIP_BODY = (SAMPLE_DIR / "image" / "blip.json").read_bytes()


def primary(http_session: aiohttp.ClientSession, sleeps: Sleeps, **kw: Any) -> ReplicaClient:
    return ReplicaClient(http_session, PRIMARY, sleep=sleeps, **kw)


def github(http_session: aiohttp.ClientSession, sleeps: Sleeps, **kw: Any) -> GitHubRawClient:
    return GitHubRawClient(
        http_session, raw_base=RAW, image_repo=REPO, text_repo=REPO, sleep=sleeps, **kw
    )


# --- the PRIMARY ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_5xx_and_429_are_retried(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps, status: int
) -> None:
    """A 5xx or 429 is retried, and the next attempt's 200 is decoded."""
    outbound.get(V2_URL, status=status)
    outbound.get(V2_URL, body=V2_BODY, headers={"ETag": '"v2-1"'})
    fetched = await primary(http_session, sleeps).fetch_v2(IMAGE)
    assert fetched.status == 200 and fetched.etag == '"v2-1"'
    assert set(fetched.payload.records) == {"Tiny"}
    assert len(requests_made(outbound)) == 2 and len(sleeps.delays) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_4xx_is_not_retried(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps, status: int
) -> None:
    """A 4xx other than 429 is a StatusError at once: one request, no wait."""
    outbound.get(V2_URL, status=status, repeat=True)
    with pytest.raises(StatusError) as raised:
        await primary(http_session, sleeps).fetch_v2(IMAGE)
    assert raised.value.status == status and not isinstance(raised.value, RetryableStatus)
    assert len(requests_made(outbound)) == 1 and sleeps.delays == []


async def test_attempts_are_capped(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A 503 on every attempt stops after `attempts` requests and raises the retryable status."""
    outbound.get(V2_URL, status=503, repeat=True)
    with pytest.raises(RetryableStatus, match="503"):
        await primary(http_session, sleeps, attempts=4).fetch_v2(IMAGE)
    assert len(requests_made(outbound)) == 4 and len(sleeps.delays) == 3  # no wait after the last


async def test_backoff_doubles_with_jitter_up_to_the_cap(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """The n-th wait is min·2ⁿ⁻¹ stretched by at most 50 %, and never above backoff_max."""
    outbound.get(V2_URL, status=500, repeat=True)
    client = primary(http_session, sleeps, attempts=5, backoff_min=1.0, backoff_max=3.0)
    with pytest.raises(RetryableStatus):
        await client.fetch_v2(IMAGE)
    first, second, third, fourth = sleeps.delays
    assert 1.0 <= first <= 1.5 and 2.0 <= second <= 3.0
    assert third == fourth == 3.0  # 4 and 8 are over the cap


@pytest.mark.parametrize(
    ("header", "wait"), [("2", 2.0), ("0", 0.0), ("-5", 0.0), ("3600", 10.0), ("soon", None)]
)
async def test_retry_after_sets_the_wait_up_to_the_cap(
    outbound: aioresponses,
    http_session: aiohttp.ClientSession,
    sleeps: Sleeps,
    header: str,
    wait: float | None,
) -> None:
    """A 429's Retry-After in seconds is the wait (capped at backoff_max); a date or garbage
    leaves the client's own backoff."""
    outbound.get(V2_URL, status=429, headers={"Retry-After": header})
    outbound.get(V2_URL, body=V2_BODY)
    await primary(http_session, sleeps, backoff_min=1.0, backoff_max=10.0).fetch_v2(IMAGE)
    (delay,) = sleeps.delays
    if wait is None:
        assert 1.0 <= delay <= 1.5
    else:
        assert delay == wait


async def test_timeouts_are_retried_then_unreachable(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A request that times out on every attempt is retried, then reported as unreachable."""
    outbound.get(V2_URL, timeout=True, repeat=True)
    with pytest.raises(UnreachableError, match="TimeoutError"):
        await primary(http_session, sleeps).fetch_v2(IMAGE)
    assert len(requests_made(outbound)) == 3 and len(sleeps.delays) == 2


async def test_the_configured_timeout_is_sent_with_each_request(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """Each request carries a total timeout of the configured seconds and asks for gzip."""
    outbound.get(V2_URL, body=V2_BODY)
    await primary(http_session, sleeps, timeout=2.5).fetch_v2(IMAGE)
    (call,) = requests_made(outbound)
    assert call.kwargs["timeout"].total == 2.5
    assert call.kwargs["headers"]["Accept-Encoding"] == "gzip"
    assert "If-None-Match" not in call.kwargs["headers"]


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("body cut short"),
    ],
)
async def test_network_errors_are_retried(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps, error: Exception
) -> None:
    """A refused connection, a dropped one or a body cut short is worth another try."""
    outbound.get(V2_URL, exception=error)
    outbound.get(V2_URL, body=V2_BODY)
    fetched = await primary(http_session, sleeps).fetch_v2(IMAGE)
    assert fetched.status == 200 and len(sleeps.delays) == 1


async def test_other_client_errors_are_a_source_error_without_retry(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A client error that is not about the network (a redirect loop) fails the source at once."""
    info = aiohttp.RequestInfo(URL(V2_URL), "GET", CIMultiDictProxy(CIMultiDict()), URL(V2_URL))
    outbound.get(V2_URL, exception=aiohttp.TooManyRedirects(info, ()), repeat=True)
    with pytest.raises(SourceError, match="TooManyRedirects") as raised:
        await primary(http_session, sleeps).fetch_v2(IMAGE)
    assert not isinstance(raised.value, UnreachableError | StatusError | InvalidBody)
    assert len(requests_made(outbound)) == 1 and sleeps.delays == []


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", V2_BODY.encode()[:-9], b"[]", b'{"Tiny": {"name": 1}}'],
    ids=["html", "truncated", "a-list", "no-valid-record"],
)
async def test_a_malformed_200_is_refused_without_retry(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps, body: bytes
) -> None:
    """The PRIMARY's 200 with an error page, a cut body or no valid record is InvalidBody, once."""
    outbound.get(V2_URL, body=body, repeat=True)
    with pytest.raises(InvalidBody):
        await primary(http_session, sleeps).fetch_v2(IMAGE)
    assert len(requests_made(outbound)) == 1 and sleeps.delays == []


async def test_a_304_keeps_the_stored_etag_and_carries_no_payload(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """With a stored ETag the request is conditional, and a 304 means: nothing new, no body."""
    outbound.get(V2_URL, status=304)
    fetched = await primary(http_session, sleeps).fetch_v2(IMAGE, etag='"old"')
    assert (fetched.status, fetched.etag, fetched.payload) == (304, '"old"', None)
    (call,) = requests_made(outbound)
    assert call.kwargs["headers"]["If-None-Match"] == '"old"'


async def test_a_304_to_an_unconditional_request_is_an_error(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A 304 when no ETag was sent is not data: a StatusError, not an empty success."""
    outbound.get(V2_URL, status=304)
    with pytest.raises(StatusError):
        await primary(http_session, sleeps).fetch_v2(IMAGE)


# --- GitHub raw -----------------------------------------------------------------------------------


async def test_github_retries_a_body_that_does_not_validate(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """GitHub (a CDN) retries a 200 that is not a valid legacy file; the PRIMARY does not."""
    outbound.get(BLIP_URL, body=b"<html>rate limited</html>")
    outbound.get(BLIP_URL, body=BLIP_BODY)
    fetched = await github(http_session, sleeps).fetch(Category.blip)
    assert fetched.status == 200 and fetched.payload.records
    assert len(requests_made(outbound)) == 2 and len(sleeps.delays) == 1


async def test_github_404_is_not_retried(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """A missing legacy file is a StatusError at once: asking again will not make it appear."""
    outbound.get(BLIP_URL, status=404, repeat=True)
    with pytest.raises(StatusError, match="404"):
        await github(http_session, sleeps).fetch(Category.blip)
    assert len(requests_made(outbound)) == 1 and sleeps.delays == []


async def test_github_backoff_starts_at_its_own_minimum(
    outbound: aioresponses, http_session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    """GitHub's first wait starts from its own backoff_min (2 s by default), not the PRIMARY's."""
    outbound.get(BLIP_URL, status=503)
    outbound.get(BLIP_URL, body=BLIP_BODY)
    await github(http_session, sleeps).fetch(Category.blip)
    (wait,) = sleeps.delays
    assert 2.0 <= wait <= 3.0
