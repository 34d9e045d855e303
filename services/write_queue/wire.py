"""What the write service takes and answers: every request body, query and answer of its routes.

Each class is structured from the request (or unstructured into the answer) by shared.wire's
converter, and its OpenAPI schema is derived from it, so a field, limit or description is
written once, here.
"""

from __future__ import annotations

from typing import Any, Literal

from attrs import NOTHING, Factory, define, frozen

from horde_model_records import Category
from shared.wire import (
    MAX_ID,
    InputError,
    JsonObject,
    documented,
    get_converter,
    integer,
    items,
    text,
)

from .models import Change, ChangeFilter, Operation, Status

Domain = Literal["v2", "legacy"]
NetOperation = Literal["added", "modified", "deleted", "unchanged"]
ApplyErrorType = Literal[
    "PendingChangeNotFoundError",
    "PendingChangeStateError",
    "PendingChangePayloadError",
    "PendingChangeBackendError",
]

_TIME = "Unix seconds"
_JOB_ID = (
    "Reservation token (blank = none): without one a token is generated; retrying an applied "
    "change with the same token answers 200 again."
)


def _ids(description: str, *, max_items: int = 10_000, min_items: int = 0) -> Any:
    return items(
        max_items=max_items,
        min_items=min_items,
        ge=None if min_items == 0 else 1,
        le=MAX_ID,
        default=() if min_items == 0 else NOTHING,
        description=description,
    )


def _offset() -> Any:
    return integer(ge=0, default=0, description="Matches to skip.")


def _limit() -> Any:
    return integer(ge=1, le=500, default=50, description="Page size, 1–500.")


def _job_id() -> Any:
    return text(max_length=120, default=None, description=_JOB_ID)


def _filter_list(description: str) -> Any:
    return items(max_items=100, default=(), description=f"{description}; any of them matches.")


def _blank_is_none(value: str | None) -> str | None:
    return None if value is None else value.strip() or None


# --- queries -----------------------------------------------------------------------------------------


@frozen(kw_only=True)
class ChangesQuery:
    """Filters of a queue listing (AND-ed; a repeated key matches any of its values) and a page."""

    statuses: tuple[Status, ...] = _filter_list("Statuses")
    categories: tuple[Category, ...] = _filter_list("Categories")
    batch_id: int | None = integer(ge=1, le=MAX_ID, default=None, description="Only this batch.")
    model_name: str | None = text(
        min_length=1, max_length=200, default=None, description="Case-insensitive substring."
    )
    requested_by: tuple[str, ...] = _filter_list("Requestor user ids")
    offset: int = _offset()
    limit: int = _limit()

    @property
    def filter(self) -> ChangeFilter:
        return ChangeFilter.of(self)


@frozen(kw_only=True)
class MyChangesQuery:
    """The caller's own changes, filtered and paged."""

    statuses: tuple[Status, ...] = _filter_list("Statuses")
    categories: tuple[Category, ...] = _filter_list("Categories")
    offset: int = _offset()
    limit: int = _limit()

    def filter(self, user_id: str) -> ChangeFilter:
        return ChangeFilter.of(self, requested_by=(user_id,))


@frozen(kw_only=True)
class DiffsQuery:
    change_ids: tuple[int, ...] = items(
        min_items=1, max_items=100, ge=1, le=MAX_ID, description="Change ids (repeat the key)."
    )


@frozen(kw_only=True)
class JobQuery:
    job_id: str | None = _job_id()


@frozen(kw_only=True)
class AuditQuery:
    domain_override: Domain | None = documented(
        "Whose audit log to read (default: the canonical format).", default=None
    )


@frozen(kw_only=True)
class BatchesQuery:
    cursor: int | None = integer(
        ge=1, le=MAX_ID, default=None, description="Only batch ids below this."
    )
    limit: int = integer(ge=1, le=50, default=10, description="Page size, 1–50.")
    domain_override: Domain | None = documented(
        "Whose audit log to read (default: the canonical format).", default=None
    )


