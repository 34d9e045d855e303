"""A small GitHub REST client: the git data API, pulls, labels, reviewers, comments; token or
GitHub App authentication; retries and rate limits as spec 08 §10 says. Tokens are never logged."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
from attrs import define, frozen

logger = logging.getLogger("hmr.github_sync.github")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
ATTEMPTS = 3
#: refresh an installation token when less than this is left of it
TOKEN_MARGIN = 300.0
HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "hmr-github-sync",
}


class GitHubError(Exception):
    """GitHub refused or failed a call; `status` is its HTTP status (0: no answer)."""

    def __init__(self, method: str, path: str, status: int, message: str, body: Any = None):
        super().__init__(f"{method} {path}: {status or 'no answer'}: {message}")
        self.status = status
        self.message = message
        self.body = body

    @property
    def text(self) -> str:
        """The message and every error message GitHub gave, for matching ("already exists")."""
        parts = [self.message]
        if isinstance(self.body, dict):
            for error in self.body.get("errors") or []:
                if isinstance(error, dict) and error.get("message"):
                    parts.append(str(error["message"]))
        return " ".join(parts)


class RateLimited(GitHubError):
    """The rate limit would keep us waiting longer than allowed: the run stops."""


def blob_sha(data: bytes) -> str:
    """git's object id of a blob: SHA-1 of `blob {len}\\0` + bytes (what GitHub reports)."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@define
class AppAuth:
    """GitHub App credentials: a JWT buys an installation token, refreshed before it runs out."""

    app_id: str
    private_key: str
    installation_id: int | None = None
    token: str | None = None
    expires_at: float = 0.0

    def jwt(self, now: float) -> str:
        payload = {"iat": int(now) - 60, "exp": int(now) + 300, "iss": str(self.app_id)}
        return jwt.encode(payload, self.private_key, algorithm="RS256")


@frozen
class Repo:
    owner: str
    name: str

    @classmethod
    def parse(cls, full: str) -> Repo:
        owner, name = full.split("/", 1)
        return cls(owner, name)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def path(self) -> str:
        return f"/repos/{self.owner}/{self.name}"


class GitHubClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        *,
        token: str | None = None,
        app: AppAuth | None = None,
        backoff: float = 1.0,
        max_wait: float = 120.0,
        timeout: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
    ) -> None:
        self._session = session
        self._api = api_url.rstrip("/")
        self._token = token
        self._app = app
        self._backoff = backoff
        self._max_wait = max_wait
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sleep = sleep
        self._clock = clock

    # --- authentication ---------------------------------------------------------------------------

    async def _authorization(self, repo: Repo | None) -> str:
        if self._app is None:
            return f"Bearer {self._token}" if self._token else ""
        app = self._app
        if app.token is None or app.expires_at - self._clock() < TOKEN_MARGIN:
            bearer = f"Bearer {app.jwt(self._clock())}"
            if app.installation_id is None:
                if repo is None:
                    raise GitHubError("GET", "installation", 0, "no installation id and no repo")
                found = await self._call("GET", f"{repo.path}/installation", None, bearer, True)
                app.installation_id = int(found["id"])
            path = f"/app/installations/{app.installation_id}/access_tokens"
            issued = await self._call("POST", path, {}, bearer, True)
            app.token = str(issued["token"])
            app.expires_at = _parse_time(issued.get("expires_at"), self._clock() + 3600)
        return f"Bearer {app.token}"

    # --- one call, with retries -------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        repo: Repo | None = None,
        retry: bool = True,
    ) -> Any:
        """Call the API; retry 5xx and transport errors when `retry` (GETs, idempotent writes),
        wait out rate limits up to the allowed wait. Raises GitHubError."""
        authorization = await self._authorization(repo)
        return await self._call(method, path, body, authorization, retry)

    async def _call(
        self, method: str, path: str, body: Any, authorization: str, retry: bool
    ) -> Any:
        url = self._api + path
        headers = dict(HEADERS)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if authorization:
            headers["Authorization"] = authorization
        attempt = 0
        waits = 0
        while True:
            attempt += 1
            try:
                # a stream, not bytes: db.json's blob is over aiohttp's 1 MB inline-body mark
                payload = None if body is None else io.BytesIO(json.dumps(body).encode())
                async with self._session.request(
                    method, url, data=payload, headers=headers, timeout=self._timeout
                ) as resp:
                    status = resp.status
                    data = await _json(resp)
                    if status < 300:
                        return data
                    wait = self._rate_limit_wait(resp, data)
                    failure = GitHubError(method, path, status, _message(data), data)
            except (aiohttp.ClientError, TimeoutError) as exc:  # no (whole) answer
                failure = GitHubError(method, path, 0, type(exc).__name__)
                status, wait = 0, None
            if wait is not None:
                waits += 1
                if wait > self._max_wait or waits > ATTEMPTS:
                    raise RateLimited(
                        method,
                        path,
                        failure.status,
                        f"rate limited ({wait:.0f} s; at most {self._max_wait:.0f} s, {ATTEMPTS} waits): "
                        f"{failure.message}",
                        failure.body,
                    )
                logger.warning("%s %s: rate limited; waiting %.1f s", method, path, wait)
                await self._sleep(wait)
                attempt -= 1  # a refused call did nothing: it does not count as an attempt
                continue
            if not retry or (status and status < 500) or attempt >= ATTEMPTS:
                raise failure
            delay = min(10.0, self._backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            logger.warning("%s; retrying in %.1f s", failure, delay)
            await self._sleep(delay)

    def _rate_limit_wait(self, resp: aiohttp.ClientResponse, data: Any) -> float | None:
        """Seconds to wait before the same call may succeed, or None if it is not a rate limit."""
        if resp.status not in (403, 429):
            return None
        retry_after = resp.headers.get("Retry-After")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if resp.headers.get("X-RateLimit-Remaining") == "0":
            reset = resp.headers.get("X-RateLimit-Reset")
            try:
                return max(0.0, float(reset or 0) - self._clock()) + 1.0
            except ValueError:
                return 60.0
        if "rate limit" in _message(data).lower():
            return 60.0  # a secondary limit without Retry-After: GitHub asks for a minute
        if resp.status == 429:
            return 60.0
        return None

    # --- the calls the sync makes ------------------------------------------------------------------

    async def ref_sha(self, repo: Repo, branch: str) -> str:
        data = await self.request("GET", f"{repo.path}/git/ref/heads/{quote(branch)}", repo=repo)
        return str(data["object"]["sha"])

    async def commit_tree(self, repo: Repo, commit: str) -> str:
        data = await self.request("GET", f"{repo.path}/git/commits/{commit}", repo=repo)
        return str(data["tree"]["sha"])

    async def tree(self, repo: Repo, tree: str) -> dict[str, str]:
        """path -> blob sha of the files at the top of a tree."""
        data = await self.request("GET", f"{repo.path}/git/trees/{tree}", repo=repo)
        return {
            str(e["path"]): str(e["sha"]) for e in data.get("tree") or [] if e.get("type") == "blob"
        }

    async def blob(self, repo: Repo, sha: str) -> bytes:
        data = await self.request("GET", f"{repo.path}/git/blobs/{sha}", repo=repo)
        return base64.b64decode(data.get("content") or "")

    async def create_blob(self, repo: Repo, content: bytes) -> str:
        body = {"content": base64.b64encode(content).decode("ascii"), "encoding": "base64"}
        # content-addressed: creating it twice is harmless
        data = await self.request("POST", f"{repo.path}/git/blobs", body, repo=repo)
        return str(data["sha"])

    async def create_tree(self, repo: Repo, base_tree: str, files: dict[str, str]) -> str:
        entries = [
            {"path": path, "mode": "100644", "type": "blob", "sha": sha}
            for path, sha in files.items()
        ]
        body = {"base_tree": base_tree, "tree": entries}
        data = await self.request("POST", f"{repo.path}/git/trees", body, repo=repo)
        return str(data["sha"])

    async def create_commit(
        self, repo: Repo, message: str, tree: str, parent: str, author: dict[str, str]
    ) -> str:
        body = {"message": message, "tree": tree, "parents": [parent], "author": author}
        # an unreferenced duplicate commit is garbage, not harm: retried like a GET
        data = await self.request("POST", f"{repo.path}/git/commits", body, repo=repo)
        return str(data["sha"])

    async def create_ref(self, repo: Repo, branch: str, sha: str) -> None:
        body = {"ref": f"refs/heads/{branch}", "sha": sha}
        await self.request("POST", f"{repo.path}/git/refs", body, repo=repo, retry=False)

    async def delete_ref(self, repo: Repo, branch: str) -> None:
        await self.request("DELETE", f"{repo.path}/git/refs/heads/{quote(branch)}", repo=repo)

    async def open_pulls(self, repo: Repo, head: str | None = None) -> list[dict[str, Any]]:
        """Every open PR (following pagination), or those whose head is `owner:branch`."""
        pulls: list[dict[str, Any]] = []
        page = 1
        while True:
            query = f"state=open&per_page=100&page={page}"
            if head is not None:
                query += f"&head={quote(head)}"
            data = await self.request("GET", f"{repo.path}/pulls?{query}", repo=repo)
            if not isinstance(data, list):
                raise GitHubError("GET", f"{repo.path}/pulls", 200, "expected a list")
            pulls.extend(data)
            if len(data) < 100:
                return pulls
            page += 1

    async def create_pull(
        self, repo: Repo, title: str, body: str, head: str, base: str
    ) -> dict[str, Any]:
        payload = {"title": title, "body": body, "head": head, "base": base}
        data: dict[str, Any] = await self.request(
            "POST", f"{repo.path}/pulls", payload, repo=repo, retry=False
        )
        return data

    async def add_labels(self, repo: Repo, number: int, labels: list[str]) -> None:
        await self.request(
            "POST", f"{repo.path}/issues/{number}/labels", {"labels": labels}, repo=repo
        )

    async def request_reviewers(
        self, repo: Repo, number: int, reviewers: list[str], teams: list[str]
    ) -> None:
        body: dict[str, list[str]] = {}
        if reviewers:
            body["reviewers"] = reviewers
        if teams:
            body["team_reviewers"] = teams
        if body:
            path = f"{repo.path}/pulls/{number}/requested_reviewers"
            await self.request("POST", path, body, repo=repo)

    async def comment(self, repo: Repo, number: int, text: str) -> None:
        path = f"{repo.path}/issues/{number}/comments"
        await self.request("POST", path, {"body": text}, repo=repo, retry=False)

    async def close_pull(self, repo: Repo, number: int) -> None:
        await self.request("PATCH", f"{repo.path}/pulls/{number}", {"state": "closed"}, repo=repo)


async def _json(resp: aiohttp.ClientResponse) -> Any:
    raw = await resp.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw[:200].decode("utf-8", "replace")}


def _message(data: Any) -> str:
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return "no message"


def _parse_time(value: Any, default: float) -> float:
    if not isinstance(value, str):
        return default
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default
