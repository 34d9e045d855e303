"""The write service's domain values: who is calling, a proposed change, and which changes a
filter selects."""

from __future__ import annotations

import json
import unicodedata
from sqlite3 import Row
from typing import Any, Literal

import attrs
from attrs import evolve, frozen

from horde_model_records import Category
from shared.openapi import any_record_schema
from shared.wire import JsonObject, documented, get_converter

Status = Literal["pending", "approved", "applying", "applied", "rejected"]
Operation = Literal["create", "update", "delete"]
#: how a change's payload is written: a v2 record, or a legacy record proposed through /v1
PayloadFormat = Literal["v2", "legacy"]

STATUSES: tuple[Status, ...] = ("pending", "approved", "applying", "applied", "rejected")
OPERATIONS: tuple[Operation, ...] = ("create", "update", "delete")

#: field metadata of values the service keeps but never sends
INTERNAL = {"wire": False}

_TIME = "Unix seconds"


@frozen(kw_only=True)
class Identity:
    """Who sent a request: an AI-Horde user and the roles the deployment gives them."""

    user_id: str
    username: str
    roles: frozenset[str]

    @property
    def is_approver(self) -> bool:
        return "approver" in self.roles

    @property
    def is_requestor(self) -> bool:
        return "requestor" in self.roles


@frozen(kw_only=True)
class Change:
    """A proposed change: what to write, who asked, and where it stands in review."""

    __openapi_name__ = "PendingChangeRecord"

    change_id: int = documented("Monotonic, never reused.", minimum=1)
    resource_kind: Literal["model_reference", "image_baseline", "text_guidance"] = documented(
        "What the change writes: a model record, or a change set of a catalog.",
        default="model_reference",
    )
    resource_id: str | None = documented(
        "A catalog change set's UUID (model_name is `baseline:<uuid>` / `guidance:<uuid>`).",
        default=None,
    )
    category: Category
    model_name: str
    operation: Operation
    payload: JsonObject | None = documented(
        "The record to write: create/update the validated record (a v2 record, or a legacy one "
        "for changes proposed through /v1), delete the record as it was when the deletion was "
        "proposed. Always set by this API.",
        **any_record_schema(),
    )
    requested_by: str = documented("AI-Horde user id of the requestor", example="1234")
    requested_username: str = documented("AI-Horde user name", example="Alice#1234")
    requested_at: int = documented(_TIME)
    status: Status = documented(
        "pending → approved → applying → applied; pending → rejected; "
        "a failed apply goes back to approved."
    )
    notes: str | None = documented(
        "Set by the text toolkit's queued edits (common_fields, name_exception), else null.",
        default=None,
    )
    batch_id: int | None = documented("Set on approve (and on reject).", default=None)
    batch_title: str | None = None
    approved_by: str | None = None
    approved_username: str | None = None
    approved_at: int | None = documented(_TIME, default=None)
    rejected_by: str | None = None
    rejected_username: str | None = None
    rejected_at: int | None = documented(_TIME, default=None)
    reject_reason: str | None = None
    applied_at: int | None = documented(_TIME, default=None)
    applied_by: str | None = None
    applied_username: str | None = None
    applied_job_id: str | None = documented("The apply reservation token.", default=None)
    updated_at: int = documented("Unix seconds of the last change of the record")
    request_metadata: JsonObject | None = documented(
        "How the change was proposed (the route's name).", default=None
    )
    related_models: list[str] | None = documented(
        "text_generation only: the backend variants the change also writes.", default=None
    )
    payload_format: PayloadFormat = attrs.field(default="v2", metadata=INTERNAL)

    @classmethod
    def from_row(cls, row: Row) -> Change:
        """A change as the store keeps it: its wire form, and its payload format beside it."""
        change = get_converter().structure(json.loads(row["data"]), cls)
        return change.evolve(payload_format=row["payload_format"])

    @property
    def is_legacy(self) -> bool:
        return self.payload_format == "legacy"

    def reviewed(
        self,
        verdict: Literal["approved", "rejected"],
        who: Identity,
        now: int,
        batch: tuple[int | None, str],
        reason: str | None = None,
    ) -> Change:
        """The change approved or rejected by `who` into `batch` (id, title)."""
        by: dict[str, Any] = {
            f"{verdict}_by": who.user_id,
            f"{verdict}_username": who.username,
            f"{verdict}_at": now,
        }
        if verdict == "rejected":
            by["reject_reason"] = reason
        batch_id, title = batch
        return self.evolve(
            status=verdict, batch_id=batch_id, batch_title=title, updated_at=now, **by
        )

    def evolve(self, **changes: Any) -> Change:
        return evolve(self, **changes)