@frozen(kw_only=True)
class LicensingAuditQuery:
    cursor: int | None = integer(
        ge=1, le=MAX_ID, default=None, description="Only event ids below this."
    )
    limit: int = integer(ge=1, le=100, default=20, description="Page size, 1–100.")
    domain_override: Domain | None = documented(
        "Whose audit log to read (default: the canonical format).", default=None
    )


# --- bodies ------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class PendingBatchRequest:
    """Approve and/or reject pending changes together. At least one id; no id in both lists."""

    batch_title: str = text(min_length=1, max_length=120, description="Trimmed; not blank.")
    approved_ids: tuple[int, ...] = _ids("Pending changes to approve (ids ≤ 0 are dropped).")
    rejected_ids: tuple[int, ...] = _ids("Pending changes to reject (ids ≤ 0 are dropped).")
    reject_reason: str | None = text(
        max_length=500, default=None, description="Required (not blank) when rejecting."
    )

    def __attrs_post_init__(self) -> None:
        if _blank_is_none(self.batch_title) is None:
            raise InputError("value_error", "batch_title must not be blank", field="batch_title")
        if not self.approved or not self.rejected:
            if not (self.approved or self.rejected):
                raise InputError(
                    "value_error", "Provide at least one approved or rejected change id."
                )
        both = sorted(set(self.approved) & set(self.rejected))
        if both:
            raise InputError(
                "value_error", f"Change ids cannot be both approved and rejected: {both}"
            )
        if self.rejected and self.reason is None:
            raise InputError(
                "value_error",
                "A reject_reason is required when rejecting changes.",
                field="reject_reason",
            )

    @property
    def title(self) -> str:
        return self.batch_title.strip()

    @property
    def approved(self) -> list[int]:
        return sorted({i for i in self.approved_ids if i > 0})

    @property
    def rejected(self) -> list[int]:
        return sorted({i for i in self.rejected_ids if i > 0})

    @property
    def reason(self) -> str | None:
        return _blank_is_none(self.reject_reason)


@frozen(kw_only=True)
class PurgePendingChangesRequest:
    """Which changes to delete, of any status: filters are AND-ed, lists match any of their
    values. At least one filter, or purge_all."""

    statuses: tuple[Status, ...] = _filter_list("Statuses")
    categories: tuple[Category, ...] = _filter_list("Categories")
    model_name: str | None = text(
        max_length=200, default=None, description="Case-insensitive substring."
    )
    requested_by: tuple[str, ...] = _filter_list("Requestor user ids")
    purge_all: bool = documented("Delete every change when no filter is given.", default=False)
    dry_run: bool = documented("Remove nothing; answer what would be removed.", default=False)

    def __attrs_post_init__(self) -> None:
        if self.filter.is_empty and not self.purge_all:
            raise InputError(
                "value_error",
                "Provide at least one filter or set purge_all=true to clear the entire queue.",
            )

    @property
    def filter(self) -> ChangeFilter:
        return ChangeFilter.of(self, model_name=_blank_is_none(self.model_name))


@frozen(kw_only=True)
class ApplyPendingChangeRequest:
    """Options of a single apply; `{}` is fine."""

    job_id: str | None = _job_id()


@frozen(kw_only=True)
class ApplyPendingChangesRequest:
    """Apply several approved changes in one request (one snapshot)."""

    change_ids: tuple[int, ...] = _ids(
        "Applied in this order (duplicates dropped), stopping at the first failure.",
        min_items=1,
    )
    job_id: str | None = _job_id()
    allow_mixed_batch: bool = documented(
        "Skip the check that every change exists and all share one batch.", default=False
    )


# --- answers -----------------------------------------------------------------------------------------


@frozen(kw_only=True)
class PendingQueuePage:
    """One page of changes, by change_id ascending."""

    items: list[Change]
    total: int = documented("Matches before paging.", minimum=0)
    offset: int
    limit: int

    @classmethod
    def of(cls, changes: list[Change], offset: int, limit: int) -> PendingQueuePage:
        return cls(
            items=changes[offset : offset + limit], total=len(changes), offset=offset, limit=limit
        )


@frozen(kw_only=True)
class FieldDiff:
    """One leaf difference between two records."""

    field_path: str = documented("Dotted path of a leaf (nested objects recursed; lists whole).")
    old_value: Any
    new_value: Any
    change_type: Literal["added", "removed", "modified"]


