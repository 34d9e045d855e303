"""The services' common Config base and the parsing helpers of their fields (values come from a
mapping: os.environ in the entry point, a dict in tests)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, TypedDict

from attrs import Factory, field, frozen

MODES = ("PRIMARY", "REPLICA")
FORMATS = ("v2", "legacy")
DEFAULT_HORDE_URL = "https://aihorde.net/api/"
#: the values of HMR_HORDE_URL that switch AI-Horde off (development, tests, `make run`/`make up`)
HORDE_OFF = frozenset({"off", "none", ""})

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def get_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value == "" else value


def get_int(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def get_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def get_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {raw!r}")


def get_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """Case-insensitive choice, returned in the spelling of `choices`."""
    raw = get_str(env, name, default)
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")


def get_json_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A list: a JSON array (`["1", 2]`) or comma-separated values (`1001, 1002`, or just `1002`)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return ()
    if not raw.lstrip().startswith("["):
        return tuple(v.strip() for v in raw.split(",") if v.strip())
    try:
        value = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{name} is not a valid JSON array: {raw!r}") from None
    if not isinstance(value, list) or not all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"{name} must be a JSON array of strings or numbers, got {raw!r}")
    return tuple(str(v).strip() for v in value if str(v).strip())


def get_path(env: Mapping[str, str], name: str, default: str) -> Path:
    return Path(get_str(env, name, default))


class ServiceFields(TypedDict):
    """The fields every service's Config has, as `ServiceConfig.service_fields` reads them."""

    host: str
    port: int
    data_dir: Path
    cors_origins: tuple[str, ...]


def _default_port(config: ServiceConfig) -> int:
    return config.DEFAULT_PORT


@frozen(kw_only=True)
class ServiceConfig:
    """What every service is configured with: where it listens, its data dir and CORS origins.

    A service's Config subclasses this, sets DEFAULT_PORT and reads its own fields in
    `from_environ` next to `**cls.service_fields(env)`.
    """

    DEFAULT_PORT: ClassVar[int]

    host: str = "127.0.0.1"
    port: int = field(default=Factory(_default_port, takes_self=True))
    data_dir: Path = Path("./var")
    cors_origins: tuple[str, ...] = ()

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @classmethod
    def service_fields(cls, env: Mapping[str, str]) -> ServiceFields:
        return ServiceFields(
            host=get_str(env, "HMR_HOST", "127.0.0.1"),
            port=get_int(env, "HMR_PORT", cls.DEFAULT_PORT, minimum=0),
            data_dir=get_path(env, "HMR_DATA_DIR", "./var"),
            cors_origins=get_json_list(env, "HMR_CORS_ORIGINS"),
        )
