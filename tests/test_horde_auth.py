"""The write service's AI-Horde `find_user` client (HordeAuthenticator), unit-tested with aioresponses.

Status classes, timeouts and malformed answers, where a loopback fake would need a switch per
case. tests/test_write_auth.py runs the service against the fake AI-Horde on loopback.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from services.write_queue.auth import CLIENT_AGENT, INVALID_KEY, HordeAuthenticator
from shared.errors import Unauthorized, Unavailable
from tests.helpers import requests_made

HORDE = "https://horde.invalid/api/"
FIND_USER = f"{HORDE}v2/find_user"
KEY = "a-key-that-stays-in-a-header"


def authenticator(http_session: aiohttp.ClientSession, **kw: Any) -> HordeAuthenticator:
    options: dict[str, Any] = {
        "requestor_ids": frozenset({"100"}),
        "approver_ids": frozenset({"200"}),
        **kw,
    }
    return HordeAuthenticator(http_session, HORDE, **options)


async def test_an_approver_is_also_a_requestor(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """An id on the approver list gets both roles, with AI-Horde's username."""
    outbound.get(FIND_USER, payload={"id": 200, "username": "Appr#200"})
    identity = await authenticator(http_session).aidentify(KEY)
    assert (identity.user_id, identity.username) == ("200", "Appr#200")
    assert identity.roles == {"approver", "requestor"}


async def test_username_falls_back_to_the_id(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """Without a string username the caller is named `#<id>`, and an unlisted id has no role."""
    outbound.get(FIND_USER, payload={"id": 7, "username": None})
    identity = await authenticator(http_session).aidentify(KEY)
    assert (identity.user_id, identity.username, identity.roles) == ("7", "#7", frozenset())


async def test_the_key_travels_in_a_header_with_the_client_agent(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """The key is sent as the `apikey` header (never in the URL), with the Client-Agent."""
    outbound.get(FIND_USER, payload={"id": 100})
    await authenticator(http_session, timeout=3.0).aidentify(KEY)
    ((url, calls),) = [(url, calls) for (_, url), calls in outbound.requests.items()]
    assert KEY not in str(url)
    (call,) = calls
    assert call.kwargs["headers"] == {"apikey": KEY, "Client-Agent": CLIENT_AGENT}
    assert call.kwargs["timeout"].total == 3.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_4xx_is_an_invalid_key_asked_once(
    outbound: aioresponses, http_session: aiohttp.ClientSession, status: int
) -> None:
    """A 4xx other than 429 means the key is not valid: 401 Invalid API key, one request."""
    outbound.get(FIND_USER, status=status, repeat=True)
    with pytest.raises(Unauthorized) as raised:
        await authenticator(http_session).aidentify(KEY)
    assert raised.value.detail == INVALID_KEY
    assert len(requests_made(outbound)) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_5xx_and_429_are_unavailable_not_an_invalid_key(
    outbound: aioresponses, http_session: aiohttp.ClientSession, status: int
) -> None:
    """When AI-Horde cannot answer, the caller gets 503 (not 401), without a retry on the request path."""
    outbound.get(FIND_USER, status=status, repeat=True)
    with pytest.raises(Unavailable, match=str(status)):
        await authenticator(http_session).aidentify(KEY)
    assert len(requests_made(outbound)) == 1


async def test_a_timeout_is_unavailable(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """A find_user that times out is 503 'timed out', never a verdict on the key."""
    outbound.get(FIND_USER, timeout=True)
    with pytest.raises(Unavailable, match="timed out"):
        await authenticator(http_session).aidentify(KEY)


@pytest.mark.parametrize(
    "error", [aiohttp.ClientConnectionError("refused"), aiohttp.ServerDisconnectedError()]
)
async def test_a_connection_failure_is_unavailable(
    outbound: aioresponses, http_session: aiohttp.ClientSession, error: Exception
) -> None:
    """A refused or dropped connection is 503, never a verdict on the key."""
    outbound.get(FIND_USER, exception=error)
    with pytest.raises(Unavailable):
        await authenticator(http_session).aidentify(KEY)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Cloudflare</html>",
        b"\x80 not utf-8",
        b"[]",
        b"null",
        b'{"username": "no id"}',
        b'{"id": "200"}',
        b'{"id": true}',
        b'{"id": 200.0}',
    ],
    ids=["html", "not-utf8", "a-list", "null", "no-id", "string-id", "bool-id", "float-id"],
)
async def test_a_malformed_answer_is_unavailable(
    outbound: aioresponses, http_session: aiohttp.ClientSession, body: bytes
) -> None:
    """A 200 that is not an object with an integer id is 503: neither a user nor a bad key."""
    outbound.get(FIND_USER, body=body)
    with pytest.raises(Unavailable):
        await authenticator(http_session).aidentify(KEY)


async def test_the_anonymous_user_reads_but_never_holds_a_role(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """AI-Horde's anonymous user (id 0) is a valid reader, with no role even when the allow-lists
    name 0 (anyone may use that key)."""
    outbound.get(FIND_USER, payload={"id": 0, "username": "Anonymous#0"})
    auth = authenticator(
        http_session, approver_ids=frozenset({"0"}), requestor_ids=frozenset({"0"})
    )
    identity = await auth.aidentify(KEY)
    assert (identity.user_id, identity.roles) == ("0", frozenset())


async def test_a_refused_key_is_cached_for_a_short_time(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """A key AI-Horde refused is refused again from the cache, without asking, until
    refusal_ttl runs out."""
    outbound.get(FIND_USER, status=404, repeat=True)
    auth = authenticator(http_session, refusal_ttl=60.0)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await auth.aidentify(KEY)
    assert len(requests_made(outbound)) == 1
    expired = authenticator(http_session, refusal_ttl=0.0)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await expired.aidentify(KEY)
    assert len(requests_made(outbound)) == 3


async def test_concurrent_lookups_of_one_key_share_one_request(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """Twenty requests arriving together with one uncached key cost AI-Horde one lookup."""
    outbound.get(FIND_USER, payload={"id": 100}, repeat=True)
    auth = authenticator(http_session)
    identities = await asyncio.gather(*(auth.aidentify(KEY) for _ in range(20)))
    assert {i.user_id for i in identities} == {"100"}
    assert len(requests_made(outbound)) == 1


async def test_a_failure_is_not_cached(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """After a 503 the same key is asked again, and then answered from AI-Horde's 200."""
    auth = authenticator(http_session)
    outbound.get(FIND_USER, status=503)
    outbound.get(FIND_USER, payload={"id": 100})
    with pytest.raises(Unavailable):
        await auth.aidentify(KEY)
    assert (await auth.aidentify(KEY)).roles == {"requestor"}
    assert len(requests_made(outbound)) == 2


async def test_a_zero_ttl_asks_every_time(
    outbound: aioresponses, http_session: aiohttp.ClientSession
) -> None:
    """With cache_ttl=0 nothing is cached: every call asks AI-Horde again."""
    auth = authenticator(http_session, cache_ttl=0.0)
    outbound.get(FIND_USER, payload={"id": 200}, repeat=True)
    await auth.aidentify(KEY)
    await auth.aidentify(KEY)
    assert len(requests_made(outbound)) == 2
