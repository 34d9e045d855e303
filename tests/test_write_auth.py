"""Write-service authentication: AI-Horde `find_user` by API key (against a fake AI-Horde), roles
from the requestor/approver allow-lists, caching, failure modes, and the dev auth-file mode."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.write_queue.auth import CLIENT_AGENT
from tests.conftest import APPROVER_KEY, READER_KEY, REQUESTOR_KEY
from tests.fakes.horde import FakeHorde, refused_url, start_fake_horde

V2 = "/api/model_references/v2"
ROLES = f"{V2}/me/roles"
BATCHES = f"{V2}/pending_queue/batches"
IMAGE_BODY = {"name": "Auth Test Model", "baseline": "flux_1", "nsfw": False}

H_REQUESTOR = "horde-requestor-key"
H_APPROVER = "horde-approver-key"
H_READER = "horde-reader-key"
H_SHARED = "horde-shared-key"
H_ANON = "0000000000"
SECRET = "s3cr3t-KEY-that-must-never-leak-42"

REQUESTOR_MSG = "You are not on the pending queue requestor list."
APPROVER_MSG = "You are not on the pending queue approver list."

SystemFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def horde(aiohttp_server: Any) -> AsyncIterator[FakeHorde]:
    """A fake AI-Horde on 127.0.0.1; `horde.url` ends in /api/."""
    fake = await start_fake_horde(aiohttp_server)
    fake.users[SECRET] = {"id": 555, "username": "Secret#555"}
    yield fake
    fake.release()


@pytest.fixture
def horde_system(make_system: SystemFactory, tmp_path: Path, horde: FakeHorde) -> SystemFactory:
    """Build `hmr all` authenticating against the fake AI-Horde; overrides win over the defaults."""

    async def factory(**overrides: object) -> TestClient:
        env: dict[str, object] = {
            "HMR_HORDE_URL": horde.url,
            "HMR_REQUESTOR_IDS": "100, 4242",  # comma-separated form
            "HMR_APPROVER_IDS": '["200"]',  # JSON array form
            "HMR_AUTH_TIMEOUT": "5",
        }
        return await make_system(tmp_path / "data", **{**env, **overrides})

    return factory


async def roles_of(client: TestClient, key: str) -> tuple[int, Any]:
    resp = await client.get(ROLES, headers={"apikey": key})
    return resp.status, await resp.json()


# --- /me/roles -----------------------------------------------------------------------------------


async def test_me_roles_requestor(horde_system: SystemFactory) -> None:
    """A requestor's roles answer carries the integer AI-Horde id as a string and one role."""
    client = await horde_system()
    status, body = await roles_of(client, H_REQUESTOR)
    assert status == 200
    assert body == {
        "user_id": "100",
        "username": "Req#100",
        "roles": ["requestor"],
        "is_approver": False,
        "is_requestor": True,
        "is_license_editor": False,
    }


async def test_me_roles_approver_is_also_requestor(horde_system: SystemFactory) -> None:
    """An approver holds both roles, listed sorted."""
    client = await horde_system()
    status, body = await roles_of(client, H_APPROVER)
    assert status == 200
    assert body["user_id"] == "200"
    assert body["roles"] == ["approver", "requestor"]
    assert body["is_approver"] is True
    assert body["is_requestor"] is True


async def test_me_roles_valid_key_without_role(horde_system: SystemFactory) -> None:
    """A valid key on no allow-list gets 200 with no roles."""
    client = await horde_system()
    status, body = await roles_of(client, H_READER)
    assert status == 200
    assert body == {
        "user_id": "300",
        "username": "Reader#300",
        "roles": [],
        "is_approver": False,
        "is_requestor": False,
        "is_license_editor": False,
    }


async def test_me_roles_is_not_cacheable(horde_system: SystemFactory) -> None:
    """The roles answer is authenticated and carries Cache-Control: no-store."""
    client = await horde_system()
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"


