"""Schema 2.1.0 text-record fields: context window, interaction modes, capabilities, guidance.

`guidance` is derived on reads from the text guidance catalog and never stored; `guidance_summary`
is the one place the derivation lives.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from attrs import Factory, frozen


class SupportStatus(enum.StrEnum):
    supported = "supported"
    unsupported = "unsupported"
    unknown = "unknown"


class TextInteractionMode(enum.StrEnum):
    completion = "completion"
    instruction = "instruction"
    chat = "chat"


class TextCapability(enum.StrEnum):
    tool_calling = "tool_calling"
    structured_output = "structured_output"


class GuidanceStatus(enum.StrEnum):
    published = "published"
    legacy_label = "legacy_label"
    undocumented = "undocumented"


@frozen(kw_only=True)
class GuidanceSource:
    """A documentation or evidence source (an http(s) URL)."""

    url: str
    title: str | None = None
    note: str | None = None


@frozen(kw_only=True)
class SupportClaim:
    """A reviewed conclusion about one mode or capability."""

    status: SupportStatus
    sources: list[GuidanceSource] = Factory(list)
    qualification: str | None = None


@frozen(kw_only=True)
class ContextWindow:
    """The publisher-advertised context window (not what workers currently offer)."""

    maximum_tokens: int
    sources: list[GuidanceSource] = Factory(list)
    qualification: str | None = None


def guidance_summary(
    assignment: Mapping[str, Any] | None, instruct_format: str | None
) -> dict[str, Any]:
    """The read-only `guidance` of a text record: `published` with the assignment's profiles,
    else `legacy_label` when it has a non-blank instruct_format, else `undocumented`."""
    if assignment is not None:
        return {
            "status": GuidanceStatus.published.value,
            "primary_profile_id": assignment["primary_profile_id"],
            "supplemental_profile_ids": list(assignment.get("supplemental_profile_ids", [])),
        }
    status = GuidanceStatus.legacy_label if (instruct_format or "").strip() else None
    return {
        "status": (status or GuidanceStatus.undocumented).value,
        "primary_profile_id": None,
        "supplemental_profile_ids": [],
    }
