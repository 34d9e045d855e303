"""A small fake AI-Horde answering `GET /api/v2/find_user`, with switches for every failure mode.

Start it with `start_fake_horde(aiohttp_server, users)`; `fake.url` is the base URL ending in
`/api/` (the shape of `HMR_HORDE_URL`). Switches, all changeable while it runs:

- `down`: the connection is dropped without an answer (a transport error for the caller);
  `refused_url()` gives a URL on a closed port for "nothing listens there".
- `status`: answer every request with this status (e.g. 500, 503, 429) and a JSON error body.
- `delay`: seconds to wait before answering (released early by `release()` at teardown).
- `garbage`: answer 200 with a body that is not JSON (`True`) or with this exact text (`str`).

`calls` counts requests and `received` keeps each request's headers (for `apikey` and
`Client-Agent` assertions).

It also serves the read endpoints the stats service polls (`/v2/status/models`,
`/v2/stats/{img,text}/models`, `/v2/workers`, `/v2/status/heartbeat`) from `payloads`, keyed
like the stats poller's resources (`status_image`, `usage_text`, `workers_image`, ...); the same
switches apply, plus `retry_after` for 429 answers. `paths` records which paths were asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

#: a realistic user set: plain users, a shared key, and an anonymous key
DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "horde-requestor-key": {"id": 100, "username": "Req#100"},
    "horde-approver-key": {"id": 200, "username": "Appr#200"},
    "horde-reader-key": {"id": 300, "username": "Reader#300"},
    "horde-shared-key": {"id": 4242, "username": "alice#4242 (Shared Key: x)"},
    "0000000000": {"id": 0, "username": "Anonymous#0"},
}


class FakeHorde:
    """The fake's state and switches; `app` is the aiohttp application that serves it."""

    def __init__(self, users: dict[str, dict[str, Any]] | None = None) -> None:
        self.users: dict[str, dict[str, Any]] = dict(DEFAULT_USERS if users is None else users)
        self.down = False
        self.status: int | None = None
        self.delay = 0.0
        self.garbage: bool | str = False
        self.calls = 0
        self.received: list[dict[str, str]] = []
        self.url = ""
        self.payloads: dict[str, Any] = {}
        self.retry_after: str | None = None
        self.paths: list[str] = []
        self._released = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/api/v2/find_user", self._find_user)
        self.app.router.add_get("/api/v2/status/models", self._status)
        self.app.router.add_get("/api/v2/stats/img/models", self._usage)
        self.app.router.add_get("/api/v2/stats/text/models", self._usage)
        self.app.router.add_get("/api/v2/workers", self._workers)
        self.app.router.add_get("/api/v2/status/heartbeat", self._heartbeat)

    def release(self) -> None:
        """Let every delayed answer go now (used at teardown so no handler outlives the test)."""
        self._released.set()

    async def _switches(self, request: web.Request) -> web.StreamResponse | None:
        """Apply the failure switches; None means answer normally."""
        self.calls += 1
        self.received.append(dict(request.headers))
        self.paths.append(request.path_qs)
        if self.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.delay)
        if self.down:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the caller
        if self.status is not None:
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return web.json_response(
                {"message": "The Horde is having a bad day"}, status=self.status, headers=headers
            )
        if self.garbage:
            text = self.garbage if isinstance(self.garbage, str) else "<html>oops</html>"
            return web.Response(status=200, text=text, content_type="text/html")
        return None

    async def _payload(self, request: web.Request, key: str, default: Any) -> web.StreamResponse:
        switched = await self._switches(request)
        if switched is not None:
            return switched
        return web.json_response(self.payloads.get(key, default))

    async def _status(self, request: web.Request) -> web.StreamResponse:
        return await self._payload(request, f"status_{request.query.get('type', 'image')}", [])

    async def _usage(self, request: web.Request) -> web.StreamResponse:
        kind = "image" if "/img/" in request.path else "text"
        return await self._payload(request, f"usage_{kind}", {"day": {}, "month": {}, "total": {}})

    async def _workers(self, request: web.Request) -> web.StreamResponse:
        return await self._payload(request, f"workers_{request.query.get('type', 'image')}", [])

    async def _heartbeat(self, request: web.Request) -> web.StreamResponse:
        return await self._payload(request, "heartbeat", {"message": "OK", "version": "4.0"})

    async def _find_user(self, request: web.Request) -> web.StreamResponse:
        switched = await self._switches(request)
        if switched is not None:
            return switched
        user = self.users.get(request.headers.get("apikey", ""))
        if user is None:
            # what AI-Horde answers for a key it does not know
            return web.json_response(
                {"message": "User not found", "rc": "UserNotFound"}, status=404
            )
        return web.json_response({"kudos": 0, "worker_count": 0, **user})


async def start_fake_horde(
    aiohttp_server: ServerFactory, users: dict[str, dict[str, Any]] | None = None
) -> FakeHorde:
    """Serve a FakeHorde on 127.0.0.1 (via pytest-aiohttp's `aiohttp_server`); sets `fake.url`."""
    fake = FakeHorde(users)
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("/api/"))
    return fake


def refused_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (the port was just bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"
