"""Read service configuration, built from a mapping (os.environ in the entry point, a dict in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from attrs import frozen

from shared.config import get_choice, get_float, get_int, get_json_list, get_path, get_str

MODES = ("PRIMARY", "REPLICA")
FORMATS = ("v2", "legacy")


@frozen(kw_only=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 19801
    data_dir: Path = Path("./var")
    mode: str = "REPLICA"
    canonical_format: str = "v2"
    snapshot_poll_interval: float = 0.2
    cache_max_age: int = 60
    cors_origins: tuple[str, ...] = ()
    snapshot_source: str | None = None  # write service URL, for replicas without the shared volume

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Config:
        return cls(
            host=get_str(env, "HMR_HOST", "127.0.0.1"),
            port=get_int(env, "HMR_PORT", 19801, minimum=0),
            data_dir=get_path(env, "HMR_DATA_DIR", "./var"),
            mode=get_choice(env, "HMR_MODE", "REPLICA", MODES),
            canonical_format=get_choice(env, "HMR_CANONICAL_FORMAT", "v2", FORMATS),
            snapshot_poll_interval=get_float(env, "HMR_SNAPSHOT_POLL_INTERVAL", 0.2, minimum=0.01),
            cache_max_age=get_int(env, "HMR_CACHE_MAX_AGE", 60, minimum=0),
            cors_origins=get_json_list(env, "HMR_CORS_ORIGINS"),
            snapshot_source=get_str(env, "HMR_SNAPSHOT_SOURCE", "") or None,
        )
