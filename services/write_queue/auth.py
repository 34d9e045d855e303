"""Who is calling: AI-Horde `find_user` by API key (cached by key hash), or a dev auth file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Protocol

import aiohttp
from aiohttp import web
from yarl import URL

from shared.errors import Forbidden, Unauthorized, Unavailable

from .models import Identity

CLIENT_AGENT = "horde-model-reference:0.1:https://github.com/Haidra-Org"
NOT_AUTHENTICATED = "Not authenticated"
INVALID_KEY = "Invalid API key"
_ROLE_MESSAGES = {
    "requestor": "You are not on the pending queue requestor list.",
    "approver": "You are not on the pending queue approver list.",
    "license_editor": "You are not on the licensing editor list.",
}


class Authenticator(Protocol):
    def role_configured(self, role: str) -> bool:
        """False when nobody can hold `role` (an empty allow-list fails closed)."""
        ...

    async def aidentify(self, api_key: str) -> Identity:
        """The caller behind a key; Unauthorized for unknown keys, Unavailable when unsure."""
        ...


def _key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


#: AI-Horde's anonymous user: a valid key for reading, never given a role
ANONYMOUS_ID = "0"


class HordeAuthenticator:
    """Asks AI-Horde who owns a key; roles come from the requestor/approver allow-lists.

    Answers are cached by key hash both ways: an identity for `cache_ttl` seconds, a refused key
    for `refusal_ttl`; concurrent lookups of one key share one request. A fleet of workers
    polling with one key (the anonymous one, say) costs AI-Horde one lookup per period. When
    AI-Horde cannot answer, nothing is cached.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        horde_url: str,
        requestor_ids: frozenset[str],
        approver_ids: frozenset[str],
        timeout: float = 10.0,
        cache_ttl: float = 60.0,
        refusal_ttl: float = 10.0,
        license_editor_ids: frozenset[str] = frozenset(),
    ) -> None:
        self._session = session
        self._url = URL(horde_url if horde_url.endswith("/") else horde_url + "/").join(
            URL("v2/find_user")
        )
        self._approvers = approver_ids
        self._requestors = requestor_ids | approver_ids
        # an allow-list of its own: approving models does not make anyone a licence editor
        self._editors = license_editor_ids
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ttl = cache_ttl
        self._refusal_ttl = refusal_ttl
        self._cache: dict[str, tuple[float, Identity | Unauthorized]] = {}
        self._in_flight: dict[str, asyncio.Future[Identity]] = {}

    def role_configured(self, role: str) -> bool:
        if role == "license_editor":
            return bool(self._editors)
        return bool(self._approvers if role == "approver" else self._requestors)

    async def aidentify(self, api_key: str) -> Identity:
        digest = _key_hash(api_key)  # the key itself is never stored, logged or echoed
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            if isinstance(cached[1], Unauthorized):
                raise Unauthorized(cached[1].detail)
            return cached[1]
        pending = self._in_flight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._in_flight[digest] = future
        try:
            identity = await self._afind_user(api_key)
        except Unauthorized as exc:
            self._cache[digest] = (time.monotonic() + self._refusal_ttl, exc)
            future.set_exception(Unauthorized(exc.detail))
            raise
        except Exception as exc:
            future.set_exception(exc)
            raise
        except BaseException:
            future.set_exception(Unavailable("Auth lookup was interrupted"))
            raise
        else:
            self._cache[digest] = (time.monotonic() + self._ttl, identity)
            future.set_result(identity)
            return identity
        finally:
            del self._in_flight[digest]
            future.exception()  # retrieved: waiters that never came must not warn

    async def _afind_user(self, api_key: str) -> Identity:
        headers = {"apikey": api_key, "Client-Agent": CLIENT_AGENT}
        try:
            async with self._session.get(self._url, headers=headers, timeout=self._timeout) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise Unavailable(f"Auth service unavailable (AI-Horde answered {resp.status})")
                if resp.status != 200:
                    raise Unauthorized(INVALID_KEY)
                body = await resp.json(content_type=None)
        except TimeoutError:
            raise Unavailable("Auth service timed out") from None
        except (aiohttp.ClientError, json.JSONDecodeError, UnicodeDecodeError):
            raise Unavailable("Auth service unavailable") from None
        user_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise Unavailable("Auth service gave an unexpected answer")
        uid = str(user_id)
        roles = {"approver"} if uid in self._approvers else set()
        if uid in self._requestors:
            roles.add("requestor")
        if uid in self._editors:
            roles.add("license_editor")
        if uid == ANONYMOUS_ID:
            roles = set()  # anyone may use the anonymous key: it reads, it never reviews
        username = body.get("username")
        return Identity(
            user_id=uid,
            username=username if isinstance(username, str) else f"#{uid}",
            roles=frozenset(roles),
        )


class FileAuthenticator:
    """Development/test mode: keys, users and roles from a JSON file.

    {"<api key>": {"user_id": "1", "username": "dev#1", "roles": ["requestor", "approver"]}}
    """

    def __init__(self, entries: dict[str, Identity]) -> None:
        self._by_hash = {_key_hash(k): v for k, v in entries.items()}

    @classmethod
    def from_file(cls, path: Path) -> FileAuthenticator:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries: dict[str, Identity] = {}
        for key, value in raw.items():
            roles = set(value.get("roles", []))
            if "approver" in roles:
                roles.add("requestor")
            entries[key] = Identity(
                user_id=str(value["user_id"]),
                username=str(value.get("username") or f"#{value['user_id']}"),
                roles=frozenset(roles),
            )
        return cls(entries)

    def role_configured(self, role: str) -> bool:
        return True

    async def aidentify(self, api_key: str) -> Identity:
        await asyncio.sleep(0)
        identity = self._by_hash.get(_key_hash(api_key))
        if identity is None:
            raise Unauthorized(INVALID_KEY)
        return identity


class AuthOff:
    """The authenticator of a writer configured with neither AI-Horde nor an auth file: every
    key gets a 503 that says which setting is missing (not a bare "Auth service unavailable")."""

    def __init__(self, reason: str) -> None:
        self.detail = f"Auth service unavailable: {reason}"

    def role_configured(self, role: str) -> bool:
        return True  # the missing auth is the answer, not an empty allow-list's 401

    async def aidentify(self, api_key: str) -> Identity:
        raise Unavailable(self.detail)


def api_key_of(request: web.Request) -> str:
    key = request.headers.get("apikey", "").strip()
    if not key:
        raise Unauthorized(NOT_AUTHENTICATED, headers={"WWW-Authenticate": "APIKey"})
    return key


async def arequire(auth: Authenticator, api_key: str, role: str | None) -> Identity:
    """The caller's identity, checked for `role` (None = any valid key, the reader role)."""
    if role is not None and not auth.role_configured(role):
        raise Unauthorized(INVALID_KEY)  # fail closed before asking AI-Horde
    identity = await auth.aidentify(api_key)
    if role is not None and role not in identity.roles:
        raise Forbidden(_ROLE_MESSAGES[role])
    return identity
