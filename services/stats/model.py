"""What the stats service answers from: the snapshot's records and AI-Horde's last good data."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from attrs import define, field, frozen

from horde_model_records import ALL_CATEGORIES, Category
from shared.snapshot import Snapshot, v2_path

Json = dict[str, Any]


@frozen
class StatsModel:
    """The records of one snapshot, parsed once when it is loaded."""

    snapshot_name: str
    snapshot_id: int
    created_at: int
    records: dict[Category, list[Json]]

    @classmethod
    def build(cls, snapshot: Snapshot) -> StatsModel:
        global _parsed
        listing = snapshot.manifest["files"]
        digests = {c: listing[v2_path(c)]["sha256"] for c in ALL_CATEGORIES}
        records = {
            c: _parsed.get(d) or list(json.loads(snapshot.files[v2_path(c)]).values())
            for c, d in digests.items()
        }
        _parsed = {d: records[c] for c, d in digests.items()}
        return cls(
            snapshot_name=snapshot.name,
            snapshot_id=snapshot.id,
            created_at=int(snapshot.manifest.get("created_at", 0)),
            records=records,
        )


#: v2 file digest -> its records, parsed for the snapshot built last: a publish re-parses only
#: the categories it changed (the lists are never mutated)
_parsed: dict[str, list[Json]] = {}


@define
class ResultCache:
    """Computed answers keyed by request; emptied when the snapshot or the AI-Horde data changes."""

    epoch: tuple[str, int] | None = None
    results: dict[tuple[Any, ...], Any] = field(factory=dict)

    max_entries: int = 2048  # bounds memory whatever the requests ask for

    def get(self, epoch: tuple[str, int], key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if epoch != self.epoch or len(self.results) >= self.max_entries:
            self.epoch, self.results = epoch, {}
        if key not in self.results:
            self.results[key] = compute()
        return self.results[key]
