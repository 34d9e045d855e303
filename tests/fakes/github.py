"""A fake GitHub raw server for the legacy files, and `Faults` to put in front of any app.

`start_fake_github(aiohttp_server, legacy_dir)` serves `legacy_dir/image/*` and `legacy_dir/text/*`
at `/{owner}/{name}/refs/heads/{branch}/{file}` for the two Haidra-Org repositories (branch
`main`), with a strong ETag and `If-None-Match` -> 304 like raw.githubusercontent.com, gzip when
accepted, and `fake.url` as the base URL (the shape of HORDE_MODEL_REFERENCE_GITHUB_RAW_BASE).
`fake.files[name] = bytes` replaces one file's content while it runs.

`Faults` switches, changeable while the server runs, for requests whose path contains `only`
(every request when `only` is None):

- `down`: the connection is dropped without an answer (a transport error for the caller);
- `status`: answer this status (e.g. 500, 404) with a small HTML error page;
- `fail_next`: the next N requests answer `fail_status` (503), then the app answers again;
- `garbage`: answer 200 with an HTML page instead of the file;
- `truncated`: answer 200 with the first half of the real (uncompressed) body;
- `delay`: seconds to wait before answering.

`calls` counts requests per path; `received` keeps (path, headers) of each request.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

IMAGE_REPO = ("Haidra-Org", "AI-Horde-image-model-reference", "main")
TEXT_REPO = ("Haidra-Org", "AI-Horde-text-model-reference", "main")

ERROR_PAGE = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


class Faults:
    """Failure switches for one server (see the module docstring)."""

    def __init__(self) -> None:
        self.only: str | None = None
        self.down = False
        self.status: int | None = None
        self.fail_next = 0
        self.fail_status = 503
        self.garbage = False
        self.truncated = False
        self.delay = 0.0
        self.calls: Counter[str] = Counter()
        self.received: list[tuple[str, dict[str, str]]] = []

    def clear(self) -> None:
        """Every switch off (counters kept)."""
        self.only = None
        self.down = self.garbage = self.truncated = False
        self.status = None
        self.fail_next = 0
        self.delay = 0.0

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def count(self, part: str) -> int:
        """Requests whose path contains `part`."""
        return sum(n for path, n in self.calls.items() if part in path)

    def middleware(self) -> Middleware:
        @web.middleware
        async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.calls[request.path] += 1
            self.received.append((request.path, dict(request.headers)))
            if self.only is not None and self.only not in request.path:
                return await handler(request)
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.down:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)  # never reaches the caller
            if self.fail_next > 0:
                self.fail_next -= 1
                return web.Response(
                    status=self.fail_status, text=ERROR_PAGE, content_type="text/html"
                )
            if self.status is not None:
                return web.Response(status=self.status, text=ERROR_PAGE, content_type="text/html")
            if self.garbage:
                return web.Response(status=200, text=ERROR_PAGE, content_type="text/html")
            if self.truncated:
                # the whole identity body, so that half of it is half of the document
                dropped = {"accept-encoding", "if-none-match"}
                headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
                resp = await handler(request.clone(headers=headers))
                assert isinstance(resp, web.Response) and isinstance(resp.body, bytes)
                body = resp.body[: len(resp.body) // 2]
                return web.Response(body=body, content_type=resp.content_type)
            return await handler(request)

        return faults_middleware


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:40] + '"'


class FakeGitHub:
    """The fake's files and switches; `app` serves them."""

    def __init__(self, legacy_dir: Path) -> None:
        self.roots = {IMAGE_REPO: legacy_dir / "image", TEXT_REPO: legacy_dir / "text"}
        self.files: dict[str, bytes] = {}
        self.faults = Faults()
        self.url = ""
        self.app = web.Application(middlewares=[self.faults.middleware()])
        self.app.router.add_get("/{owner}/{name}/refs/heads/{branch}/{file}", self._raw)

    def content(self, file: str, repo: tuple[str, str, str] = IMAGE_REPO) -> bytes:
        """What the fake serves for `file` right now."""
        return self.files.get(file) or (self.roots[repo] / file).read_bytes()

    async def _raw(self, request: web.Request) -> web.Response:
        m = request.match_info
        root = self.roots.get((m["owner"], m["name"], m["branch"]))
        file = m["file"]
        if root is None or (file not in self.files and not (root / file).is_file()):
            return web.Response(status=404, text="404: Not Found")
        data = self.files.get(file) or (root / file).read_bytes()
        etag = _etag(data)
        headers = {"ETag": etag, "Content-Type": "text/plain; charset=utf-8"}
        if request.headers.get(hdrs.IF_NONE_MATCH) == etag:
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, ""):
            headers["Content-Encoding"] = "gzip"
            data = gzip.compress(data, mtime=0)
        return web.Response(body=data, headers=headers)


async def start_fake_github(aiohttp_server: ServerFactory, legacy_dir: Path) -> FakeGitHub:
    """Serve a FakeGitHub on 127.0.0.1 (via pytest-aiohttp's `aiohttp_server`); sets `fake.url`."""
    fake = FakeGitHub(legacy_dir)
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("/")).rstrip("/")
    return fake
