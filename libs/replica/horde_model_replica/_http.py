"""Outbound HTTP: the PRIMARY's read API and GitHub raw files, as conditional GETs with retries.

Both clients take an injected `aiohttp.ClientSession` and never create one. A fetch is one
conditional GET (`If-None-Match` with the stored ETag, `Accept-Encoding: gzip`): a 304 costs no
body; a 200 is decoded and validated before anybody sees it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

import aiohttp
import yarl
from attrs import frozen

from horde_model_records import CATEGORY_INFO, Category, ModelRecord

from ._config import GitHubRepo
from ._decode import CategoryPayload, decode_legacy_file, decode_pending, decode_v1, decode_v2
from ._errors import InvalidBody, RetryableStatus, SourceError, StatusError, UnreachableError
from ._proxy import ProxySettings
from ._retry import RetryPolicy, Sleep, retrying

T = TypeVar("T")
logger = logging.getLogger("horde_model_replica")

#: transport failures worth another try: refused/reset connections, timeouts, bodies cut short
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)

USER_AGENT = "horde-model-replica/0.1"


def new_session() -> aiohttp.ClientSession:
    """The session the library opens for itself (call it on the loop that will use it).

    trust_env is off: the proxies come from the config (`ProxySettings`), which never proxies
    loopback, where aiohttp's own environment handling would send 127.0.0.1 to the proxy too.
    """
    return aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, trust_env=False)


#: a body decoder of _decode: (category, body, what the body is, for errors) -> payload
_Decode = Callable[[Category, bytes, str], CategoryPayload]

#: no proxy at all: the clients' default when none is given
DIRECT = ProxySettings()


def proxy_route(
    url: yarl.URL, proxy: yarl.URL | None
) -> tuple[yarl.URL | None, dict[str, str], dict[str, str] | None]:
    """`session.get`'s proxy, extra request headers and proxy_headers for `url` via `proxy`.

    Credentials in the proxy URL become Proxy-Authorization: on the request itself for http
    (aiohttp sends proxy_headers only with a CONNECT), on the CONNECT for https.
    """
    if proxy is None or proxy.user is None:
        return proxy, {}, None
    # encoded here: aiohttp 3.14 deprecates BasicAuth, and 3.13 lacks its replacement
    credentials = f"{proxy.user}:{proxy.password or ''}".encode()
    auth = {"Proxy-Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}
    if url.scheme == "https":
        return proxy.with_user(None), {}, auth
    return proxy.with_user(None), auth, None


@frozen
class Fetched(Generic[T]):
    """One answer: 200 with a decoded payload, or 304 (payload None, nothing on the wire)."""

    url: str
    status: int
    etag: str | None
    payload: T | None
    wire_bytes: int  # body bytes received (compressed size when gzip was used)


def _wire_bytes(resp: aiohttp.ClientResponse, body: bytes) -> int:
    try:
        return int(resp.headers.get("Content-Length", ""))
    except ValueError:
        return len(body)


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After in seconds; None when absent or an HTTP date (our own backoff applies)."""
    try:
        return None if retry_after is None else max(0.0, float(retry_after))
    except ValueError:
        return None


async def conditional_get(
    session: aiohttp.ClientSession,
    url: yarl.URL,
    *,
    etag: str | None,
    timeout: float,
    decode: Callable[[bytes], T],
    proxy: yarl.URL | None = None,
    headers: Mapping[str, str] | None = None,
) -> Fetched[T]:
    """One attempt: GET `url` (conditional when `etag` is given) and decode a 200's body."""
    headers = {**(headers or {}), "Accept-Encoding": "gzip"}
    if etag:
        headers["If-None-Match"] = etag
    proxy_url, for_proxy, proxy_headers = proxy_route(url, proxy)
    async with session.get(
        url,
        headers={**headers, **for_proxy},
        timeout=aiohttp.ClientTimeout(total=timeout),
        proxy=proxy_url,
        proxy_headers=proxy_headers,
    ) as resp:
        if resp.status == 304 and etag:
            return Fetched(str(url), 304, resp.headers.get("ETag", etag), None, 0)
        if resp.status >= 500 or resp.status == 429:
            raise RetryableStatus(str(url), resp.status, _seconds(resp.headers.get("Retry-After")))
        if resp.status != 200:
            raise StatusError(str(url), resp.status)
        body = await resp.read()
        payload = decode(body)
        return Fetched(str(url), 200, resp.headers.get("ETag"), payload, _wire_bytes(resp, body))


def api_base(url: yarl.URL | str) -> yarl.URL:
    """The URL without a trailing slash, to join paths onto."""
    url = yarl.URL(url)
    return url.with_path(url.path.rstrip("/"))