@frozen(kw_only=True)
class PendingChangeDiff:
    """What a change would do to the live record."""

    change_id: int
    category: Category
    model_name: str
    operation: Operation
    current_state: JsonObject | None = documented("The live record, or null.")
    proposed_state: JsonObject | None = documented("The change's payload.")
    net_operation: NetOperation
    field_diffs: list[FieldDiff]
    is_critical: bool = documented("A field the category marks critical changes.")
    fields_added: list[str]
    fields_removed: list[str]
    fields_modified: list[str]


@frozen(kw_only=True)
class DiffError:
    """An id that names no change."""

    change_id: int
    error: str = documented("What went wrong.", example="Change not found")
    error_type: str = documented("The error's kind.", example="NotFound")


@frozen(kw_only=True)
class PendingChangeDiffPage:
    """The diffs of several changes; unknown ids are listed in errors."""

    diffs: list[PendingChangeDiff]
    total: int = documented("Ids requested.")
    errors: list[DiffError]


@frozen(kw_only=True)
class Refusal:
    """A change left as it was, and why."""

    change_id: int
    reason: str = documented("The rule the request would have broken.")


@frozen(kw_only=True)
class PendingBatchResult:
    """The changes approved and rejected, and those refused (the caller's own proposals)."""

    batch_id: int | None = documented("The open batch the approved changes joined, if any.")
    batch_title: str
    approved: list[Change]
    rejected: list[Change]
    refused: list[Refusal] = documented(
        "Changes the caller proposed: under two-person review another approver must approve "
        "them. They stay pending.",
        default=Factory(list),
    )


@frozen(kw_only=True)
class PurgePendingChangesResponse:
    """What was (or, in a dry run, would be) removed."""

    removed_count: int = documented("How many changes.", minimum=0)
    removed_change_ids: list[int]
    dry_run: bool


@frozen(kw_only=True)
class BatchSplit:
    """Approved changes left in an applied batch move to a new batch."""

    original_batch_id: int
    new_batch_id: int
    reassigned_count: int


@frozen(kw_only=True)
class ApplySingleChangeResponse:
    """The applied change (nulls omitted) and the batch split it caused, if any."""

    record: Change
    batch_split_occurred: bool = documented("Approved changes left in the batch moved on.")
    batch_split_original_batch_id: int | None = None
    batch_split_new_batch_id: int | None = None
    batch_split_reassigned_count: int | None = None


@frozen(kw_only=True)
class ApplyPendingChangesResponse:
    """The changes applied (nulls omitted) and, when one failed, which and why."""

    applied: list[Change]
    failed_change_id: int | None = None
    failed_error: str | None = None
    failed_error_type: ApplyErrorType | None = None
    refused: list[Refusal] | None = documented(
        "Changes the caller proposed, left approved: under two-person review another approver "
        "must apply them. Absent when none.",
        default=None,
    )
    batch_split_occurred: bool = documented("Approved changes left in the batch moved on.")
    batch_split_original_batch_id: int | None = None
    batch_split_new_batch_id: int | None = None
    batch_split_reassigned_count: int | None = None


def split_fields(split: BatchSplit | None) -> dict[str, Any]:
    """The batch_split_* fields of an apply answer."""
    if split is None:
        return {"batch_split_occurred": False}
    return {
        "batch_split_occurred": True,
        "batch_split_original_batch_id": split.original_batch_id,
        "batch_split_new_batch_id": split.new_batch_id,
        "batch_split_reassigned_count": split.reassigned_count,
    }


@frozen(kw_only=True)
class MyRoles:
    """The caller and their roles."""

    user_id: str = documented("AI-Horde user id", example="1234")
    username: str = documented("AI-Horde user name", example="Alice#1234")
    roles: list[str] = documented("Sorted; empty for a valid key without a role.")
    is_approver: bool
    is_requestor: bool
    is_license_editor: bool = False


@frozen(kw_only=True)
class SnapshotName:
    """A published snapshot."""

    name: str = documented("The snapshot's directory name.", example="000042-3f9a1c")


# --- audit answers -----------------------------------------------------------------------------------


