"""A tiny forward HTTP proxy on loopback that maps made-up host names to loopback servers.

`start_fake_proxy(aiohttp_server, session, routes)` serves a proxy whose `url` goes in
HTTP_PROXY. A request for `http://<name>/<path>` (absolute form, as clients send to a proxy) is
forwarded to `routes[name] + path` with the same method, query and headers, so names such as
`primary.invalid` never need DNS and nothing leaves 127.0.0.1. A name without a route gets 502.
`seen` records (host, path with query, Proxy-Authorization header or None) for each request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import yarl
from aiohttp import hdrs, web
from aiohttp.test_utils import TestServer

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

#: request headers the proxy consumes or recomputes instead of passing on
_NOT_FORWARDED = {
    hdrs.HOST,
    hdrs.PROXY_AUTHORIZATION,
    "Proxy-Connection",
    hdrs.CONNECTION,
    hdrs.ACCEPT_ENCODING,
    hdrs.CONTENT_LENGTH,
    hdrs.TRANSFER_ENCODING,
}
#: answer headers passed back to the client
_RETURNED = (hdrs.CONTENT_TYPE, hdrs.ETAG, hdrs.CACHE_CONTROL)


class FakeProxy:
    """The proxy's routes and what it saw; `app` serves it."""

    def __init__(self, session: aiohttp.ClientSession, routes: dict[str, str]) -> None:
        self.session = session
        self.routes = dict(routes)
        self.seen: list[tuple[str, str, str | None]] = []
        self.url = ""
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._forward)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        host = request.host.split(":")[0]
        self.seen.append((host, request.path_qs, request.headers.get(hdrs.PROXY_AUTHORIZATION)))
        target = self.routes.get(host)
        if target is None:
            return web.Response(status=502, text=f"no route to {host}")
        headers = {k: v for k, v in request.headers.items() if k not in _NOT_FORWARDED}
        url = yarl.URL(target.rstrip("/") + request.path_qs, encoded=True)
        async with self.session.request(
            request.method, url, headers=headers, data=await request.read()
        ) as upstream:
            body = await upstream.read()
            returned = {k: upstream.headers[k] for k in _RETURNED if k in upstream.headers}
            return web.Response(status=upstream.status, body=body, headers=returned)


async def start_fake_proxy(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, routes: dict[str, str]
) -> FakeProxy:
    """Serve a FakeProxy on 127.0.0.1; `proxy.url` is its `http://127.0.0.1:<port>` address."""
    proxy = FakeProxy(session, routes)
    server = await aiohttp_server(proxy.app)
    proxy.url = str(server.make_url("")).rstrip("/")
    return proxy
