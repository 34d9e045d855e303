"""What the read service takes and answers: its query strings and the shapes of its answers.

Whole-category and single-model answers are prepared bytes of the snapshot (their schemas are
the record classes); the classes here describe the rest, and the OpenAPI document is derived
from them.
"""

from __future__ import annotations

from typing import Any, Literal

from attrs import frozen

from horde_model_records import Category
from horde_model_records.licensing import PermissionStatus
from shared.openapi import any_record_schema
from shared.wire import JsonObject, documented, integer, items, text

MAX_LIMIT = 500
MAX_TEXT = 256  # longest accepted name_contains / baseline / sort_by / tag value
MAX_TAGS = 64  # most values of one tags_* parameter
BACKENDS = ("aphrodite", "koboldcpp")


def _tags(description: str) -> Any:
    return items(
        max_items=MAX_TAGS,
        max_length=MAX_TEXT,
        default=(),
        description=f"{description} (repeat the key).",
    )


def _flag(description: str, default: bool | None = None) -> Any:
    return documented(
        f"{description} Accepts true/false, 1/0, yes/no, on/off (any case).", default=default
    )


# --- queries -----------------------------------------------------------------------------------------


@frozen(kw_only=True)
class SearchAllQuery:
    """Filters (AND-ed), sort and page of a search across categories."""

    nsfw: bool | None = _flag("Keep records whose `nsfw` equals this.")
    tags_any: tuple[str, ...] = _tags("Keep records with at least one of these tags")
    tags_all: tuple[str, ...] = _tags("Keep records with all of these tags")
    tags_none: tuple[str, ...] = _tags("Drop records with any of these tags")
    name_contains: str | None = text(
        max_length=MAX_TEXT, default=None, description="Case-insensitive substring of the name."
    )
    license_id: str | None = text(
        max_length=MAX_TEXT,
        default=None,
        description="Keep records whose model-level `licensing.license_ids` hold this id "
        "(file overrides are not looked at; unreviewed records never match).",
    )
    commercial_use: PermissionStatus | None = documented(
        "Keep records whose `licensing.commercial_use` is this (unreviewed: `unknown`).",
        default=None,
    )
    redistribution: PermissionStatus | None = documented(
        "Keep records whose `licensing.redistribution` is this (unreviewed: `unknown`).",
        default=None,
    )
    sort_by: str | None = text(
        max_length=MAX_TEXT,
        default=None,
        description="A field of the records (across categories: one every record type has); "
        "`__` walks into nested fields (`metadata__created_at`). Without it: dataset order.",
    )
    sort_desc: bool = _flag("Sort descending; nulls then come first.", default=False)
    limit: int = integer(ge=1, le=MAX_LIMIT, default=50, description=f"Page size, 1–{MAX_LIMIT}.")
    offset: int = integer(ge=0, default=0, description="Matches to skip.")


@frozen(kw_only=True)
class SearchQuery(SearchAllQuery):
    """Filters (AND-ed), sort and page of a search in one category."""

    baseline: str | None = text(
        max_length=MAX_TEXT, default=None, description="Exact, case-sensitive `baseline`."
    )
    inpainting: bool | None = _flag(
        "Keep records whose `inpainting` equals this (image_generation)."
    )
    backend: str | None = text(
        max_length=MAX_TEXT,
        default=None,
        description="text_generation only (elsewhere a 400): names with this backend prefix "
        f"({', '.join(BACKENDS)}).",
    )
    exclude_backend_variations: bool | None = _flag(
        "text_generation only (elsewhere a 400): drop backend-prefixed names."
    )
    quantized: bool | None = _flag(
        "text_generation only (elsewhere a 400): keep (true) or drop (false) quantized names."
    )
    source: str = text(
        max_length=MAX_TEXT,
        default="horde",
        description="`horde` (canonical) or `any`; no other providers are registered.",
    )


@frozen(kw_only=True)
class TextGenerationQuery:
    include_group: bool = _flag(
        "Add text_model_group (the key's group key) and text_model_group_summary (over the "
        "group's v1 entries) to each entry.",
        default=False,
    )


# --- answers -----------------------------------------------------------------------------------------


@frozen(kw_only=True)
class Message:
    """A short text about this deployment."""

    message: str


@frozen(kw_only=True)
class ReplicateMode:
    """How this deployment replicates, and which format is canonical."""

    replicate_mode: Literal["PRIMARY", "REPLICA"]
    canonical_format: Literal["v2", "legacy"]
    writable: bool = documented("replicate_mode is PRIMARY.")


@frozen(kw_only=True)
class SearchResponse:
    """One page of matching records."""

    results: list[JsonObject] = documented(
        "Records, each of its category's schema.", **{"x-items": any_record_schema()}
    )
    total: int = documented("Matches before paging.", minimum=0)
    offset: int
    limit: int
    has_more: bool = documented("offset + limit < total")


@frozen(kw_only=True)
class LastUpdated:
    """When any category last changed."""

    last_updated: int | None = documented("Latest change over all categories, Unix seconds.")


@frozen(kw_only=True)
class CategoryLastUpdated:
    """When one category last changed."""

    category: Category
    last_updated: int | None = documented("Unix seconds.")
