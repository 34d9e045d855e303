"""Publishing the dataset as a snapshot: the one object the queue hands a committed dataset to."""

from __future__ import annotations

import logging
from typing import Protocol

from attrs import define

from shared.dataset import (
    Dataset,
    adopt_snapshot,
    dataset_from_snapshot,
    prepare_publish,
    publish_dataset,
)
from shared.memory import release_free_memory
from shared.snapshot import SnapshotError, SnapshotStore

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where committed datasets go. The queue calls it off the event loop, under its lock."""

    def published_version(self) -> int | None:
        """The dataset version the live snapshot holds; None when there is none or it is
        unreadable (then the queue publishes again)."""
        ...

    def live_dataset(self) -> tuple[Dataset, int] | None:
        """The live snapshot's dataset and version, to import into an empty store."""
        ...

    def publish(self, dataset: Dataset, version: int) -> str:
        """Publish `dataset` as the live snapshot; the snapshot's name."""
        ...

    def adopt(self, dataset: Dataset) -> None:
        """`dataset` is what the live snapshot holds: reuse its files in the next publish."""
        ...


@define
class SnapshotPublisher:
    """Publishes into a snapshots directory and keeps the newest `keep` snapshots."""

    snapshots: SnapshotStore
    keep: int = 5

    def published_version(self) -> int | None:
        try:
            current = self.snapshots.current_name()
            manifest = None if current is None else self.snapshots.read(current).manifest
        except SnapshotError as exc:
            logger.error("live snapshot unreadable, republishing: %s", exc)
            return None
        # a snapshot published by `hmr seed` carries no version: it is version 0
        return None if manifest is None else int(manifest.get("dataset_version", 0))

    def live_dataset(self) -> tuple[Dataset, int] | None:
        try:
            current = self.snapshots.read_current()
        except SnapshotError as exc:
            logger.error("cannot import the live snapshot: %s", exc)
            return None
        if current is None:
            return None
        logger.info("importing snapshot %s into the write store", current.name)
        return dataset_from_snapshot(current), int(current.manifest.get("dataset_version", 0))

    def adopt(self, dataset: Dataset) -> None:
        try:
            current = self.snapshots.read_current()
        except SnapshotError:
            return  # the next publish encodes everything, as it would have anyway
        if current is not None:
            adopt_snapshot(dataset, current)
            prepare_publish(dataset, self.snapshots)
            release_free_memory()  # the files it read to prepare

    def publish(self, dataset: Dataset, version: int) -> str:
        snapshot = publish_dataset(self.snapshots, dataset, version)
        self.snapshots.prune(self.keep)
        release_free_memory()  # the files it built and dropped: else the process stays at peak
        return snapshot.name
