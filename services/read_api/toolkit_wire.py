"""What the text toolkit reads take and answer (spec 07 §3), as attrs classes: the OpenAPI
document is derived from them and the snapshot's answers are built from them.

Kept beside wire.py rather than in it: the toolkit is one resource with many shapes.
"""

from __future__ import annotations

from typing import Any, Literal

from attrs import Factory, frozen

from shared.toolkit_wire import MAX_NAME, AliasEntry, FamilyInfo
from shared.wire import documented, ignores_unknown_keys, integer, text

Severity = Literal["info", "warning"]


# --- queries -----------------------------------------------------------------------------------------


@frozen(kw_only=True)
class NameQuery:
    """A model name to parse."""

    name: str = text(max_length=MAX_NAME, description="Any model name (author, backend prefix).")


@frozen(kw_only=True)
class DetectQuery:
    """Bounds of the family suggestions."""

    min_prefix_length: int = integer(
        ge=2, le=20, default=3, description="Shortest shared prefix, in characters."
    )
    min_family_size: int = integer(ge=2, le=50, default=2, description="Fewest groups per family.")


# --- bodies ------------------------------------------------------------------------------------------


@ignores_unknown_keys
@frozen(kw_only=True)
class ComposeNameRequest:
    """Parts of a name; unknown keys are ignored."""

    base_name: str = text(max_length=MAX_NAME)
    size: str = text(max_length=MAX_NAME)
    author: str | None = text(max_length=MAX_NAME, default=None)
    variant: str | None = text(max_length=MAX_NAME, default=None)
    version: str | None = text(max_length=MAX_NAME, default=None)
    quant: str | None = text(max_length=MAX_NAME, default=None)
    separator: str | None = text(
        max_length=16, default=None, description="Between parts; null or empty: `-`."
    )
    part_order: tuple[str, ...] | None = documented(
        "Labels among base, size, variant, version, quant (others are skipped; repeats repeat). "
        "Empty or null: that order.",
        default=None,
    )


# --- answers -----------------------------------------------------------------------------------------


@frozen(kw_only=True)
class ExtraPartInfo:
    """A name segment outside the five primary parts."""

    value: str
    position: int = documented("Separators before it (counted as upstream does).")
    inferred_type: Literal["DATE", "LEADING_VERSION", "DESCRIPTOR", "UNKNOWN"]


@frozen(kw_only=True)
class ParsedNameResponse:
    """The parts of a whole name (author and backend prefix kept in the base)."""

    original_name: str
    base_name: str
    size: str | None
    variant: str | None
    quant: str | None
    version: str | None
    suggested_group: str = documented("The name's group key, alias-resolved.")
    extras: list[ExtraPartInfo]


@frozen(kw_only=True)
class ParsedNameInfo:
    """The parts of a member's name without backend prefix and author."""

    base_name: str
    size: str | None
    variant: str | None
    quant: str | None
    version: str | None
    extras: list[ExtraPartInfo]


@frozen(kw_only=True)
class GuidanceSummary:
    """How a member documents its prompt format."""

    status: Literal["published", "legacy_label", "undocumented"]
    primary_profile_id: str | None = None
    supplemental_profile_ids: list[str] = Factory(list)


@frozen(kw_only=True)
class GroupMemberInfo:
    """One member of a group with its parsed name and raw fields (null when absent)."""

    name: str
    parsed: ParsedNameInfo
    parameters: int | None
    baseline: str | None
    nsfw: bool | None
    description: str | None
    url: str | None
    style: str | None
    tags: list[str] | None
    display_name: str | None
    instruct_format: str | None
    is_backend_duplicate: bool
    backend_prefix: str | None = documented(
        "`aphrodite` or `koboldcpp`; null for canonical members."
    )
    guidance: GuidanceSummary | None = documented("Null for backend duplicates.")


@frozen(kw_only=True)
class NameFormatInfo:
    """A naming convention: inferred from members or stored (custom)."""

    separator: str
    part_order: list[str]
    author_included: bool
    common_author: str | None
    template: str
    extra_parts: list[str]


@frozen(kw_only=True)
class NameExceptionInfo:
    """A member that does not follow the group's naming schema, and why."""

    name: str
    reason: str


@frozen(kw_only=True)
class GroupMembersResponse:
    """One group in detail; sizes, usages, common fields and coverage count canonical members."""

    group_name: str
    members: list[GroupMemberInfo]
    common_fields: dict[str, Any] = documented(
        "baseline, description, url, nsfw, tags, style, instruct_format: each present when all "
        "canonical members hold the same non-null value."
    )
    available_sizes: list[str]
    available_variants: list[str | None]
    available_quants: list[str | None]
    available_versions: list[str | None]
    size_usage: dict[str, int]
    variant_usage: dict[str, int]
    quant_usage: dict[str, int]
    name_format: NameFormatInfo
    canonical_count: int
    backend_duplicate_count: int
    name_schema_is_custom: bool
    exception_members: list[NameExceptionInfo]
    related_family: FamilyInfo | None
    guidance_coverage: dict[str, int] = documented(
        "published, legacy_label and undocumented canonical members."
    )


@frozen(kw_only=True)
class DistinctBaselinesResponse:
    """Every distinct non-blank text baseline, trimmed, in code-point order."""

    baselines: list[str]


@frozen(kw_only=True)
class GroupListResponse:
    """Every stored group name, in code-point order."""

    groups: list[str]


@frozen(kw_only=True)
class ComposeNameResponse:
    """A composed name, whether it exists, and its group key (no aliases)."""

    composed_name: str
    already_exists: bool
    suggested_group: str


@frozen(kw_only=True)
class GroupHealthIssue:
    """One problem of one group."""

    group_name: str
    issue_type: Literal[
        "singleton_group",
        "inconsistent_baseline",
        "inconsistent_nsfw",
        "missing_baseline",
        "missing_description",
    ]
    message: str
    severity: Severity


@frozen(kw_only=True)
class GroupSummaryEntry:
    """One group in the overview."""

    group_name: str
    canonical_count: int
    backend_duplicate_count: int
    has_custom_schema: bool
    family_name: str | None
    alias_canonical: str | None = documented("The canonical group this group is an alias of.")
    aliases: list[str]
    available_sizes: list[str]
    health_issues: list[GroupHealthIssue]


@frozen(kw_only=True)
class GroupsSummaryResponse:
    """Every group with counts, schema, family, aliases, sizes and health."""

    groups: list[GroupSummaryEntry]
    total_groups: int
    total_models: int
    groups_with_families: int
    groups_with_aliases: int
    groups_with_issues: int


@frozen(kw_only=True)
class GroupHealthResponse:
    """Health issues of every group, in group order, then check order."""

    issues: list[GroupHealthIssue]
    total_groups_checked: int
    groups_with_issues: int
    issue_counts_by_type: dict[str, int] = documented("In first-seen order.")


@frozen(kw_only=True)
class AliasListResponse:
    """Every alias entry, by canonical name."""

    entries: list[AliasEntry]


@frozen(kw_only=True)
class FamilyListResponse:
    """Every family, by name."""

    families: list[FamilyInfo]


@frozen(kw_only=True)
class DetectFamiliesResponse:
    """Family suggestions from shared name prefixes (nothing is stored)."""

    suggestions: list[FamilyInfo]
    total_groups_analyzed: int
    groups_in_families: int
    standalone_groups: int
