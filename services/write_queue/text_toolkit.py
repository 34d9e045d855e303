"""The text toolkit's direct writes as pure functions on its stores, with their invariants.

Each returns the new stores (or raises Conflict / NotFound with upstream's wording, spec 07 §6);
WriteQueue.aupdate_toolkit persists, audits and publishes the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from shared.errors import Conflict, NotFound
from shared.text_toolkit import SCHEMA_DEFAULTS, ToolkitStores

Json = dict[str, Any]


def _with(stores: ToolkitStores, **changes: Any) -> ToolkitStores:
    return attrs.evolve(stores, **changes)


# --- schemas -------------------------------------------------------------------------------------


def put_schema(stores: ToolkitStores, group: str, fields: Mapping[str, Any]) -> ToolkitStores:
    """Store `group`'s schema: the looked-up one (else the defaults) with the non-null `fields`
    overwritten, under the exact name. Nothing is validated; the group need not exist."""
    start = stores.schema_for(group) or SCHEMA_DEFAULTS
    schema = {**SCHEMA_DEFAULTS, **start}
    schema.update({k: v for k, v in fields.items() if v is not None})
    return _with(stores, schemas={**stores.schemas, group: schema})


def delete_schema(stores: ToolkitStores, group: str) -> ToolkitStores:
    if group not in stores.schemas:
        raise NotFound(f"No custom naming schema found for group '{group}'")
    return _with(stores, schemas={k: v for k, v in stores.schemas.items() if k != group})


# --- aliases -------------------------------------------------------------------------------------


def _owner(stores: ToolkitStores, alias: str) -> str | None:
    for canonical, aliases in stores.aliases.items():
        if alias in aliases:
            return canonical
    return None


def _check_unowned(stores: ToolkitStores, canonical: str, alias: str) -> None:
    owner = _owner(stores, alias)
    if owner is not None and owner != canonical:
        raise Conflict(f"Alias {alias!r} is already registered under canonical group {owner!r}")


def put_aliases(stores: ToolkitStores, canonical: str, aliases: Iterable[str]) -> ToolkitStores:
    """Replace `canonical`'s aliases (de-duplicated, first occurrence wins; `[]` is kept)."""
    wanted = tuple(dict.fromkeys(aliases))
    if canonical in wanted:
        raise Conflict(f"Canonical name {canonical!r} cannot be its own alias")
    for alias in wanted:
        _check_unowned(stores, canonical, alias)
    return _with(stores, aliases={**stores.aliases, canonical: wanted})


def add_alias(stores: ToolkitStores, canonical: str, alias: str) -> ToolkitStores:
    """Add one alias (creating the entry); an alias already there is a no-op."""
    if alias == canonical:
        raise Conflict(f"Cannot alias {canonical!r} to itself")
    _check_unowned(stores, canonical, alias)
    current = stores.aliases.get(canonical, ())
    if alias in current:
        return stores
    return _with(stores, aliases={**stores.aliases, canonical: (*current, alias)})


def remove_alias(stores: ToolkitStores, canonical: str, alias: str) -> ToolkitStores:
    """Remove one alias; removing the last one deletes the entry."""
    current = stores.aliases.get(canonical)
    if current is None or alias not in current:
        raise NotFound(f"Alias '{alias}' not found under canonical group '{canonical}'")
    left = tuple(a for a in current if a != alias)
    aliases = {k: v for k, v in stores.aliases.items() if k != canonical}
    if left:
        aliases = {**stores.aliases, canonical: left}
    return _with(stores, aliases=aliases)


def delete_aliases(stores: ToolkitStores, canonical: str) -> ToolkitStores:
    if canonical not in stores.aliases:
        raise NotFound(f"No alias entry for canonical group '{canonical}'")
    return _with(stores, aliases={k: v for k, v in stores.aliases.items() if k != canonical})


# --- families ------------------------------------------------------------------------------------


def _families(families: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Families as stored: sorted by name, none empty."""
    return {name: members for name, members in sorted(families.items()) if members}


def put_family(stores: ToolkitStores, family: str, members: Iterable[str]) -> ToolkitStores:
    """Create or replace a family; dropped members are released."""
    wanted = tuple(sorted(set(members)))
    if not wanted:
        raise Conflict("A family must have at least one member group.")
    for group in wanted:
        other = stores.family_of(group)
        if other is not None and other != family:
            raise Conflict(
                f"Group '{group}' already belongs to family '{other}'. "
                "Remove it from that family first."
            )
    return _with(stores, families=_families({**stores.families, family: wanted}))


def add_member(stores: ToolkitStores, family: str, group: str) -> ToolkitStores:
    """Add a group to an existing family; a current member is a no-op."""
    members = stores.families.get(family)
    if members is None:
        raise NotFound(f"Family '{family}' does not exist.")
    other = stores.family_of(group)
    if other is not None and other != family:
        raise Conflict(f"Group '{group}' already belongs to family '{other}'.")
    if group in members:
        return stores
    updated = tuple(sorted({*members, group}))
    return _with(stores, families=_families({**stores.families, family: updated}))


def remove_member(stores: ToolkitStores, family: str, group: str) -> ToolkitStores:
    """Remove a group from a family; the last one deletes the family."""
    members = stores.families.get(family)
    if members is None or group not in members:
        raise NotFound(f"Group '{group}' not found in family '{family}'")
    left = tuple(m for m in members if m != group)
    return _with(stores, families=_families({**stores.families, family: left}))


def delete_family(stores: ToolkitStores, family: str) -> ToolkitStores:
    if family not in stores.families:
        raise NotFound(f"Family '{family}' not found")
    return _with(stores, families={k: v for k, v in stores.families.items() if k != family})


# --- what changed, for the audit log -------------------------------------------------------------

#: the audit category of each store (upstream's file names without `text_generation_`/`.json`)
AUDIT_CATEGORIES = {
    "schemas": "text_generation_group_schemas",
    "aliases": "text_generation_group_aliases",
    "families": "text_generation_group_families",
}


def entry_changes(
    before: ToolkitStores, after: ToolkitStores
) -> list[tuple[str, str, str, Any, Any]]:
    """(audit category, key, operation, old value, new value) of every entry that changed."""
    found: list[tuple[str, str, str, Any, Any]] = []
    for store, category in AUDIT_CATEGORIES.items():
        old: Mapping[str, Any] = getattr(before, store)
        new: Mapping[str, Any] = getattr(after, store)
        for key in [*old, *(k for k in new if k not in old)]:
            was, now = old.get(key), new.get(key)
            if was == now:
                continue
            operation = "create" if was is None else "delete" if now is None else "update"
            found.append((category, key, operation, _plain(was), _plain(now)))
    return found


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
