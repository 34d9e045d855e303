"""Audit views rebuilt by replaying the append-only event log: pending changes, batches, and
the net effect of a batch on each model it touched."""

from __future__ import annotations

from attrs import asdict, define, field

from horde_model_records import Category
from shared.wire import JsonObject

from .diff import field_diffs, is_critical
from .models import AuditEvent
from .wire import (
    AuditBatchDetail,
    AuditChange,
    AuditChangeEvent,
    BatchNetChange,
    BatchSummary,
    Domain,
    LicensingAuditEvent,
    ModelNetChange,
    NetOperation,
)


@define
class _Batch:
    batch_id: int
    batch_title: str | None = None
    approved_by: str | None = None
    approved_at: int | None = None
    applied_at: int | None = None
    approved: set[int] = field(factory=set)
    rejected: set[int] = field(factory=set)
    applied: set[int] = field(factory=set)
    first_event_id: int | None = None
    last_event_id: int | None = None

    def touch(self, event_id: int) -> None:
        if self.first_event_id is None:
            self.first_event_id = event_id
        self.last_event_id = event_id

    def summary(self) -> BatchSummary:
        return BatchSummary(
            batch_id=self.batch_id,
            batch_title=self.batch_title,
            approved_by=self.approved_by,
            approved_at=self.approved_at,
            applied_at=self.applied_at,
            approved_change_count=len(self.approved),
            rejected_change_count=len(self.rejected),
            applied_change_count=len(self.applied),
            total_change_count=len(self.approved | self.rejected),
            last_event_id=self.last_event_id,
        )


