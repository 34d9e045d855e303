"""The write service's value types: changes, identities, and the request bodies it accepts."""

from __future__ import annotations

from typing import Any

from attrs import evolve, frozen

from horde_model_records import Category
from horde_model_records.serde import converter

Json = dict[str, Any]

STATUSES = ("pending", "approved", "applying", "applied", "rejected")
OPERATIONS = ("create", "update", "delete")


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
    """A PendingChangeRecord (spec 03 §5), in wire field order."""

    change_id: int
    category: Category
    model_name: str
    operation: str
    payload: Json | None
    requested_by: str
    requested_username: str
    requested_at: int
    status: str
    notes: str | None = None
    batch_id: int | None = None
    batch_title: str | None = None
    approved_by: str | None = None
    approved_username: str | None = None
    approved_at: int | None = None
    rejected_by: str | None = None
    rejected_username: str | None = None
    rejected_at: int | None = None
    reject_reason: str | None = None
    applied_at: int | None = None
    applied_by: str | None = None
    applied_username: str | None = None
    applied_job_id: str | None = None
    updated_at: int
    request_metadata: Json | None = None
    related_models: list[str] | None = None

    def to_wire(self, omit_nulls: bool = False) -> Json:
        """The record as JSON; 202 and apply answers omit nulls, list/get answers keep them."""
        data: Json = converter.unstructure(self)
        if omit_nulls:
            data = {k: v for k, v in data.items() if v is not None}
        return data

    @classmethod
    def from_wire(cls, data: Json) -> Change:
        return converter.structure(data, cls)

    def evolve(self, **changes: Any) -> Change:
        return evolve(self, **changes)