MAX_NAME_LENGTH = 200


def name_problem(category: Category, name: str) -> str | None:
    """Why `name` cannot name a model of `category`, or None. Names are 1-200 characters with no
    control characters; `/` separates non-empty parts that are not `.` or `..`; a text model
    name has at most one `/` (its `org/` prefix)."""
    if len(name) > MAX_NAME_LENGTH:
        return f"Model name must be at most {MAX_NAME_LENGTH} characters."
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return "Model name must not contain control characters."
    parts = name.split("/")
    if any(part.strip() in ("", ".", "..") for part in parts):
        return "Model name parts between '/' must not be empty, '.' or '..'."
    if category is Category.text_generation and len(parts) > 2:
        return "A text model name has at most one '/' (its organisation prefix)."
    return None


@frozen(kw_only=True)
class Proposal:
    """What a requestor asks for: one operation on one model, as a payload in a format."""

    category: Category
    operation: Operation
    name: str
    payload: JsonObject | None
    route: str  # the name of the route it came through, recorded in request_metadata
    payload_format: PayloadFormat = "v2"
    # change sets and the text toolkit's queued edits: what they are, their title, what they touch
    resource_kind: Literal["model_reference", "image_baseline", "text_guidance"] = "model_reference"
    resource_id: str | None = None
    notes: str | None = None  # set by routes that explain themselves
    request_metadata: dict[str, Any] | None = None  # more request_metadata beside the route
    related_models: list[str] | None = None


def keep_creation(record: JsonObject, existing: JsonObject | None) -> JsonObject:
    """`record` with the creation stamps of the record it replaces (they never change)."""
    metadata = dict(record.get("metadata") or {})
    for key in ("created_at", "created_by"):
        value = (existing or {}).get("metadata", {}).get(key)
        if value is not None:
            metadata[key] = value
    return {**record, "metadata": metadata}


@frozen(kw_only=True)
class ChangeFilter:
    """Which changes a listing shows or a purge removes; every given criterion must hold."""

    statuses: tuple[Status, ...] = ()
    categories: tuple[Category, ...] = ()
    requested_by: tuple[str, ...] = ()
    model_name: str | None = None  # a case-insensitive substring
    batch_id: int | None = None

    @classmethod
    def of(cls, source: object, **given: Any) -> ChangeFilter:
        """The criteria a query or request body carries (by field name), and `given` ones."""
        found = {
            a.name: getattr(source, a.name) for a in attrs.fields(cls) if hasattr(source, a.name)
        }
        return cls(**(found | given))

    @property
    def is_empty(self) -> bool:
        return not (self.statuses or self.categories or self.requested_by or self.model_name)

    def matches(self, change: Change) -> bool:
        return (
            (not self.statuses or change.status in self.statuses)
            and (not self.categories or change.category in self.categories)
            and (not self.requested_by or change.requested_by in self.requested_by)
            and (self.batch_id is None or change.batch_id == self.batch_id)
            and (self.model_name or "").lower() in change.model_name.lower()
        )


#: the filter that selects every change
ALL_CHANGES = ChangeFilter()


@frozen(kw_only=True)
class AuditEvent:
    """One entry of the append-only audit log: a model write, or a queue action
    (category `pending_queue`, the action in `payload["after"]`)."""

    timestamp: int
    domain: str  # the canonical format the deployment had when the event happened
    category: str
    model_name: str
    operation: str
    logical_user_id: str | None
    request_id: str | None = None
    payload: JsonObject  # before / after / delta
    event_id: int = 0  # assigned by the store

    @classmethod
    def from_row(cls, row: Row) -> AuditEvent:
        return cls(
            event_id=row["event_id"],
            timestamp=row["timestamp"],
            domain=row["domain"],
            category=row["category"],
            model_name=row["model_name"],
            operation=row["operation"],
            logical_user_id=row["logical_user_id"],
            request_id=row["request_id"],
            payload=json.loads(row["payload"]),
        )

    @property
    def action(self) -> JsonObject:
        """What a queue event did (empty for model events)."""
        return dict(self.payload.get("after") or {}) if self.category == "pending_queue" else {}
