"""Replica configuration, built from a mapping (`os.environ` by the caller, a dict in tests)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import yarl
from attrs import Factory, field, frozen

from ._errors import ConfigError
from ._proxy import ProxySettings

logger = logging.getLogger("horde_model_replica")

_PREFIX = "HORDE_MODEL_REFERENCE_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

DEFAULT_PRIMARY_API_URL = "https://models.aihorde.net/api"
DEFAULT_GITHUB_RAW_BASE = "https://raw.githubusercontent.com"
DEFAULT_HORDE_URL = "https://aihorde.net/api"


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None else value.strip()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {env[name]!r}")


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {raw}")
    return value


def _url(raw: str, name: str) -> yarl.URL | None:
    raw = raw.strip().rstrip("/")
    if not raw:
        return None
    url = yarl.URL(raw)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    return url


def _optional_url(value: str | yarl.URL | None) -> yarl.URL | None:
    """Constructor convenience: a string is parsed, "" means "not set"."""
    if isinstance(value, str):
        return _url(value, "url")
    return value


def _required_url(value: str | yarl.URL) -> yarl.URL:
    url = _optional_url(value)
    if url is None:
        raise ConfigError("a URL is required")
    return url


@frozen
class GitHubRepo:
    """One legacy GitHub repository: owner, name and branch."""

    owner: str
    name: str
    branch: str = "main"

    @classmethod
    def from_environ(cls, env: Mapping[str, str], prefix: str, default_name: str) -> GitHubRepo:
        return cls(
            owner=_str(env, f"{prefix}__OWNER", "Haidra-Org") or "Haidra-Org",
            name=_str(env, f"{prefix}__NAME", default_name) or default_name,
            branch=_str(env, f"{prefix}__BRANCH", "main") or "main",
        )


@frozen(kw_only=True)
class ReplicaConfig:
    """Everything the replica needs to know; `from_environ` maps the README's variables onto it.

    `cache_dir` is the directory holding the files (`<AIWORKER_CACHE_HOME>/horde_model_reference`).
    """

    primary_api_url: yarl.URL | None = field(
        default=yarl.URL(DEFAULT_PRIMARY_API_URL), converter=_optional_url
    )
    primary_api_timeout: float = 10.0
    primary_retry_attempts: int = 3
    primary_retry_backoff: float = 1.0
    retry_backoff_max: float = 10.0
    enable_github_fallback: bool = True
    github_raw_base: yarl.URL = field(
        default=yarl.URL(DEFAULT_GITHUB_RAW_BASE), converter=_required_url
    )
    github_proxy_url_base: str | None = None
    github_timeout: float = 30.0
    legacy_retry_attempts: int = 3
    legacy_retry_backoff: float = 2.0
    image_repo: GitHubRepo = GitHubRepo("Haidra-Org", "AI-Horde-image-model-reference")
    text_repo: GitHubRepo = GitHubRepo("Haidra-Org", "AI-Horde-text-model-reference")
    cache_ttl: float = 60.0
    offline: bool = False
    cache_dir: Path = field(default=Path("models") / "horde_model_reference", converter=Path)
    proxies: ProxySettings = Factory(ProxySettings)  # none unless given (from_environ reads them)
    horde_url: yarl.URL = field(default=yarl.URL(DEFAULT_HORDE_URL), converter=_required_url)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ReplicaConfig:
        """Read the HORDE_MODEL_REFERENCE_*, AIWORKER_CACHE_HOME and proxy variables from `env`."""
        mode = _str(env, _PREFIX + "REPLICATE_MODE", "REPLICA").upper() or "REPLICA"
        if mode not in ("REPLICA", "PRIMARY"):
            raise ConfigError(f"{_PREFIX}REPLICATE_MODE must be REPLICA or PRIMARY, got {mode!r}")
        if mode == "PRIMARY":
            # PRIMARY is a mode of the services; the library only ever reads
            logger.warning("%sREPLICATE_MODE=PRIMARY ignored: the library is REPLICA", _PREFIX)
        primary = _str(env, _PREFIX + "PRIMARY_API_URL", DEFAULT_PRIMARY_API_URL)
        github_base = _url(
            _str(env, _PREFIX + "GITHUB_RAW_BASE", "") or DEFAULT_GITHUB_RAW_BASE,
            _PREFIX + "GITHUB_RAW_BASE",
        )
        proxy = _str(env, _PREFIX + "GITHUB_PROXY_URL_BASE", "").rstrip("/") or None
        cache_home = Path(_str(env, "AIWORKER_CACHE_HOME", "./models") or "./models")
        attempts = _number(env, _PREFIX + "PRIMARY_API_RETRY_MAX_ATTEMPTS", 3, minimum=1)
        legacy_attempts = _number(env, _PREFIX + "LEGACY_DOWNLOAD_RETRY_MAX_ATTEMPTS", 3, minimum=1)
        return cls(
            primary_api_url=_url(primary, _PREFIX + "PRIMARY_API_URL"),
            primary_api_timeout=_number(env, _PREFIX + "PRIMARY_API_TIMEOUT", 10.0, minimum=0.001),
            primary_retry_attempts=int(attempts),
            primary_retry_backoff=_number(
                env, _PREFIX + "PRIMARY_API_RETRY_BACKOFF_SECONDS", 1.0, minimum=0.0
            ),
            enable_github_fallback=_bool(env, _PREFIX + "ENABLE_GITHUB_FALLBACK", True),
            github_raw_base=github_base or DEFAULT_GITHUB_RAW_BASE,
            github_proxy_url_base=proxy,
            legacy_retry_attempts=int(legacy_attempts),
            legacy_retry_backoff=_number(
                env, _PREFIX + "LEGACY_DOWNLOAD_RETRY_BACKOFF_SECONDS", 2.0, minimum=0.0
            ),
            image_repo=GitHubRepo.from_environ(
                env, _PREFIX + "IMAGE_GITHUB_REPO", "AI-Horde-image-model-reference"
            ),
            text_repo=GitHubRepo.from_environ(
                env, _PREFIX + "TEXT_GITHUB_REPO", "AI-Horde-text-model-reference"
            ),
            cache_ttl=_number(env, _PREFIX + "CACHE_TTL_SECONDS", 60.0, minimum=0.0),
            offline=_bool(env, _PREFIX + "OFFLINE", False),
            cache_dir=cache_home / "horde_model_reference",
            proxies=ProxySettings.from_environ(env),
            horde_url=_url(
                _str(env, "AI_HORDE_URL", "") or _str(env, "HORDE_URL", "") or DEFAULT_HORDE_URL,
                "AI_HORDE_URL",
            )
            or DEFAULT_HORDE_URL,
        )