class _Source:
    """What both clients share: one injected session, proxies, conditional GETs retried per policy."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout: float,
        policy: RetryPolicy,
        sleep: Sleep,
        proxies: ProxySettings,
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._policy = policy
        self._sleep = sleep
        self._proxies = proxies

    async def _fetch(
        self,
        url: yarl.URL,
        etag: str | None,
        decode: Callable[[bytes], T],
        headers: Mapping[str, str] | None = None,
    ) -> Fetched[T]:
        try:
            return await retrying(
                lambda: conditional_get(
                    self._session,
                    url,
                    etag=etag,
                    timeout=self._timeout,
                    decode=decode,
                    proxy=self._proxies.proxy_for(url),
                    headers=headers,
                ),
                self._policy,
                f"GET {url}",
                self._sleep,
            )
        except NETWORK_ERRORS as exc:
            raise UnreachableError(f"{url}: {type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientError as exc:
            # not worth a retry (a malformed answer, too many redirects...), but not data either
            raise SourceError(f"{url}: {type(exc).__name__}: {exc}") from exc


class ReplicaClient(_Source):
    """The PRIMARY's read API (`base_url` ends with `/api`): v2 and v1 category documents.

    Retries: `attempts` tries on connection errors, timeouts, cut-short bodies, 5xx and 429; any
    other status or an invalid body fails at once. `sleep` waits between attempts (tests pass a
    recorder to see the schedule without waiting it out). `proxies` picks each request's proxy.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: yarl.URL | str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff_min: float = 1.0,
        backoff_max: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        proxies: ProxySettings = DIRECT,
    ) -> None:
        policy = RetryPolicy(attempts, backoff_min, backoff_max, (*NETWORK_ERRORS, RetryableStatus))
        super().__init__(session, timeout, policy, sleep, proxies)
        self.base_url = api_base(base_url)

    def v2_url(self, category: Category) -> yarl.URL:
        return self._url("v2", category)

    def v1_url(self, category: Category) -> yarl.URL:
        return self._url("v1", category)

    def _url(self, version: str, category: Category) -> yarl.URL:
        return self.base_url / "model_references" / version / category.value

    async def fetch_v2(
        self, category: Category, etag: str | None = None
    ) -> Fetched[CategoryPayload]:
        return await self._fetch_version("v2", decode_v2, category, etag)

    async def fetch_v1(
        self, category: Category, etag: str | None = None
    ) -> Fetched[CategoryPayload]:
        """The legacy view, converted to v2 records (text: the db.json shape)."""
        return await self._fetch_version("v1", decode_v1, category, etag)

    async def fetch_model_name(self, category: Category, name: str) -> str | None:
        """The record name the PRIMARY's single-model read answers for `name` (which may be
        another spelling of it); None when the PRIMARY has no such model."""

        def record_name(body: bytes) -> str:
            try:
                found = json.loads(body).get("name")
            except (ValueError, AttributeError):
                found = None
            if not isinstance(found, str):
                raise InvalidBody(f"PRIMARY {category.value} model {name!r}: no record name")
            return found

        try:
            fetched = await self._fetch(self.v2_url(category) / "model" / name, None, record_name)
        except StatusError as exc:
            if exc.status == 404:
                return None
            raise
        return fetched.payload

    def pending_url(self, category: Category) -> yarl.URL:
        return self.v2_url(category) / "pending"

    async def fetch_pending(self, category: Category, apikey: str) -> dict[str, ModelRecord]:
        """The category's beta models (proposals not yet applied), read with an AI-Horde key."""
        what = f"PRIMARY pending {category.value}"
        fetched = await self._fetch(
            self.pending_url(category),
            None,
            lambda body: decode_pending(category, body, what),
            headers={"apikey": apikey},
        )
        assert fetched.payload is not None  # no ETag was sent, so no 304
        return fetched.payload

    async def _fetch_version(
        self, version: str, decode: _Decode, category: Category, etag: str | None
    ) -> Fetched[CategoryPayload]:
        what = f"PRIMARY {version} {category.value}"
        return await self._fetch(
            self._url(version, category), etag, lambda body: decode(category, body, what)
        )


class GitHubRawClient(_Source):
    """The legacy files on GitHub raw (the configured image and text repositories), as v2.

    Retries on the network errors, 5xx/429 and on a body that does not validate; a 4xx fails at
    once, since asking again for a missing file will not make it appear. `sleep` waits between
    attempts, as for ReplicaClient.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        raw_base: yarl.URL | str = "https://raw.githubusercontent.com",
        image_repo: GitHubRepo,
        text_repo: GitHubRepo,
        proxy_base: str | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff_min: float = 2.0,
        backoff_max: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        proxies: ProxySettings = DIRECT,
    ) -> None:
        retry_on = (*NETWORK_ERRORS, RetryableStatus, InvalidBody)
        policy = RetryPolicy(attempts, backoff_min, backoff_max, retry_on)
        super().__init__(session, timeout, policy, sleep, proxies)
        self._raw_base = api_base(raw_base)
        self._repos = {"image": image_repo, "text": text_repo}
        self._proxy_base = proxy_base.rstrip("/") if proxy_base else None

    def url_for(self, category: Category) -> yarl.URL | None:
        """The raw URL of the category's legacy file; None when GitHub has no such file."""
        info = CATEGORY_INFO[category]
        if info.legacy_file is None or info.legacy_repo is None:
            return None
        repo = self._repos[info.legacy_repo]
        url = self._raw_base / repo.owner / repo.name / "refs" / "heads" / repo.branch
        url = url / info.legacy_file
        if self._proxy_base:
            return yarl.URL(f"{self._proxy_base}/{url}", encoded=True)
        return url

    async def fetch(self, category: Category, etag: str | None = None) -> Fetched[CategoryPayload]:
        url = self.url_for(category)
        if url is None:
            raise SourceError(f"GitHub has no legacy file for {category.value}")
        info = CATEGORY_INFO[category]
        what = f"GitHub {info.legacy_file}"
        return await self._fetch(url, etag, lambda body: decode_legacy_file(category, body, what))
