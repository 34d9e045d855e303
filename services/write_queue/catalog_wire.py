"""What the catalog writes take: change sets of the image baseline catalog."""

from __future__ import annotations

from typing import Literal

from attrs import frozen

from shared.wire import JsonObject, documented, items, text


@frozen(kw_only=True)
class BaselineChange:
    """One step of a change set: upsert or delete one baseline."""

    operation: Literal["upsert", "delete"]
    name: str = text(min_length=1, max_length=200, description="The baseline's catalog key.")
    record: JsonObject | None = documented(
        "upsert: the whole baseline (its `name` equal to `name`); server-owned metadata is "
        "stamped on apply.",
        default=None,
    )
    expected_before: JsonObject | None = documented(
        "The baseline as served when the change was prepared (null or absent for a new one): "
        "a mismatch is a 409.",
        default=None,
    )


@frozen(kw_only=True)
class BaselineChangeSet:
    """A reviewed change to the image baseline catalog, applied whole or not at all."""

    title: str = text(min_length=1, max_length=160, description="What the change set does.")
    changes: list[BaselineChange] = items(max_items=200, description="Applied in order.")


@frozen(kw_only=True)
class ProfileChange:
    """Create, update or deprecate one guidance profile."""

    operation: Literal["create", "update", "deprecate"]
    profile_id: str = text(min_length=1, max_length=200, description="The profile's id.")
    profile: JsonObject | None = documented(
        "create/update: the whole profile (prompt_contract or usage_recipe).", default=None
    )
    expected_before: JsonObject | None = documented(
        "The profile as served when prepared (null for a new one): a mismatch is a 409.",
        default=None,
    )


@frozen(kw_only=True)
class AssignmentChange:
    """Set or remove one text model's guidance assignment."""

    model_name: str = text(min_length=1, max_length=200, description="Canonical text model.")
    assignment: JsonObject | None = documented("The assignment; null removes it.", default=None)
    expected_before: JsonObject | None = documented(
        "The assignment as served when prepared (null for none): a mismatch is a 409.",
        default=None,
    )


@frozen(kw_only=True)
class GuidanceChangeSet:
    """A reviewed change to the text guidance catalog, applied whole or not at all."""

    title: str = text(min_length=1, max_length=160, description="What the change set does.")
    profile_changes: list[ProfileChange] = items(max_items=500, default=(), description="In order.")
    assignment_changes: list[AssignmentChange] = items(
        max_items=5000, default=(), description="In order, after the profile changes."
    )
