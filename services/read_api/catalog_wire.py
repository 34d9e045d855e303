"""What the catalog reads take: their query strings (the answers are prepared JSON)."""

from __future__ import annotations

from typing import Any

from attrs import frozen

from horde_model_records import Category
from horde_model_records.licensing import PermissionStatus
from shared.wire import documented, integer, text

MAX_TEXT = 256
MAX_PAGE = 1000


def _flag(description: str, default: bool) -> Any:
    return documented(
        f"{description} Accepts true/false, 1/0, yes/no, on/off (any case).", default=default
    )


def _optional(description: str) -> Any:
    return documented(description, default=None)


@frozen(kw_only=True)
class LicensesQuery:
    """Which licence definitions, and which page of them."""

    include_deprecated: bool = _flag("List deprecated definitions too.", default=True)
    offset: int = integer(ge=0, default=0, description="Definitions to skip.")
    limit: int = integer(ge=1, le=MAX_PAGE, default=100, description=f"Page size, 1–{MAX_PAGE}.")


@frozen(kw_only=True)
class AssetsQuery:
    """Filters (AND-ed) and page of the licensed assets, models included."""

    asset_kind: str | None = text(
        max_length=MAX_TEXT,
        default=None,
        description="model, custom_node, software_component or other.",
    )
    category: Category | None = _optional("Models of this category only.")
    license_id: str | None = text(
        max_length=MAX_TEXT, default=None, description="A top-level licence id of the asset."
    )
    commercial_use: PermissionStatus | None = _optional("Exact status.")
    redistribution: PermissionStatus | None = _optional("Exact status.")
    name_contains: str | None = text(
        max_length=MAX_TEXT, default=None, description="Case-insensitive part of display_name."
    )
    offset: int = integer(ge=0, default=0, description="Assets to skip.")
    limit: int = integer(ge=1, le=MAX_PAGE, default=100, description=f"Page size, 1–{MAX_PAGE}.")


@frozen(kw_only=True)
class ProfilesQuery:
    include_deprecated: bool = _flag("List deprecated profiles too.", default=False)


@frozen(kw_only=True)
class AssignmentsQuery:
    model_name: str | None = text(
        max_length=MAX_TEXT, default=None, description="Exact canonical text model name."
    )
    profile_id: str | None = text(
        max_length=MAX_TEXT, default=None, description="Primary or supplemental profile."
    )


@frozen(kw_only=True)
class GuidanceModelQuery:
    name: str = text(
        min_length=1, max_length=MAX_TEXT, description="Exact canonical text model name."
    )
