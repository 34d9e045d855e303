"""What the text toolkit's writes take and answer (spec 07 §5, §6), as attrs classes: bodies are
structured into them (unknown keys ignored, as upstream) and the OpenAPI document is derived.

Kept beside wire.py rather than in it: the toolkit is one resource with many shapes.
"""

from __future__ import annotations

from attrs import frozen

from shared.toolkit_wire import MAX_NAME
from shared.wire import documented, ignores_unknown_keys, items, text

MAX_TEXT = 65536  # longest free text (description, reason)
MAX_ITEMS = 1000  # most aliases, members or tags in one body


# --- queries -----------------------------------------------------------------------------------------


# --- bodies ------------------------------------------------------------------------------------------


@ignores_unknown_keys
@frozen(kw_only=True)
class NameSchemaUpdate:
    """Fields of a group's naming schema to set; null or absent fields stay as they are."""

    separator: str | None = text(max_length=16, default=None)
    part_order: tuple[str, ...] | None = documented("Part labels in order.", default=None)
    author_included: bool | None = None
    common_author: str | None = text(max_length=MAX_NAME, default=None)
    template: str | None = text(max_length=MAX_TEXT, default=None)
    extra_parts: tuple[str, ...] | None = documented("Extra part labels.", default=None)


@ignores_unknown_keys
@frozen(kw_only=True)
class AliasesBody:
    """Every alias of a canonical group (replacing the old list)."""

    aliases: tuple[str, ...] = items(
        max_items=MAX_ITEMS,
        max_length=MAX_NAME,
        description="Parser base names; duplicates dropped.",
    )


@ignores_unknown_keys
@frozen(kw_only=True)
class AliasBody:
    """One alias."""

    alias: str = text(max_length=MAX_NAME)


@ignores_unknown_keys
@frozen(kw_only=True)
class FamilyBody:
    """Every member group of a family (replacing the old list)."""

    members: tuple[str, ...] = items(
        max_items=MAX_ITEMS,
        max_length=MAX_NAME,
        description="Group names; stored sorted, once each.",
    )


@ignores_unknown_keys
@frozen(kw_only=True)
class FamilyMemberBody:
    """One member group."""

    group_name: str = text(max_length=MAX_NAME)


@ignores_unknown_keys
@frozen(kw_only=True)
class CommonFieldsUpdate:
    """Fields to set on every canonical member of a group; null or absent fields are left alone."""

    baseline: str | None = text(max_length=MAX_NAME, default=None)
    description: str | None = text(max_length=MAX_TEXT, default=None)
    url: str | None = text(max_length=MAX_TEXT, default=None)
    nsfw: bool | None = None
    tags: tuple[str, ...] | None = documented("Replaces the tags.", default=None)
    style: str | None = text(max_length=MAX_NAME, default=None)
    instruct_format: str | None = text(max_length=MAX_NAME, default=None)


@ignores_unknown_keys
@frozen(kw_only=True)
class NameExceptionBody:
    """Why a model does not follow its group's naming schema; null clears it."""

    reason: str | None = text(
        max_length=MAX_TEXT, description="Required key; null removes the exception."
    )


# --- answers -----------------------------------------------------------------------------------------


@frozen(kw_only=True)
class BatchUpdateResponse:
    """The queued updates of a group's common fields: one per canonical member."""

    updated_count: int
    batch_id: str = documented("A new UUID4 shared by the changes' request_metadata.")
    pending_change_ids: list[int]


@frozen(kw_only=True)
class NameExceptionResponse:
    """The queued update."""

    pending_change_id: int