async def test_shared_key_uses_integer_id(horde_system: SystemFactory) -> None:
    """A shared key's username suffix is ignored; the integer `id` is the user id."""
    client = await horde_system()
    status, body = await roles_of(client, H_SHARED)
    assert status == 200
    assert body["user_id"] == "4242"
    assert body["username"] == "alice#4242 (Shared Key: x)"
    assert body["roles"] == ["requestor"]


async def test_allow_list_json_array_form(horde_system: SystemFactory) -> None:
    """HMR_REQUESTOR_IDS given as a JSON array grants the role like the comma-separated form."""
    client = await horde_system(HMR_REQUESTOR_IDS='["300"]')
    status, body = await roles_of(client, H_READER)
    assert status == 200
    assert body["roles"] == ["requestor"]


# --- 401: missing / unknown / anonymous keys -----------------------------------------------------


async def test_missing_key_is_401_not_authenticated(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """No apikey header is 401 Not authenticated with WWW-Authenticate: APIKey, without AI-Horde."""
    client = await horde_system()
    resp = await client.get(ROLES)
    assert resp.status == 401
    assert await resp.json() == {"detail": "Not authenticated"}
    assert resp.headers["WWW-Authenticate"] == "APIKey"
    assert horde.calls == 0


async def test_blank_key_is_401_not_authenticated(horde_system: SystemFactory) -> None:
    """A whitespace-only apikey header counts as missing."""
    client = await horde_system()
    resp = await client.get(ROLES, headers={"apikey": "   "})
    assert resp.status == 401
    assert await resp.json() == {"detail": "Not authenticated"}


async def test_unknown_key_is_401_invalid_api_key(horde_system: SystemFactory) -> None:
    """A key AI-Horde does not know (404 UserNotFound) is 401 Invalid API key."""
    client = await horde_system()
    resp = await client.get(ROLES, headers={"apikey": "nobody-has-this-key"})
    assert resp.status == 401
    assert await resp.json() == {"detail": "Invalid API key"}


async def test_upstream_401_is_invalid_api_key(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """AI-Horde answering 401 for the key is 401 Invalid API key."""
    client = await horde_system()
    horde.status = 401
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 401
    assert await resp.json() == {"detail": "Invalid API key"}


async def test_the_anonymous_key_reads_beta_models_and_writes_nothing(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """The anonymous key (AI-Horde id 0, what default workers send) reads /pending and the
    queue (200) but every write is a 403, even with 0 on the allow-lists; many requests cost
    AI-Horde one lookup."""
    client = await horde_system(HMR_REQUESTOR_IDS="0,100", HMR_APPROVER_IDS="0,200")
    anon = {"apikey": H_ANON}
    before = horde.calls
    for category in ("image_generation", "esrgan", "gfpgan"):
        for _ in range(10):
            resp = await client.get(f"{V2}/{category}/pending", headers=anon)
            assert resp.status == 200, await resp.text()
    roles = await (await client.get(ROLES, headers=anon)).json()
    assert (roles["user_id"], roles["roles"]) == ("0", [])
    resp = await client.post(f"{V2}/image_generation", json=IMAGE_BODY, headers=anon)
    assert resp.status == 403
    for path, body in (
        (f"{V2}/pending_queue/batches", {"batch_title": "x", "approved_ids": [1]}),
        (f"{V2}/pending_queue/apply", {"change_ids": [1]}),
        (f"{V2}/pending_queue/purge", {"purge_all": True}),
    ):
        assert (await client.post(path, json=body, headers=anon)).status == 403, path
    assert horde.calls - before == 1


async def test_an_unknown_key_is_asked_about_once_per_refusal_period(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """Refusals are cached too: thirty requests with a key AI-Horde does not know ask it once."""
    client = await horde_system()
    before = horde.calls
    for _ in range(30):
        resp = await client.get(f"{V2}/image_generation/pending", headers={"apikey": "nobody"})
        assert resp.status == 401
    assert horde.calls - before == 1


async def test_unknown_key_on_write_is_401(horde_system: SystemFactory) -> None:
    """A write with a key AI-Horde does not know is 401 Invalid API key."""
    client = await horde_system()
    resp = await client.post(
        f"{V2}/image_generation", json=IMAGE_BODY, headers={"apikey": "nobody-has-this-key"}
    )
    assert resp.status == 401
    assert await resp.json() == {"detail": "Invalid API key"}


# --- 503: AI-Horde unusable ----------------------------------------------------------------------


async def test_upstream_connection_dropped_is_503(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """AI-Horde dropping the connection is 503 Auth service unavailable."""
    client = await horde_system()
    horde.down = True
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 503
    assert (await resp.json())["detail"].startswith("Auth service unavailable")


async def test_upstream_refused_is_503(horde_system: SystemFactory) -> None:
    """Nothing listening at the AI-Horde URL is 503 Auth service unavailable."""
    client = await horde_system(HMR_HORDE_URL=refused_url())
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 503
    assert (await resp.json())["detail"].startswith("Auth service unavailable")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_upstream_5xx_is_503(
    horde_system: SystemFactory, horde: FakeHorde, status: int
) -> None:
    """AI-Horde answering 5xx is 503 Auth service unavailable, never 401 or 500."""
    client = await horde_system()
    horde.status = status
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 503
    assert (await resp.json())["detail"].startswith("Auth service unavailable")


async def test_upstream_rate_limited_is_503(horde_system: SystemFactory, horde: FakeHorde) -> None:
    """AI-Horde answering 429 says nothing about the key, so it is 503 and not 401."""
    client = await horde_system()
    horde.status = 429
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 503


async def test_slow_upstream_times_out_503(horde_system: SystemFactory, horde: FakeHorde) -> None:
    """AI-Horde slower than HMR_AUTH_TIMEOUT is 503 Auth service timed out, well before it answers."""
    client = await horde_system(HMR_AUTH_TIMEOUT="0.3")
    horde.delay = 2.0
    started = time.monotonic()
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 503
    assert await resp.json() == {"detail": "Auth service timed out"}
    assert time.monotonic() - started < 1.5


async def test_upstream_non_json_is_503(horde_system: SystemFactory, horde: FakeHorde) -> None:
    """A 200 answer that is not JSON is 503, not 401 or 500."""
    client = await horde_system()
    horde.garbage = True
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 503
    assert (await resp.json())["detail"].startswith("Auth service")


@pytest.mark.parametrize(
    "text",
    ['["not", "a", "user"]', '{"username": "NoId#1"}', '{"id": "100", "username": "Str#100"}'],
)
async def test_upstream_wrong_shape_is_503(
    horde_system: SystemFactory, horde: FakeHorde, text: str
) -> None:
    """A 200 JSON answer without an integer `id` is 503, not 401 or 500."""
    client = await horde_system()
    horde.garbage = text
    resp = await client.get(ROLES, headers={"apikey": H_REQUESTOR})
    assert resp.status == 503
    assert (await resp.json())["detail"].startswith("Auth service")


async def test_write_with_upstream_down_is_503(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """A write while AI-Horde is unreachable is 503, never 401."""
    client = await horde_system()
    horde.down = True
    resp = await client.post(
        f"{V2}/image_generation", json=IMAGE_BODY, headers={"apikey": H_REQUESTOR}
    )
    assert resp.status == 503


# --- 403: roles ----------------------------------------------------------------------------------


async def test_write_without_requestor_role_is_403(horde_system: SystemFactory) -> None:
    """A valid key not on the requestor list cannot propose a change."""
    client = await horde_system()
    resp = await client.post(
        f"{V2}/image_generation", json=IMAGE_BODY, headers={"apikey": H_READER}
    )
    assert resp.status == 403
    assert await resp.json() == {"detail": REQUESTOR_MSG}


async def test_approver_endpoint_with_requestor_is_403(horde_system: SystemFactory) -> None:
    """A requestor cannot review a batch; the approver message is given."""
    client = await horde_system()
    resp = await client.post(
        BATCHES, json={"batch_title": "t", "approved_ids": [1]}, headers={"apikey": H_REQUESTOR}
    )
    assert resp.status == 403
    assert await resp.json() == {"detail": APPROVER_MSG}


async def test_requestor_can_propose(horde_system: SystemFactory) -> None:
    """A requestor known to AI-Horde gets 202 and is recorded by integer id and username."""
    client = await horde_system()
    resp = await client.post(
        f"{V2}/image_generation", json=IMAGE_BODY, headers={"apikey": H_SHARED}
    )
    assert resp.status == 202
    body = await resp.json()
    assert body["requested_by"] == "4242"
    assert body["requested_username"] == "alice#4242 (Shared Key: x)"


# --- fail closed ---------------------------------------------------------------------------------


async def test_empty_allow_lists_fail_closed_without_upstream_call(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """With both allow-lists empty a write is 401 Invalid API key and AI-Horde is not asked."""
    client = await horde_system(HMR_REQUESTOR_IDS="", HMR_APPROVER_IDS="")
    resp = await client.post(
        f"{V2}/image_generation", json=IMAGE_BODY, headers={"apikey": H_APPROVER}
    )
    assert resp.status == 401
    assert await resp.json() == {"detail": "Invalid API key"}
    assert horde.calls == 0


async def test_empty_approver_list_fails_closed_without_upstream_call(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """With no approvers configured an approver endpoint is 401 and AI-Horde is not asked."""
    client = await horde_system(HMR_APPROVER_IDS="[]")
    resp = await client.post(
        BATCHES, json={"batch_title": "t", "approved_ids": [1]}, headers={"apikey": H_REQUESTOR}
    )
    assert resp.status == 401
    assert await resp.json() == {"detail": "Invalid API key"}
    assert horde.calls == 0


# --- cache ---------------------------------------------------------------------------------------


async def test_successful_lookup_is_cached(horde_system: SystemFactory, horde: FakeHorde) -> None:
    """Two requests with the same key ask AI-Horde once."""
    client = await horde_system()
    assert (await roles_of(client, H_REQUESTOR))[0] == 200
    assert (await roles_of(client, H_REQUESTOR))[0] == 200
    assert horde.calls == 1


async def test_cache_is_per_key(horde_system: SystemFactory, horde: FakeHorde) -> None:
    """Different keys are looked up separately and get their own identities."""
    client = await horde_system()
    assert (await roles_of(client, H_REQUESTOR))[1]["user_id"] == "100"
    assert (await roles_of(client, H_APPROVER))[1]["user_id"] == "200"
    assert horde.calls == 2


async def test_cache_expires(horde_system: SystemFactory, horde: FakeHorde) -> None:
    """After HMR_AUTH_CACHE_TTL seconds the key is looked up again."""
    client = await horde_system(HMR_AUTH_CACHE_TTL="0.1")
    assert (await roles_of(client, H_REQUESTOR))[0] == 200
    await asyncio.sleep(0.2)
    assert (await roles_of(client, H_REQUESTOR))[0] == 200
    assert horde.calls == 2


async def test_upstream_failure_is_not_cached(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """A 503 from an AI-Horde outage is not remembered once AI-Horde recovers."""
    client = await horde_system()
    horde.status = 500
    assert (await roles_of(client, H_REQUESTOR))[0] == 503
    horde.status = None
    assert (await roles_of(client, H_REQUESTOR))[0] == 200
    assert horde.calls == 2


async def test_a_refusal_is_cached_no_longer_than_the_cache(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """With HMR_AUTH_CACHE_TTL=0 a key AI-Horde learns about after a 401 works on the next
    request (refusals are kept at most as long as identities, and at most 10 s)."""
    client = await horde_system(HMR_AUTH_CACHE_TTL="0")
    assert (await roles_of(client, "brand-new-key"))[0] == 401
    horde.users["brand-new-key"] = {"id": 777, "username": "New#777"}
    status, body = await roles_of(client, "brand-new-key")
    assert status == 200
    assert body["user_id"] == "777"


# --- what is sent to AI-Horde --------------------------------------------------------------------


async def test_client_agent_and_apikey_are_sent(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """The lookup forwards the caller's apikey and identifies itself with a Client-Agent header."""
    client = await horde_system()
    assert (await roles_of(client, H_REQUESTOR))[0] == 200
    (headers,) = horde.received
    assert headers["apikey"] == H_REQUESTOR
    assert headers["Client-Agent"] == CLIENT_AGENT
    assert CLIENT_AGENT.strip()


async def test_horde_url_without_trailing_slash(
    horde_system: SystemFactory, horde: FakeHorde
) -> None:
    """A base URL given without its trailing slash still reaches v2/find_user."""
    client = await horde_system(HMR_HORDE_URL=horde.url.rstrip("/"))
    assert (await roles_of(client, H_REQUESTOR))[0] == 200
    assert horde.calls == 1


# --- keys never leak -----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["ok", "unknown", "upstream_500", "garbage", "down", "slow"])
async def test_api_key_never_logged_nor_echoed(
    horde_system: SystemFactory,
    horde: FakeHorde,
    caplog: pytest.LogCaptureFixture,
    scenario: str,
) -> None:
    """Neither log records (at DEBUG) nor response bodies ever contain the caller's key."""
    caplog.set_level(logging.DEBUG)
    client = await horde_system(HMR_AUTH_TIMEOUT="0.3")
    key = SECRET if scenario != "unknown" else SECRET + "-unknown"
    if scenario == "upstream_500":
        horde.status = 500
    elif scenario == "garbage":
        horde.garbage = f"<html>{'x' * 10}</html>"
    elif scenario == "down":
        horde.down = True
    elif scenario == "slow":
        horde.delay = 2.0
    texts = []
    for _ in range(2):
        resp = await client.get(ROLES, headers={"apikey": key})
        texts.append(await resp.text())
        resp = await client.post(f"{V2}/image_generation", json=IMAGE_BODY, headers={"apikey": key})
        texts.append(await resp.text())
    assert horde.calls >= 1
    for text in texts:
        assert SECRET not in text
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.args)
        assert SECRET not in (record.exc_text or "")


# --- auth-file mode ------------------------------------------------------------------------------


async def test_auth_file_unknown_key_is_401(system: TestClient) -> None:
    """In auth-file mode a key not in the file is 401 Invalid API key."""
    resp = await system.get(ROLES, headers={"apikey": "not-in-the-file"})
    assert resp.status == 401
    assert await resp.json() == {"detail": "Invalid API key"}


async def test_auth_file_missing_key_is_401(system: TestClient) -> None:
    """In auth-file mode a missing header is still 401 Not authenticated."""
    resp = await system.get(ROLES)
    assert resp.status == 401
    assert await resp.json() == {"detail": "Not authenticated"}
    assert resp.headers["WWW-Authenticate"] == "APIKey"


@pytest.mark.parametrize(
    ("key", "user_id", "roles"),
    [
        (REQUESTOR_KEY, "100", ["requestor"]),
        (APPROVER_KEY, "200", ["approver", "requestor"]),
        (READER_KEY, "300", []),
    ],
)
async def test_auth_file_roles(
    system: TestClient, key: str, user_id: str, roles: list[str]
) -> None:
    """In auth-file mode ids and roles come from the file (approvers are requestors too)."""
    status, body = await roles_of(system, key)
    assert status == 200
    assert body["user_id"] == user_id
    assert body["roles"] == roles
    assert body["is_approver"] is ("approver" in roles)
    assert body["is_requestor"] is ("requestor" in roles)


async def test_auth_file_mode_never_calls_horde(
    make_system: SystemFactory, tmp_path: Path, auth_file: Path, horde: FakeHorde
) -> None:
    """With HMR_AUTH_FILE set, AI-Horde is not asked even when HMR_HORDE_URL is configured."""
    client = await make_system(tmp_path / "data", HMR_AUTH_FILE=auth_file, HMR_HORDE_URL=horde.url)
    assert (await roles_of(client, REQUESTOR_KEY))[0] == 200
    assert (await roles_of(client, "not-in-the-file"))[0] == 401
    assert horde.calls == 0
