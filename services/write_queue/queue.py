"""The review queue: propose, approve or reject in batches, apply, purge (spec 03 §5-9).

Every state change runs under one lock and one SQLite transaction. An apply commits the new
records, statuses and audit events together, then publishes one snapshot; if the process dies in
between, the next start publishes what the database holds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
from attrs import define, frozen

from horde_model_records import Category, legacy_to_v2, structure_record, unstructure_record
from horde_model_records.text import model_name_of
from shared.dataset import (
    Dataset,
    dataset_from_snapshot,
    delete_record,
    import_legacy_dir,
    publish_dataset,
    upsert_record,
)
from shared.errors import BadRequest, NotFound, Unavailable
from shared.snapshot import SnapshotError, SnapshotStore

from .models import Change, Identity
from .store import Store

logger = logging.getLogger(__name__)

Json = dict[str, Any]


class ApplyFailure(Exception):
    """One change of an apply request could not be applied; `kind` names the error type."""

    def __init__(self, change_id: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.change_id = change_id
        self.kind = kind
        self.message = message


@frozen
class ApplyOutcome:
    applied: list[Change]
    failure: ApplyFailure | None = None
    split: tuple[int, int, int] | None = None  # (original batch, new batch, reassigned count)

    def to_wire(self) -> Json:
        body: Json = {"applied": [c.to_wire(omit_nulls=True) for c in self.applied]}
        if self.failure is not None:
            body["failed_change_id"] = self.failure.change_id
            body["failed_error"] = self.failure.message
            body["failed_error_type"] = self.failure.kind
        body.update(split_fields(self.split))
        return body


def is_legacy_change(change: Change) -> bool:
    """Whether a change was proposed through v1 (its payload is a legacy record)."""
    route = (change.request_metadata or {}).get("route", "")
    return isinstance(route, str) and "_legacy" in route


def split_fields(split: tuple[int, int, int] | None) -> Json:
    if split is None:
        return {"batch_split_occurred": False}
    return {
        "batch_split_occurred": True,
        "batch_split_original_batch_id": split[0],
        "batch_split_new_batch_id": split[1],
        "batch_split_reassigned_count": split[2],
    }


def _now() -> int:
    return int(time.time())


@define
class WriteQueue:
    """The single writer: owns the in-memory dataset that mirrors the database."""

    store: Store
    snapshots: SnapshotStore
    domain: str  # canonical format, recorded on audit events
    keep_snapshots: int = 5
    clock: Callable[[], int] = _now
    dataset: Dataset | None = None
    lock: asyncio.Lock = attrs.Factory(asyncio.Lock)
    version: int = 0  # dataset version the database holds
    published_version: int | None = None  # dataset version the live snapshot holds

    # --- start-up ------------------------------------------------------------------------------

    async def astart(self, seed_dir: Path | None) -> None:
        """Load the dataset (importing CURRENT or a seed the first time), recover, republish."""
        async with self.lock:
            if not await self.store.has_dataset():
                dataset, version = await asyncio.to_thread(self._initial_dataset, seed_dir)
                async with self.store.transaction():
                    await self.store.write_dataset(dataset)
                    await self.store.set_counter("dataset_version", version)
            self.dataset = await self.store.read_dataset()
            await self._recover_applying()
            await self._publish_if_behind()

    def _initial_dataset(self, seed_dir: Path | None) -> tuple[Dataset, int]:
        """The first dataset and its version: the live snapshot's, else a seed (version 0)."""
        try:
            current = self.snapshots.read_current()
        except SnapshotError as exc:
            logger.error("cannot import the live snapshot: %s", exc)
            current = None
        if current is not None:
            logger.info("importing snapshot %s into the write store", current.name)
            return dataset_from_snapshot(current), int(current.manifest.get("dataset_version", 0))
        if seed_dir is None:
            raise RuntimeError("empty data dir and no seed dir: run `hmr seed` first")
        dataset, problems = import_legacy_dir(seed_dir)
        for problem in problems:
            logger.warning("seed: %s", problem)
        return dataset, 0

    async def _recover_applying(self) -> None:
        stuck = await self.store.list_changes(statuses=["applying"])
        if not stuck:
            return
        async with self.store.transaction():
            for data in stuck:
                change = Change.from_wire(data)
                logger.warning(
                    "change %s was applying at shutdown: back to approved", change.change_id
                )
                await self.store.update_change(
                    change.evolve(status="approved", applied_job_id=None).to_wire()
                )

    async def _publish_if_behind(self) -> None:
        version = self.version = await self.store.counter("dataset_version")
        try:
            current = self.snapshots.current_name()
            manifest = None if current is None else self.snapshots.read(current).manifest
        except SnapshotError as exc:
            logger.error("live snapshot unreadable, republishing: %s", exc)
            manifest = None
        # a snapshot published by `hmr seed` carries no version: it is version 0
        if manifest is None or manifest.get("dataset_version", 0) != version:
            await self._apublish(version)
        else:
            self.published_version = version

    async def _apublish(self, version: int) -> None:
        assert self.dataset is not None
        snapshot = await asyncio.to_thread(publish_dataset, self.snapshots, self.dataset, version)
        self.published_version = version
        await asyncio.to_thread(self.snapshots.prune, self.keep_snapshots)
        logger.info("published snapshot %s (dataset version %s)", snapshot.name, version)

    async def _apublish_pending(self) -> None:
        """Publish what the database holds if the live snapshot is behind it.

        Runs after every commit and before every apply, so a publish that failed once (full
        disk, I/O error) is retried by the next apply; the committed changes stay applied.
        """
        if self.published_version == self.version:
            return
        try:
            await self._apublish(self.version)
        except OSError as exc:
            logger.exception("publishing dataset version %s failed", self.version)
            raise Unavailable(
                "The change is applied but its snapshot could not be published yet "
                f"({exc.__class__.__name__}); it is retried on the next apply and at restart."
            ) from None

    # --- reads ---------------------------------------------------------------------------------

    def live(self) -> Dataset:
        if self.dataset is None:
            raise Unavailable("The write service is still starting.")
        return self.dataset

    def live_legacy_record(self, category: Category, name: str) -> Json | None:
        """The record's entry in the v1 view (text: the base-name db.json entry)."""
        view = self.live().categories[category].legacy
        return None if view is None else view.get(name)

    def live_record(self, category: Category, name: str) -> Json | None:
        record = self.live().categories[category].records.get(name)
        return None if record is None else unstructure_record(record)

    async def aget(self, change_id: int) -> Change:
        data = await self.store.get_change(change_id)
        if data is None:
            raise NotFound("Change not found")
        return Change.from_wire(data)

    async def alist(self, statuses: Iterable[str] = ()) -> list[Change]:
        return [Change.from_wire(d) for d in await self.store.list_changes(statuses=statuses)]

    # --- audit ---------------------------------------------------------------------------------

    async def _audit(
        self,
        category: str,
        model_name: str,
        operation: str,
        user_id: str | None,
        payload: Json,
        request_id: str | None = None,
    ) -> None:
        event = {
            "timestamp": self.clock(),
            "domain": self.domain,
            "category": category,
            "model_name": model_name,
            "operation": operation,
            "logical_user_id": user_id,
            "request_id": request_id,
            "payload": {"before": None, "after": None, "delta": None, **payload},
        }
        await self.store.append_audit(event)

    async def _queue_event(self, who: Identity, model: str, after: Json) -> None:
        await self._audit("pending_queue", model, "update", who.user_id, {"after": after})

    # --- propose -------------------------------------------------------------------------------

    async def aenqueue(
        self,
        who: Identity,
        category: Category,
        operation: str,
        name: str,
        payload: Json | None,
        route: str,
    ) -> Change:
        now = self.clock()
        related = None
        if category is Category.text_generation:
            related = ["aphrodite/" + name, "koboldcpp/" + model_name_of(name)]
        async with self.lock, self.store.transaction():
            change = Change(
                change_id=await self.store.next_value("change_id"),
                category=category,
                model_name=name,
                operation=operation,
                payload=payload,
                requested_by=who.user_id,
                requested_username=who.username,
                requested_at=now,
                status="pending",
                updated_at=now,
                request_metadata={"route": route},
                related_models=related,
            )
            await self.store.insert_change(change.to_wire())
            await self._queue_event(
                who,
                str(change.change_id),
                {
                    "action": "enqueue",
                    "change_id": change.change_id,
                    "operation": operation,
                    "category": category.value,
                    "model": name,
                },
            )
        return change

    # --- review --------------------------------------------------------------------------------

    async def _open_batch(self) -> int:
        approved = await self.store.list_changes(statuses=["approved"])
        for data in approved:
            if data.get("batch_id") is not None:
                return int(data["batch_id"])
        return await self.store.next_value("batch_id")

    async def abatch(
        self,
        who: Identity,
        title: str,
        approved_ids: list[int],
        rejected_ids: list[int],
        reason: str | None,
    ) -> Json:
        """Approve and reject pending changes together; nothing changes if any id is unusable."""
        now = self.clock()
        async with self.lock, self.store.transaction():
            changes: dict[int, Change] = {}
            for cid in sorted(set(approved_ids) | set(rejected_ids)):
                data = await self.store.get_change(cid)
                if data is None:
                    raise BadRequest(f"Change {cid} does not exist.")
                change = Change.from_wire(data)
                if change.status != "pending":
                    raise BadRequest(f"Change {cid} is not pending (status={change.status}).")
                changes[cid] = change
            batch_id = await self._open_batch() if approved_ids else None
            approved, rejected = [], []
            for cid in approved_ids:
                change = changes[cid].evolve(
                    status="approved",
                    batch_id=batch_id,
                    batch_title=title,
                    approved_by=who.user_id,
                    approved_username=who.username,
                    approved_at=now,
                    updated_at=now,
                )
                await self.store.update_change(change.to_wire())
                await self._queue_event(
                    who,
                    str(cid),
                    {
                        "action": "approve",
                        "change_id": cid,
                        "batch_id": batch_id,
                        "batch_title": title,
                    },
                )
                approved.append(change)
            for cid in rejected_ids:
                change = changes[cid].evolve(
                    status="rejected",
                    batch_id=batch_id,
                    batch_title=title,
                    rejected_by=who.user_id,
                    rejected_username=who.username,
                    rejected_at=now,
                    reject_reason=reason,
                    updated_at=now,
                )
                await self.store.update_change(change.to_wire())
                await self._queue_event(
                    who,
                    str(cid),
                    {
                        "action": "reject",
                        "change_id": cid,
                        "batch_id": batch_id,
                        "batch_title": title,
                        "reason": reason,
                    },
                )
                rejected.append(change)
        return {
            "batch_id": batch_id,
            "batch_title": title,
            "approved": [c.to_wire() for c in approved],
            "rejected": [c.to_wire() for c in rejected],
        }

    async def apurge(self, who: Identity, matches: Callable[[Change], bool], dry_run: bool) -> Json:
        async with self.lock, self.store.transaction():
            doomed = [c for c in await self.alist() if matches(c)]
            if not dry_run:
                await self.store.delete_changes(c.change_id for c in doomed)
                for c in doomed:
                    await self._queue_event(
                        who,
                        str(c.change_id),
                        {
                            "action": "purge",
                            "change_id": c.change_id,
                            "category": c.category.value,
                            "model": c.model_name,
                            "requested_by": c.requested_by,
                            "purged_by_username": who.username,
                        },
                    )
        return {
            "removed_count": len(doomed),
            "removed_change_ids": [c.change_id for c in doomed],
            "dry_run": dry_run,
        }

    # --- apply ---------------------------------------------------------------------------------

    async def aapply(
        self, who: Identity, change_ids: list[int], job_id: str | None
    ) -> ApplyOutcome:
        """Apply changes in order, stopping at the first failure; one snapshot for the lot."""
        job = job_id or f"apply-{change_ids[0]}-{secrets.token_hex(16)}"
        async with self.lock:
            await self._apublish_pending()
            dataset = self.live()
            todo: list[Change] = []
            done: list[Change] = []
            failure: ApplyFailure | None = None
            for cid in change_ids:
                data = await self.store.get_change(cid)
                if data is None:
                    failure = ApplyFailure(
                        cid, "PendingChangeNotFoundError", f"Change {cid} not found."
                    )
                    break
                change = Change.from_wire(data)
                if change.status == "applied" and change.applied_job_id == job:
                    done.append(change)  # a retry of the same job: already done, nothing twice
                    continue
                if change.status == "applying" and change.applied_job_id != job:
                    failure = ApplyFailure(
                        cid,
                        "PendingChangeStateError",
                        f"Change {cid} is already reserved for apply (job_id={change.applied_job_id}).",
                    )
                    break
                if change.status not in ("approved", "applying"):
                    failure = ApplyFailure(
                        cid,
                        "PendingChangeStateError",
                        f"Change {cid} is not approved (status={change.status}).",
                    )
                    break
                if change.payload is None:
                    failure = ApplyFailure(
                        cid, "PendingChangePayloadError", f"Change {cid} has no payload."
                    )
                    break
                try:
                    dataset = self._applied(dataset, change, who)
                except ApplyFailure as exc:
                    failure = exc
                    break
                todo.append(change)
            split = None
            if todo:
                await self._reserve(todo, job)
                try:
                    applied, split = await self._commit(dataset, todo, who, job)
                except BaseException:
                    await self._release(todo)  # nothing was committed: back to approved
                    raise
                done.extend(applied)
                await self._apublish_pending()
        return ApplyOutcome(applied=done, failure=failure, split=split)

    def _applied(self, dataset: Dataset, change: Change, who: Identity) -> Dataset:
        """The dataset with one change applied (pure; raises ApplyFailure)."""
        now = self.clock()
        category = change.category
        if change.operation == "delete":
            if change.model_name not in dataset.categories[category].records:
                raise ApplyFailure(
                    change.change_id,
                    "PendingChangeBackendError",
                    f"Model '{change.model_name}' not found in category '{category.value}'",
                )
            return delete_record(dataset, category, change.model_name, now)
        legacy_record = None
        payload = dict(change.payload or {})
        if is_legacy_change(change):
            legacy_record = payload
            try:
                payload = unstructure_record(legacy_to_v2(category, legacy_record))
            except Exception as exc:  # noqa: BLE001 -- a stored payload that no longer converts
                raise ApplyFailure(
                    change.change_id,
                    "PendingChangePayloadError",
                    f"Change {change.change_id}: {exc}",
                ) from None
        existing = dataset.categories[category].records.get(change.model_name)
        metadata = dict(payload.get("metadata") or {})
        if existing is not None:
            old = unstructure_record(existing).get("metadata", {})
            for key in ("created_at", "created_by"):
                if old.get(key) is not None:
                    metadata[key] = old[key]
        metadata.setdefault("created_at", now)
        metadata["updated_at"] = now
        metadata["updated_by"] = who.username
        payload["metadata"] = metadata
        try:
            record = structure_record(category, payload)
        except Exception as exc:  # noqa: BLE001 -- a stored payload that no longer validates
            raise ApplyFailure(
                change.change_id, "PendingChangePayloadError", f"Change {change.change_id}: {exc}"
            ) from None
        return upsert_record(dataset, category, record, now, legacy_record)

    async def _reserve(self, changes: list[Change], job: str) -> None:
        async with self.store.transaction():
            for change in changes:
                await self.store.update_change(
                    change.evolve(status="applying", applied_job_id=job).to_wire()
                )

    async def _release(self, changes: list[Change]) -> None:
        async with self.store.transaction():
            for change in changes:
                await self.store.update_change(
                    change.evolve(status="approved", applied_job_id=None).to_wire()
                )

    async def _commit(
        self, dataset: Dataset, changes: list[Change], who: Identity, job: str
    ) -> tuple[list[Change], tuple[int, int, int] | None]:
        now = self.clock()
        before = self.live()
        touched = {c.category for c in changes}
        applied: list[Change] = []
        async with self.store.transaction():
            for category in touched:
                await self.store.write_category(category, dataset.categories[category])
            for change in changes:
                done = change.evolve(
                    status="applied",
                    applied_at=now,
                    applied_by=who.user_id,
                    applied_username=who.username,
                    applied_job_id=job,
                    updated_at=now,
                )
                await self.store.update_change(done.to_wire())
                await self._model_event(before, dataset, change, who, job)
                await self._queue_event(
                    who,
                    str(change.change_id),
                    {
                        "action": "apply",
                        "change_id": change.change_id,
                        "batch_id": change.batch_id,
                        "job_id": job,
                    },
                )
                applied.append(done)
            split = await self._split_batches(who, {c.batch_id for c in changes} - {None}, now)
            self.version = await self.store.next_value("dataset_version")
        self.dataset = dataset
        return applied, split

    async def _model_event(
        self, before: Dataset, after: Dataset, change: Change, who: Identity, job: str
    ) -> None:
        category = change.category
        old = before.categories[category].records.get(change.model_name)
        new = after.categories[category].records.get(change.model_name)
        old_wire = None if old is None else unstructure_record(old)
        new_wire = None if new is None else unstructure_record(new)
        if change.operation == "delete":
            operation, payload = "delete", {"before": old_wire}
        elif old_wire is None:
            operation, payload = "create", {"after": new_wire}
        else:
            delta = {
                key: {"old": old_wire.get(key), "new": (new_wire or {}).get(key)}
                for key in sorted(set(old_wire) | set(new_wire or {}))
                if old_wire.get(key) != (new_wire or {}).get(key)
            }
            # the whole previous record too: audit views can then tell an update from a create
            operation, payload = "update", {"before": old_wire, "delta": delta}
        await self._audit(category.value, change.model_name, operation, who.user_id, payload, job)

    async def _split_batches(
        self, who: Identity, batch_ids: set[int], now: int
    ) -> tuple[int, int, int] | None:
        """Move approved changes left behind in the touched batches to one new open batch."""
        left: list[Change] = []
        for batch_id in sorted(batch_ids):
            left += [
                Change.from_wire(d) for d in await self.store.list_changes(["approved"], batch_id)
            ]
        if not left:
            return None
        new_batch = await self.store.next_value("batch_id")
        for change in left:
            await self.store.update_change(
                change.evolve(batch_id=new_batch, updated_at=now).to_wire()
            )
        original = min(batch_ids)
        await self._queue_event(
            who,
            "queue",
            {
                "action": "batch_split",
                "original_batch_id": original,
                "new_batch_id": new_batch,
                "reassigned_change_ids": [c.change_id for c in left],
                "reason": "partial_apply",
            },
        )
        return (original, new_batch, len(left))
