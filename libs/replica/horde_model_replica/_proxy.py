"""Which proxy a request goes through: HTTP(S)_PROXY, ALL_PROXY and NO_PROXY, loopback never proxied."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import yarl
from attrs import frozen

from ._errors import ConfigError


def _env(env: Mapping[str, str], name: str) -> str | None:
    """The variable in either case; the lowercase one wins, as in curl and urllib (empty = unset)."""
    for key in (name.lower(), name.upper()):
        if key in env:
            return env[key].strip() or None
    return None


def _proxy_url(raw: str | None, name: str) -> yarl.URL | None:
    if raw is None:
        return None
    url = yarl.URL(raw if "://" in raw else f"http://{raw}")  # curl takes `host:port` alone
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{name} must be an http(s) proxy URL, got {raw!r}")
    return url


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bypassed(entry: str, host: str, port: int | None) -> bool:
    """One NO_PROXY entry against a host: a name (and its subdomains), `host:port`, or a CIDR."""
    if entry == "*":
        return True
    name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
        return False
    name = name.strip("[]").lstrip(".").lower()
    if "/" in name:
        try:
            return ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False)
        except ValueError:
            return False
    return host == name or host.endswith("." + name)


@frozen
class ProxySettings:
    """The proxies of the environment; `proxy_for(url)` is None for a direct connection."""

    http: yarl.URL | None = None
    https: yarl.URL | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ProxySettings:
        """HTTP_PROXY, HTTPS_PROXY, ALL_PROXY (either case) and NO_PROXY (comma-separated)."""
        fallback = _env(env, "ALL_PROXY")
        no_proxy = _env(env, "NO_PROXY") or ""
        return cls(
            http=_proxy_url(_env(env, "HTTP_PROXY") or fallback, "HTTP_PROXY"),
            https=_proxy_url(_env(env, "HTTPS_PROXY") or fallback, "HTTPS_PROXY"),
            no_proxy=tuple(e.strip() for e in no_proxy.split(",") if e.strip()),
        )

    def proxy_for(self, url: yarl.URL) -> yarl.URL | None:
        """The proxy for `url`, or None: no proxy for its scheme, a loopback host, or NO_PROXY."""
        proxy = self.https if url.scheme == "https" else self.http
        host = (url.host or "").strip("[]").rstrip(".").lower()
        if proxy is None or not host or _is_loopback(host):
            return None
        if any(_bypassed(entry, host, url.port) for entry in self.no_proxy):
            return None
        return proxy