@frozen(kw_only=True)
class AuditChangeEvent:
    """One queue event of a change."""

    event_id: int
    timestamp: int = documented(_TIME)
    action: str = documented("What happened.", example="approve")
    logical_user_id: str | None
    payload: JsonObject


@define(kw_only=True)
class AuditChange:
    """A change as its queue events tell it (filled in while the log is replayed)."""

    change_id: int
    status: Status = "pending"
    operation: Operation | None = None
    category: Category | None = None
    model_name: str | None = None
    requested_by: str | None = None
    requested_at: int | None = None
    approved_by: str | None = None
    approved_at: int | None = None
    rejected_by: str | None = None
    rejected_at: int | None = None
    reject_reason: str | None = None
    applied_by: str | None = None
    applied_at: int | None = None
    applied_job_id: str | None = None
    batch_id: int | None = None
    batch_title: str | None = None
    events: list[AuditChangeEvent] = Factory(list)


@frozen(kw_only=True)
class BatchSummary:
    """A batch as the queue events tell it."""

    batch_id: int
    batch_title: str | None
    approved_by: str | None
    approved_at: int | None
    applied_at: int | None = documented("The latest apply.")
    approved_change_count: int
    rejected_change_count: int
    applied_change_count: int
    total_change_count: int = documented("Approved and rejected changes.")
    last_event_id: int | None


@frozen(kw_only=True)
class AuditCurrent:
    """Changes still pending, newest first."""

    domain: Domain
    pending_changes: list[AuditChange]
    total_pending: int
    generated_at: int = documented(_TIME)


@frozen(kw_only=True)
class AuditBatchPage:
    """Batches, newest first."""

    domain: Domain
    batches: list[BatchSummary]
    next_cursor: int | None = documented("Pass as `cursor` for the next page; null on the last.")


@frozen(kw_only=True)
class LicensingAuditEvent:
    """One direct licensing write (spec 06 §1.4): what the editor wrote, before and after."""

    event_id: int
    timestamp: int = documented(_TIME)
    editor_id: str | None
    operation: Literal["create", "update", "delete"]
    record_kind: Literal["license_definition", "licensed_asset"]
    record_key: str = documented(
        "A licence id, or `<asset_kind>:<asset_identifier>`.", example="MIT"
    )
    before: JsonObject | None
    after: JsonObject | None


@frozen(kw_only=True)
class LicensingAuditPage:
    """Direct licensing writes, newest first."""

    domain: Domain
    events: list[LicensingAuditEvent]
    next_cursor: int | None = documented("Pass as `cursor` for the next page; null on the last.")


@frozen(kw_only=True)
class AuditBatchDetail(BatchSummary):
    """A batch and its changes."""

    domain: Domain
    changes: list[AuditChange]


@frozen(kw_only=True)
class ModelNetChange:
    """What a batch did to one model."""

    model_name: str
    category: Category
    net_operation: NetOperation
    before_state: JsonObject | None = documented("Before the batch's first event.")
    after_state: JsonObject | None = documented("After the batch's last event.")
    field_diffs: list[FieldDiff]
    is_critical: bool


@frozen(kw_only=True)
class BatchNetChange:
    """The net effect of a batch's applied changes on each model it touched."""

    batch_id: int
    batch_title: str | None
    model_changes: list[ModelNetChange]
    models_added: int
    models_modified: int
    models_deleted: int
    models_unchanged: int
    total_field_changes: int
    has_critical_changes: bool
    domain: Domain
    generated_at: int = documented(_TIME)


def _without_nulls(data: JsonObject) -> JsonObject:
    return {key: value for key, value in data.items() if value is not None}


def compact(answer: Change | ApplySingleChangeResponse | ApplyPendingChangesResponse) -> JsonObject:
    """A queued change or an apply answer as sent: null fields left out, in the answer and in the
    changes it carries (their payloads untouched)."""
    data = _without_nulls(get_converter().unstructure(answer))
    if isinstance(data.get("record"), dict):
        data["record"] = _without_nulls(data["record"])
    if isinstance(data.get("applied"), list):
        data["applied"] = [_without_nulls(change) for change in data["applied"]]
    return data
