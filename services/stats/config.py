"""Stats service configuration, built from a mapping (os.environ in the entry point, a dict in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from attrs import frozen

from shared.config import get_float, get_json_list, get_path, get_str

DEFAULT_HORDE_URL = "https://aihorde.net/api/"


@frozen(kw_only=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 19803
    data_dir: Path = Path("./var")
    horde_url: str = DEFAULT_HORDE_URL
    poll_interval: float = 60.0
    horde_timeout: float = 30.0
    retry_backoff_min: float = 1.0
    startup_poll_wait: float = 5.0
    snapshot_poll_interval: float = 0.2
    cors_origins: tuple[str, ...] = ()

    @property
    def polling_enabled(self) -> bool:
        """`HMR_HORDE_URL=off` runs without AI-Horde (development, tests): stats degrade."""
        return self.horde_url.lower() not in ("off", "none", "")

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Config:
        return cls(
            host=get_str(env, "HMR_HOST", "127.0.0.1"),
            data_dir=get_path(env, "HMR_DATA_DIR", "./var"),
            horde_url=get_str(env, "HMR_HORDE_URL", DEFAULT_HORDE_URL),
            poll_interval=get_float(env, "HMR_POLL_INTERVAL", 60.0, minimum=0.05),
            horde_timeout=get_float(env, "HMR_HORDE_TIMEOUT", 30.0, minimum=0.01),
            retry_backoff_min=get_float(env, "HMR_HORDE_RETRY_BACKOFF", 1.0),
            startup_poll_wait=get_float(env, "HMR_STARTUP_POLL_WAIT", 5.0),
            snapshot_poll_interval=get_float(env, "HMR_SNAPSHOT_POLL_INTERVAL", 0.2, minimum=0.01),
            cors_origins=get_json_list(env, "HMR_CORS_ORIGINS"),
        )
