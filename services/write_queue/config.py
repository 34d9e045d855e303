"""Write service configuration, built from a mapping (os.environ in the entry point, a dict in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from attrs import frozen

from shared.config import (
    DEFAULT_HORDE_URL,
    FORMATS,
    HORDE_OFF,
    MODES,
    ServiceConfig,
    get_bool,
    get_choice,
    get_float,
    get_int,
    get_json_list,
    get_str,
)


@frozen(kw_only=True)
class Config(ServiceConfig):
    DEFAULT_PORT: ClassVar[int] = 19802

    seed_dir: Path | None = None
    mode: str = "PRIMARY"
    canonical_format: str = "v2"
    requestor_ids: frozenset[str] = frozenset()
    approver_ids: frozenset[str] = frozenset()
    license_editor_ids: frozenset[str] = frozenset()
    require_explicit_model_licensing: bool = False
    horde_url: str = DEFAULT_HORDE_URL
    auth_timeout: float = 10.0
    auth_cache_ttl: float = 60.0
    auth_file: Path | None = None
    queue_enabled: bool = True
    keep_snapshots: int = 5

    @property
    def database_path(self) -> Path:
        return self.data_dir / "write_queue.sqlite3"

    @property
    def auth_off(self) -> str | None:
        """Why no key can be checked (no AI-Horde, no auth file), naming the settings to give;
        None when keys can be checked."""
        if self.auth_file is not None or self.horde_url.lower() not in HORDE_OFF:
            return None
        return (
            f"AI-Horde auth is off (HMR_HORDE_URL={self.horde_url}) and no auth file is set: "
            "start the write service with HMR_AUTH_FILE (a development auth file), or with "
            "HMR_HORDE_URL and HMR_REQUESTOR_IDS / HMR_APPROVER_IDS"
        )

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Config:
        auth_file = get_str(env, "HMR_AUTH_FILE", "")
        seed_dir = get_str(env, "HMR_SEED_DIR", "")
        return cls(
            **cls.service_fields(env),
            seed_dir=Path(seed_dir) if seed_dir else None,
            mode=get_choice(env, "HMR_MODE", "PRIMARY", MODES),
            canonical_format=get_choice(env, "HMR_CANONICAL_FORMAT", "v2", FORMATS),
            requestor_ids=frozenset(get_json_list(env, "HMR_REQUESTOR_IDS")),
            approver_ids=frozenset(get_json_list(env, "HMR_APPROVER_IDS")),
            license_editor_ids=frozenset(get_json_list(env, "HMR_LICENSE_EDITOR_IDS")),
            require_explicit_model_licensing=get_bool(
                env, "HMR_REQUIRE_EXPLICIT_MODEL_LICENSING", False
            ),
            horde_url=get_str(env, "HMR_HORDE_URL", DEFAULT_HORDE_URL),
            auth_timeout=get_float(env, "HMR_AUTH_TIMEOUT", 10.0, minimum=0.01),
            auth_cache_ttl=get_float(env, "HMR_AUTH_CACHE_TTL", 60.0),
            auth_file=Path(auth_file) if auth_file else None,
            queue_enabled=get_bool(env, "HMR_QUEUE_ENABLED", True),
            keep_snapshots=get_int(env, "HMR_KEEP_SNAPSHOTS", 5, minimum=1),
        )
