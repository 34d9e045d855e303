"""Read service configuration, built from a mapping (os.environ in the entry point, a dict in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from attrs import frozen

from shared.config import FORMATS, MODES, ServiceConfig, get_choice, get_float, get_int, get_str


@frozen(kw_only=True)
class Config(ServiceConfig):
    DEFAULT_PORT: ClassVar[int] = 19801

    mode: str = "REPLICA"
    canonical_format: str = "v2"
    snapshot_poll_interval: float = 0.2
    cache_max_age: int = 60
    snapshot_source: str | None = None  # write service URL, for replicas without the shared volume

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Config:
        return cls(
            **cls.service_fields(env),
            mode=get_choice(env, "HMR_MODE", "REPLICA", MODES),
            canonical_format=get_choice(env, "HMR_CANONICAL_FORMAT", "v2", FORMATS),
            snapshot_poll_interval=get_float(env, "HMR_SNAPSHOT_POLL_INTERVAL", 0.2, minimum=0.01),
            cache_max_age=get_int(env, "HMR_CACHE_MAX_AGE", 60, minimum=0),
            snapshot_source=get_str(env, "HMR_SNAPSHOT_SOURCE", "") or None,
        )
