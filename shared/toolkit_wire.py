"""Text toolkit shapes both services use (spec 07): the group query, the stored naming schema,
alias entries and families. Reads answer them from the snapshot, writes after storing, so one
class each keeps the two answers (and the one OpenAPI component per name) the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import Factory, frozen

from .wire import text

MAX_NAME = 512  # longest name, group, alias or family accepted in a query or body field


@frozen(kw_only=True)
class GroupQuery:
    """A group, by its exact stored name (it may contain `/`)."""

    name: str = text(max_length=MAX_NAME, description="The group's exact name.")


@frozen(kw_only=True)
class StoredNameSchema:
    """A stored naming schema (upstream's `TextModelGroupNameSchema`)."""

    separator: str = "-"
    part_order: list[str] = Factory(lambda: ["base", "size", "variant", "version", "quant"])
    author_included: bool = True
    common_author: str | None = None
    template: str | None = None
    extra_parts: list[str] = Factory(list)

    @classmethod
    def of(cls, schema: Mapping[str, Any]) -> StoredNameSchema:
        """The answer shape of a schema as the stores keep it (shared.text_toolkit)."""
        return cls(
            separator=schema["separator"],
            part_order=list(schema["part_order"]),
            author_included=schema["author_included"],
            common_author=schema["common_author"],
            template=schema["template"],
            extra_parts=list(schema["extra_parts"]),
        )


@frozen(kw_only=True)
class GroupNameSchemaResponse:
    """A group's naming schema: stored (custom) or inferred from its canonical members."""

    group_name: str
    name_schema: StoredNameSchema
    is_custom: bool


@frozen(kw_only=True)
class AliasEntry:
    """A canonical group and the parser base names that resolve to it."""

    canonical: str
    aliases: list[str]


@frozen(kw_only=True)
class FamilyInfo:
    """A named set of groups."""

    family_name: str
    members: list[str]
