"""`ModelReferenceManager`: upstream's process-wide manager, as a singleton `ReplicaManager`.

The first construction configures it; constructing it again returns the same instance and raises
RuntimeError when asked for other settings. `has_instance()`, `get_instance()` and `reset()` are
upstream's; `get_manager()` and `reset_manager()` are the same two operations under our names.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from pathlib import Path
from typing import ClassVar

import attrs

from ._config import ReplicaConfig
from ._manager import PrefetchStrategy, ReplicaManager

logger = logging.getLogger("horde_model_replica")


def _wanted_config(
    config: ReplicaConfig | None, base_path: str | Path | None, offline: bool | None
) -> ReplicaConfig:
    """`config` (else the environment) with upstream's keyword arguments applied over it."""
    wanted = config if config is not None else ReplicaConfig.from_environ(os.environ)
    if base_path is not None:
        wanted = attrs.evolve(wanted, cache_dir=Path(base_path))
    if offline is not None:
        wanted = attrs.evolve(wanted, offline=offline)
    return wanted


def _check_mode(replicate_mode: str | None) -> None:
    if replicate_mode is not None and str(replicate_mode).upper() != "REPLICA":
        raise ValueError(
            f"replicate_mode={replicate_mode!r}: this library only reads (REPLICA); "
            "a PRIMARY is the services' job"
        )


class ModelReferenceManager(ReplicaManager):
    """The process-wide `ReplicaManager` (upstream's class name and construction rules).

    Keywords as upstream's: `base_path` (the cache dir, `$AIWORKER_CACHE_HOME/horde_model_reference`
    by default), `replicate_mode` (REPLICA only), `prefetch_strategy` and `offline`; `config` is
    ours. A keyword left out accepts whatever the instance has; the instance is closed at exit.
    """

    _instance: ClassVar[ModelReferenceManager | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __new__(
        cls,
        config: ReplicaConfig | None = None,
        *,
        base_path: str | Path | None = None,
        replicate_mode: str | None = None,
        prefetch_strategy: PrefetchStrategy | str | None = None,
        offline: bool | None = None,
    ) -> ModelReferenceManager:
        _check_mode(replicate_mode)
        strategy = None if prefetch_strategy is None else PrefetchStrategy(prefetch_strategy)
        with ModelReferenceManager._instance_lock:
            existing = ModelReferenceManager._instance
            if existing is not None:
                existing._refuse_other_settings(config, base_path, strategy, offline)
                return existing
            manager = super().__new__(cls)
            ReplicaManager.__init__(
                manager,
                _wanted_config(config, base_path, offline),
                prefetch_strategy=strategy or PrefetchStrategy.LAZY,
            )
            atexit.register(manager.close)
            ModelReferenceManager._instance = manager
            return manager

    def __init__(
        self,
        config: ReplicaConfig | None = None,
        *,
        base_path: str | Path | None = None,
        replicate_mode: str | None = None,
        prefetch_strategy: PrefetchStrategy | str | None = None,
        offline: bool | None = None,
    ) -> None:
        """Set up by __new__, once: constructing it again must not set the instance up again."""

    def _refuse_other_settings(
        self,
        config: ReplicaConfig | None,
        base_path: str | Path | None,
        strategy: PrefetchStrategy | None,
        offline: bool | None,
    ) -> None:
        differences = []
        if strategy is not None and strategy is not self.prefetch_strategy:
            differences.append(f"prefetch_strategy={self.prefetch_strategy.value}, not {strategy}")
        if offline is not None and offline != self.offline:
            differences.append(f"offline={self.offline}, not {offline}")
        if base_path is not None and Path(base_path) != self.config.cache_dir:
            differences.append(f"base_path={self.config.cache_dir}, not {base_path}")
        if config is not None and _wanted_config(config, base_path, offline) != self.config:
            differences.append("another config")
        if differences:
            raise RuntimeError(
                "the model reference manager already exists with other settings "
                f"({'; '.join(differences)}); it is configured once per process "
                "(ModelReferenceManager.reset() drops it)"
            )

    @classmethod
    def has_instance(cls) -> bool:
        """True when the process-wide manager exists (in a forked child: the parent's)."""
        with ModelReferenceManager._instance_lock:
            return ModelReferenceManager._instance is not None

    @classmethod
    def get_instance(cls) -> ModelReferenceManager:
        """The process-wide manager; RuntimeError when it has not been created yet."""
        with ModelReferenceManager._instance_lock:
            if ModelReferenceManager._instance is None:
                raise RuntimeError("ModelReferenceManager instance has not been created yet.")
            return ModelReferenceManager._instance

    @classmethod
    def reset(cls) -> None:
        """Close the process-wide manager (its warm-up and fetches stop) and forget it.

        Its registered providers go with it (they are not closed: they belong to whoever built
        them). The next construction takes new settings. In a forked child this only forgets the
        parent's manager, whose loop never ran in the child.
        """
        with ModelReferenceManager._instance_lock:
            manager, ModelReferenceManager._instance = ModelReferenceManager._instance, None
        if manager is not None:
            atexit.unregister(manager.close)
            manager.close()


def get_manager(
    config: ReplicaConfig | None = None,
    *,
    prefetch_strategy: PrefetchStrategy | str | None = None,
) -> ModelReferenceManager:
    """The process-wide manager: `ModelReferenceManager(config, prefetch_strategy=...)`."""
    return ModelReferenceManager(config, prefetch_strategy=prefetch_strategy)


def reset_manager() -> None:
    """`ModelReferenceManager.reset()`: close the process-wide manager and forget it."""
    ModelReferenceManager.reset()