@define
class AuditReplay:
    """Changes and batches as the queue events tell them, in event order."""

    changes: dict[int, AuditChange] = field(factory=dict)
    batches: dict[int, _Batch] = field(factory=dict)
    model_events: list[AuditEvent] = field(factory=list)

    @classmethod
    def of(cls, events: list[AuditEvent]) -> AuditReplay:
        replay = cls()
        for event in events:
            if event.category == "pending_queue":
                replay._queue_event(event)
            else:
                replay.model_events.append(event)
        return replay

    def _batch(self, batch_id: int) -> _Batch:
        return self.batches.setdefault(batch_id, _Batch(batch_id=batch_id))

    def _split(self, event: AuditEvent, after: JsonObject) -> None:
        old = self._batch(after["original_batch_id"])
        new = self._batch(after["new_batch_id"])
        for cid in after.get("reassigned_change_ids", []):
            old.approved.discard(cid)
            new.approved.add(cid)
            if cid in self.changes:
                self.changes[cid].batch_id = new.batch_id
        old.touch(event.event_id)
        new.touch(event.event_id)

    def _purge(self, cid: int) -> None:
        # a purged change leaves the views (upstream keeps showing it as pending)
        self.changes.pop(cid, None)
        for batch in self.batches.values():
            batch.approved.discard(cid)
            batch.rejected.discard(cid)

    def _queue_event(self, event: AuditEvent) -> None:
        after = event.action
        action = after.get("action")
        if action == "batch_split":
            self._split(event, after)
            return
        cid = after.get("change_id")
        if not isinstance(cid, int):
            return
        if action == "purge":
            self._purge(cid)
            return
        change = self.changes.setdefault(cid, AuditChange(change_id=cid))
        change.events.append(
            AuditChangeEvent(
                event_id=event.event_id,
                timestamp=event.timestamp,
                action=str(action),
                logical_user_id=event.logical_user_id,
                payload=event.payload,
            )
        )
        when, who = event.timestamp, event.logical_user_id
        if action == "enqueue":
            change.operation = after.get("operation")
            change.category = Category(after["category"]) if after.get("category") else None
            change.model_name = after.get("model")
            change.requested_by, change.requested_at = who, when
            return
        batch_id = after.get("batch_id")
        batch = self._batch(batch_id) if isinstance(batch_id, int) else None
        if batch is not None:
            batch.touch(event.event_id)
        if action == "approve":
            change.status, change.approved_by, change.approved_at = "approved", who, when
            change.batch_id, change.batch_title = batch_id, after.get("batch_title")
            if batch is not None:
                batch.approved.add(cid)
                batch.batch_title = after.get("batch_title")
                batch.approved_by, batch.approved_at = who, when
        elif action == "reject":
            change.status, change.rejected_by, change.rejected_at = "rejected", who, when
            change.reject_reason, change.batch_id = after.get("reason"), batch_id
            change.batch_title = after.get("batch_title")
            if batch is not None:
                batch.rejected.add(cid)
                batch.batch_title = batch.batch_title or after.get("batch_title")
        elif action == "apply":
            change.status, change.applied_by, change.applied_at = "applied", who, when
            change.applied_job_id = after.get("job_id")
            if batch is not None:
                batch.applied.add(cid)
                batch.applied_at = when

    # --- views ---------------------------------------------------------------------------------

    def current(self) -> list[AuditChange]:
        pending = [c for c in self.changes.values() if c.status == "pending"]
        return sorted(pending, key=lambda c: (c.requested_at or 0, c.change_id), reverse=True)

    def batch_page(self, cursor: int | None, limit: int) -> tuple[list[BatchSummary], int | None]:
        ids = sorted((b for b in self.batches if cursor is None or b < cursor), reverse=True)
        page = ids[:limit]
        next_cursor = page[-1] if len(ids) > limit else None
        return [self.batches[b].summary() for b in page], next_cursor

    def batch_detail(self, batch_id: int, domain: Domain) -> AuditBatchDetail | None:
        batch = self.batches.get(batch_id)
        if batch is None:
            return None
        members = sorted(batch.approved | batch.rejected | batch.applied)
        summary = batch.summary()
        return AuditBatchDetail(
            **asdict(summary, recurse=False),
            domain=domain,
            changes=[self.changes[c] for c in members if c in self.changes],
        )

    def licensing_page(
        self, cursor: int | None, limit: int
    ) -> tuple[list[LicensingAuditEvent], int | None]:
        """Direct licensing writes (category `licensing`), newest first, ids below `cursor`."""
        found = [
            e
            for e in reversed(self.model_events)
            if e.category == "licensing" and (cursor is None or e.event_id < cursor)
        ]
        page = found[:limit]
        next_cursor = page[-1].event_id if len(found) > limit else None
        return [
            LicensingAuditEvent(
                event_id=e.event_id,
                timestamp=e.timestamp,
                editor_id=e.logical_user_id,
                operation=e.operation,  # type: ignore[arg-type]
                record_kind=e.payload.get("record_kind"),  # type: ignore[arg-type]
                record_key=e.model_name,
                before=e.payload.get("before"),
                after=e.payload.get("after"),
            )
            for e in page
        ], next_cursor

    def _state(self, category: str, model: str, upto: int) -> JsonObject | None:
        """A model's record as the model events say, counting events with id < upto.

        A model whose first event is an update or a delete (a seeded model) starts from that
        event's `before` record.
        """
        state: JsonObject | None = None
        seen = False
        for event in self.model_events:
            if event.category != category or event.model_name != model:
                continue
            payload = event.payload
            if not seen and event.operation in ("update", "delete"):
                state = payload.get("before")
            seen = True
            if event.event_id >= upto:
                break
            if event.operation == "create":
                state = payload.get("after")
            elif event.operation == "delete":
                state = None
            elif event.operation == "update" and payload.get("delta"):
                state = dict(state or {})
                for key, change in payload["delta"].items():
                    if change.get("new") is None:
                        state.pop(key, None)
                    else:
                        state[key] = change["new"]
        return state

    def net_changes(self, batch_id: int, domain: Domain, now: int) -> BatchNetChange | None:
        batch = self.batches.get(batch_id)
        if batch is None:
            return None
        start = batch.first_event_id or 0
        end = (batch.last_event_id or 0) + 1
        models: dict[tuple[Category, str], None] = {}
        for cid in sorted(batch.applied):
            change = self.changes.get(cid)
            if change is not None and change.category is not None and change.model_name:
                models[(change.category, change.model_name)] = None
        entries = [self._net_change(category, model, start, end) for category, model in models]
        counts = {net: sum(e.net_operation == net for e in entries) for net in _NET}
        return BatchNetChange(
            batch_id=batch_id,
            batch_title=batch.batch_title,
            model_changes=entries,
            models_added=counts["added"],
            models_modified=counts["modified"],
            models_deleted=counts["deleted"],
            models_unchanged=counts["unchanged"],
            total_field_changes=sum(len(e.field_diffs) for e in entries),
            has_critical_changes=any(e.is_critical for e in entries),
            domain=domain,
            generated_at=now,
        )

    def _net_change(self, category: Category, model: str, start: int, end: int) -> ModelNetChange:
        before = self._state(category.value, model, start)
        after = self._state(category.value, model, end)
        net: NetOperation
        if before is None and after is not None:
            net = "added"
        elif before is not None and after is None:
            net = "deleted"
        else:
            net = "unchanged" if before == after else "modified"
        diffs = field_diffs(before, after)
        return ModelNetChange(
            model_name=model,
            category=category,
            net_operation=net,
            before_state=before,
            after_state=after,
            field_diffs=diffs,
            is_critical=is_critical(category, diffs),
        )


_NET: tuple[NetOperation, ...] = ("added", "modified", "deleted", "unchanged")
