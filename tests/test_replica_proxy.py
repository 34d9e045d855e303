"""Proxies: HTTP(S)_PROXY and NO_PROXY are honoured, and loopback is never sent to a proxy.

A real forward proxy runs on 127.0.0.1 (tests/fakes/proxy.py) and maps the made-up host
`primary.invalid` to the real read service on loopback, so a request for a remote-looking PRIMARY
travels client -> proxy -> service without DNS and without leaving 127.0.0.1.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestClient

from horde_model_records import Category
from horde_model_replica import (
    ConfigError,
    ProxySettings,
    ReplicaConfig,
    ReplicaManager,
    Source,
)
from tests.fakes.proxy import FakeProxy, start_fake_proxy

IMAGE = Category.image_generation


@pytest.fixture
async def proxy(
    aiohttp_server: Any, http_session: aiohttp.ClientSession, client: TestClient
) -> FakeProxy:
    """A forward proxy on loopback; `primary.invalid` is the real read service behind it."""
    service = str(client.server.make_url("")).rstrip("/")
    return await start_fake_proxy(aiohttp_server, http_session, {"primary.invalid": service})


@pytest.fixture
async def manager_for(tmp_path: Path) -> AsyncIterator[Any]:
    """Build a ReplicaManager from environment variables; closed at teardown."""
    made: list[ReplicaManager] = []

    def factory(**env: str) -> ReplicaManager:
        config = ReplicaConfig.from_environ(
            {
                "AIWORKER_CACHE_HOME": str(tmp_path),
                "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
                "HORDE_MODEL_REFERENCE_PRIMARY_API_RETRY_MAX_ATTEMPTS": "1",
                **env,
            }
        )
        made.append(ReplicaManager(config))
        return made[-1]

    yield factory
    for manager in made:
        await manager.aclose()


async def test_a_remote_primary_is_reached_through_the_proxy(
    proxy: FakeProxy, manager_for: Any
) -> None:
    """HTTP_PROXY carries a request for a non-loopback host, credentials in Proxy-Authorization."""
    port = yarl.URL(proxy.url).port
    mgr = manager_for(
        HORDE_MODEL_REFERENCE_PRIMARY_API_URL="http://primary.invalid/api",
        HTTP_PROXY=f"http://worker:s3cret@127.0.0.1:{port}",
    )
    models = await mgr.get_model_reference_async(IMAGE)
    assert "stable_diffusion" in models
    assert mgr.fetch_report(IMAGE).source is Source.primary_v2
    assert [(host, path) for host, path, _ in proxy.seen] == [
        ("primary.invalid", "/api/model_references/v2/image_generation")
    ]
    credentials = proxy.seen[0][2]
    assert credentials is not None
    assert base64.b64decode(credentials.removeprefix("Basic ")) == b"worker:s3cret"


async def test_loopback_is_never_proxied(
    proxy: FakeProxy, client: TestClient, manager_for: Any
) -> None:
    """A PRIMARY on 127.0.0.1 is reached directly although HTTP_PROXY is set and NO_PROXY is not."""
    mgr = manager_for(
        HORDE_MODEL_REFERENCE_PRIMARY_API_URL=str(client.server.make_url("/api")),
        http_proxy=proxy.url,
    )
    assert "stable_diffusion" in await mgr.get_model_reference_async(IMAGE)
    assert proxy.seen == []


async def test_no_proxy_sends_a_listed_host_directly(
    proxy: FakeProxy, client: TestClient, manager_for: Any
) -> None:
    """A host NO_PROXY lists is reached directly, although it is not loopback."""
    # 0.0.0.0 is no loopback address, so only NO_PROXY keeps it from the proxy; Linux connects
    # it to this host, where the service listens: the direct request works and stays local
    mgr = manager_for(
        HORDE_MODEL_REFERENCE_PRIMARY_API_URL=f"http://0.0.0.0:{client.server.port}/api",
        HTTP_PROXY=proxy.url,
        NO_PROXY="example.org, 0.0.0.0",
    )
    assert "stable_diffusion" in await mgr.get_model_reference_async(IMAGE)
    assert proxy.seen == []


# --- which proxy a URL gets ------------------------------------------------------------------------

PROXY = "http://proxy.corp:3128"


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({"HTTP_PROXY": PROXY}, "http://models.example/api", PROXY),
        ({"HTTP_PROXY": PROXY}, "https://models.example/api", None),
        ({"HTTPS_PROXY": PROXY}, "https://models.example/api", PROXY),
        ({"ALL_PROXY": PROXY}, "https://models.example/api", PROXY),
        ({"https_proxy": PROXY, "HTTPS_PROXY": "http://other:1"}, "https://m.example/", PROXY),
        ({"http_proxy": "", "HTTP_PROXY": PROXY}, "http://models.example/", None),
        ({"HTTP_PROXY": "proxy.corp:3128"}, "http://models.example/", PROXY),
        ({"HTTP_PROXY": PROXY}, "http://127.0.0.1:8080/api", None),
        ({"HTTP_PROXY": PROXY}, "http://127.8.9.10/api", None),
        ({"HTTP_PROXY": PROXY}, "http://[::1]:8080/api", None),
        ({"HTTP_PROXY": PROXY}, "http://localhost:8080/api", None),
        ({"HTTP_PROXY": PROXY}, "http://api.localhost/", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "*"}, "http://models.example/", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "example"}, "http://models.example/", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": ".example"}, "http://example/", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "ample"}, "http://models.example/", PROXY),
        (
            {"HTTP_PROXY": PROXY, "no_proxy": "models.example:8080"},
            "http://models.example:8080/",
            None,
        ),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "models.example:8080"}, "http://models.example/", PROXY),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, "http://10.1.2.3/", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, "http://11.1.2.3/", PROXY),
    ],
)
def test_proxy_for_follows_the_environment(
    env: dict[str, str], url: str, expected: str | None
) -> None:
    """Scheme, case, ALL_PROXY, NO_PROXY (names, suffixes, ports, CIDR, *) and loopback decide."""
    proxy = ProxySettings.from_environ(env).proxy_for(yarl.URL(url))
    assert (None if proxy is None else str(proxy)) == expected


def test_a_proxy_that_is_not_a_url_is_a_config_error() -> None:
    """A proxy variable that cannot be a proxy URL is refused, naming the variable."""
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        ProxySettings.from_environ({"HTTPS_PROXY": "ftp://proxy.corp"})
