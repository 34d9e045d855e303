"""The fields a v2 read adds to a stored record: the licensing default and text guidance.

A record nobody reviewed is served with an explicit NOASSERTION conclusion (so a consumer never
mistakes "unknown" for "no restrictions"), and a text record with its derived guidance status.
Neither is stored: `stored_fields` takes them back out of a served record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .categories import Category
from .licensing import UNKNOWN_LICENSING_JSON
from .text_claims import guidance_summary

Json = dict[str, Any]


def read_fields(
    category: Category, record: Json, assignment: Mapping[str, Any] | None = None
) -> Json:
    """`record` (its stored JSON) as a v2 read shows it; `assignment`: the model's guidance
    assignment, if the catalog has one."""
    out = dict(record)
    out.setdefault("licensing", UNKNOWN_LICENSING_JSON)
    if category is Category.text_generation:
        instruct = record.get("instruct_format")
        out["guidance"] = guidance_summary(
            assignment, instruct if isinstance(instruct, str) else None
        )
    return out


def stored_fields(record: Json) -> Json:
    """A served record without what reads add: no guidance, no licensing default."""
    out = {k: v for k, v in record.items() if k != "guidance"}
    if out.get("licensing") == UNKNOWN_LICENSING_JSON:
        del out["licensing"]
    return out
