"""Stats service configuration, built from a mapping (os.environ in the entry point, a dict in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from attrs import frozen

from shared.config import DEFAULT_HORDE_URL, ServiceConfig, get_float, get_str


@frozen(kw_only=True)
class Config(ServiceConfig):
    DEFAULT_PORT: ClassVar[int] = 19803

    horde_url: str = DEFAULT_HORDE_URL
    poll_interval: float = 60.0
    horde_timeout: float = 30.0
    retry_backoff_min: float = 1.0
    startup_poll_wait: float = 5.0
    snapshot_poll_interval: float = 0.2

    @property
    def polling_enabled(self) -> bool:
        """`HMR_HORDE_URL=off` runs without AI-Horde (development, tests): stats degrade."""
        return self.horde_url.lower() not in ("off", "none", "")

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Config:
        return cls(
            **cls.service_fields(env),
            horde_url=get_str(env, "HMR_HORDE_URL", DEFAULT_HORDE_URL),
            poll_interval=get_float(env, "HMR_POLL_INTERVAL", 60.0, minimum=0.05),
            horde_timeout=get_float(env, "HMR_HORDE_TIMEOUT", 30.0, minimum=0.01),
            retry_backoff_min=get_float(env, "HMR_HORDE_RETRY_BACKOFF", 1.0),
            startup_poll_wait=get_float(env, "HMR_STARTUP_POLL_WAIT", 5.0),
            snapshot_poll_interval=get_float(env, "HMR_SNAPSHOT_POLL_INTERVAL", 0.2, minimum=0.01),
        )
