"""What the stats service answers from: the snapshot's records and AI-Horde's last good data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from attrs import define, field

from horde_model_records import ALL_CATEGORIES, Category
from shared.snapshot import Snapshot, v2_path

Json = dict[str, Any]


@define
class StatsModel:
    """The records of one snapshot, each category parsed off the event loop when a request
    first needs it: most snapshots are asked for one or two categories' statistics, and at 100x
    the real data parsing them all at load took seconds and hundreds of MB."""

    snapshot_name: str
    snapshot_id: int
    created_at: int
    snapshot: Snapshot
    digests: dict[Category, str]  # the v2 file's digest, per category
    _parsing: dict[Category, asyncio.Future[list[Json]]] = field(factory=dict)

    @classmethod
    def build(cls, snapshot: Snapshot) -> StatsModel:
        global _parsed
        listing = snapshot.manifest["files"]
        digests = {c: str(listing[v2_path(c)]["sha256"]) for c in ALL_CATEGORIES}
        kept = set(digests.values())
        _parsed = {d: records for d, records in _parsed.items() if d in kept}
        return cls(
            snapshot_name=snapshot.name,
            snapshot_id=snapshot.id,
            created_at=int(snapshot.manifest.get("created_at", 0)),
            snapshot=snapshot,
            digests=digests,
        )

    async def arecords(self, category: Category) -> list[Json]:
        """The category's records in dataset order (never mutated: callers share the list)."""
        hit = _parsed.get(self.digests[category])
        if hit is not None:
            return hit
        parsing = self._parsing.get(category)
        if parsing is None:
            loop = asyncio.get_running_loop()
            parsing = self._parsing[category] = loop.run_in_executor(None, self._parse, category)
        try:
            return await parsing
        except Exception:
            self._parsing.pop(category, None)  # a failed parse is tried again by the next request
            raise

    def _parse(self, category: Category) -> list[Json]:
        records = list(json.loads(self.snapshot.files[v2_path(category)]).values())
        _parsed[self.digests[category]] = records
        return records


#: v2 file digest -> its records, parsed for the snapshots built since the one built last: a
#: publish parses again only the categories it changed, when they are asked for
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
