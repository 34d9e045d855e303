"""The text toolkit's side stores (group name schemas, aliases, families): data, lookups, files.

The write service owns them in SQLite and publishes them in every snapshot as three files in
upstream's shapes (`toolkit/<upstream file name>`), so read replicas serve them and upstream's
JSON files import and export unchanged (spec 07 §6).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attrs import Factory, frozen

Json = dict[str, Any]

SCHEMAS_FILE = "text_generation_group_schemas.json"
ALIASES_FILE = "text_generation_group_aliases.json"
FAMILIES_FILE = "text_generation_group_families.json"
FILES = (SCHEMAS_FILE, ALIASES_FILE, FAMILIES_FILE)
SNAPSHOT_DIR = "toolkit"

#: a stored schema's fields, in upstream's order, with the defaults a PUT starts from
SCHEMA_DEFAULTS: Json = {
    "separator": "-",
    "part_order": ["base", "size", "variant", "version", "quant"],
    "author_included": True,
    "common_author": None,
    "template": None,
    "extra_parts": [],
}


def snapshot_path(file_name: str) -> str:
    return f"{SNAPSHOT_DIR}/{file_name}"


class StoreFileError(ValueError):
    """An upstream store file that is not of its shape."""


@frozen
class ToolkitStores:
    """Schemas by group, aliases by canonical group, families by name (insertion order kept;
    families sorted by name, their members sorted and distinct)."""

    schemas: Mapping[str, Json] = Factory(dict)
    aliases: Mapping[str, tuple[str, ...]] = Factory(dict)
    families: Mapping[str, tuple[str, ...]] = Factory(dict)

    # --- lookups (spec 07 §6) ----------------------------------------------------------------

    def resolve(self, name: str) -> str:
        """The canonical group owning alias `name`, else `name` (one step, case-sensitive)."""
        for canonical, aliases in self.aliases.items():
            if name in aliases:
                return canonical
        return name

    def schema_for(self, name: str) -> Json | None:
        """The stored schema of `name`, else of the canonical group `name` is an alias of."""
        found = self.schemas.get(name)
        if found is None:
            canonical = self.resolve(name)
            if canonical != name:
                found = self.schemas.get(canonical)
        return found

    def family_of(self, group: str) -> str | None:
        """The family that lists exactly `group`."""
        for family, members in self.families.items():
            if group in members:
                return family
        return None

    @property
    def empty(self) -> bool:
        return not (self.schemas or self.aliases or self.families)

    # --- upstream's files ----------------------------------------------------------------------

    def files(self) -> dict[str, bytes]:
        """The three files as upstream writes them (2-space indent, ASCII-escaped)."""
        payloads: dict[str, Any] = {
            SCHEMAS_FILE: {name: dict(schema) for name, schema in self.schemas.items()},
            ALIASES_FILE: {c: {"aliases": list(a)} for c, a in self.aliases.items()},
            FAMILIES_FILE: {
                f: {"family_name": f, "members": list(m)} for f, m in sorted(self.families.items())
            },
        }
        return {name: json.dumps(payloads[name], indent=2).encode() for name in FILES}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> ToolkitStores:
        """Stores from upstream's files (a missing file is an empty store); a file of another
        shape raises StoreFileError naming it."""
        schemas: dict[str, Json] = {}
        aliases: dict[str, tuple[str, ...]] = {}
        families: dict[str, tuple[str, ...]] = {}
        for name in FILES:
            raw = files.get(name)
            if raw is None:
                continue
            try:
                data = json.loads(raw)
                if not isinstance(data, dict):
                    raise StoreFileError("not a JSON object")
                if name == SCHEMAS_FILE:
                    schemas = {str(k): _schema(v) for k, v in data.items()}
                elif name == ALIASES_FILE:
                    aliases = {str(k): _strings(v, "aliases") for k, v in data.items()}
                else:
                    families = {
                        str(k): tuple(sorted(set(_strings(v, "members"))))
                        for k, v in sorted(data.items())
                    }
            except (ValueError, StoreFileError) as exc:
                raise StoreFileError(f"{name}: {exc}") from None
        return cls(schemas=schemas, aliases=aliases, families=families)

    def snapshot_files(self) -> dict[str, bytes]:
        """The files under their snapshot paths."""
        return {snapshot_path(name): data for name, data in self.files().items()}

    @classmethod
    def from_snapshot_files(cls, files: Mapping[str, bytes]) -> ToolkitStores:
        """The stores a snapshot carries; a snapshot from before the toolkit carries none."""
        return cls.from_files(
            {name: files[snapshot_path(name)] for name in FILES if snapshot_path(name) in files}
        )


def _strings(entry: Any, key: str) -> tuple[str, ...]:
    values = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise StoreFileError(f"`{key}` is not a list of strings")
    return tuple(values)


def _schema(entry: Any) -> Json:
    if not isinstance(entry, dict):
        raise StoreFileError("a schema is not an object")
    unknown = set(entry) - set(SCHEMA_DEFAULTS)
    if unknown:
        raise StoreFileError(f"unknown schema field(s): {', '.join(sorted(unknown))}")
    schema = {**SCHEMA_DEFAULTS, **entry}
    for key in ("separator",):
        if not isinstance(schema[key], str):
            raise StoreFileError(f"`{key}` is not a string")
    for key in ("common_author", "template"):
        if schema[key] is not None and not isinstance(schema[key], str):
            raise StoreFileError(f"`{key}` is not a string or null")
    for key in ("part_order", "extra_parts"):
        if not isinstance(schema[key], list) or not all(isinstance(v, str) for v in schema[key]):
            raise StoreFileError(f"`{key}` is not a list of strings")
    if not isinstance(schema["author_included"], bool):
        raise StoreFileError("`author_included` is not a boolean")
    return schema
