"""Catalog change sets: checked when proposed, queued like model changes, applied on live data.

A change set is a Change whose `resource_kind` names the catalog; its payload is the validated
change set. The dry run is one pure function used three times (proposal, diff, apply), so what a
reviewer saw is what is applied, or the apply is refused with the same message.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import cattrs

from horde_model_records import Category
from horde_model_records.baselines import RESERVED_NAMES, ImageBaseline, catalog_problems
from horde_model_records.serde import catalog_converter
from shared.errors import Conflict, InvalidInput, validation_items
from shared.wire import JsonObject

from .catalog_wire import BaselineChangeSet

IMAGE_BASELINE = "image_baseline"
TEXT_GUIDANCE = "text_guidance"
MODEL_REFERENCE = "model_reference"


def _baseline(data: Any, loc: list[str | int]) -> JsonObject:
    """A baseline record in its full shape (defaults filled); 422 at `loc` when it is not one."""
    try:
        record = catalog_converter.structure(data, ImageBaseline)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise InvalidInput(validation_items(exc, loc)) from None
    out: JsonObject = catalog_converter.unstructure(record)
    return out


def normalized_change_set(change_set: BaselineChangeSet) -> JsonObject:
    """The change set as it is queued: every record and expected_before in full shape."""
    if not change_set.changes:
        raise InvalidInput("A baseline change set must contain at least one change.")
    changes = []
    for i, change in enumerate(change_set.changes):
        loc: list[str | int] = ["body", "changes", i]
        if change.name in RESERVED_NAMES:
            raise InvalidInput(f"'{change.name}' cannot name a baseline (it is a route).")
        out: JsonObject = {"operation": change.operation, "name": change.name}
        out["record"] = (
            None if change.record is None else _baseline(change.record, [*loc, "record"])
        )
        out["expected_before"] = (
            None
            if change.expected_before is None
            else _baseline(change.expected_before, [*loc, "expected_before"])
        )
        changes.append(out)
    return {"title": change_set.title, "changes": changes}


def _end_states_hold(catalog: JsonObject, payload: JsonObject) -> bool:
    """Whether the live catalog already is what the change set makes it (an apply retried after
    it was stored): every upsert's record is there (metadata aside), every delete is gone."""
    baselines = catalog["baselines"]
    for change in payload["changes"]:
        current = baselines.get(change["name"])
        if change["operation"] == "delete":
            if current is not None:
                return False
        elif current is None or {**current, "metadata": None} != {
            **change["record"],
            "metadata": None,
        }:
            return False
    return True


def baseline_dry_run(
    catalog: JsonObject,
    payload: JsonObject,
    referenced: Iterable[str],
    editor_id: str | None,
    now: int,
) -> JsonObject:
    """The catalog with the change set applied (a copy); Conflict (409) when a baseline changed
    after review, InvalidInput (422) when the result would be wrong."""
    candidate = copy.deepcopy(catalog)
    baselines: dict[str, Any] = candidate["baselines"]
    named = set(referenced)
    for change in payload["changes"]:
        name = change["name"]
        current = baselines.get(name)
        if current != change.get("expected_before"):
            raise Conflict(f"Baseline '{name}' changed after review.")
        if change["operation"] == "delete":
            if current is None:
                raise InvalidInput(f"Cannot delete missing baseline '{name}'.")
            if name in named:
                raise InvalidInput(f"Baseline '{name}' is still named by a canonical image model.")
            del baselines[name]
            continue
        record = change.get("record")
        if record is None or record.get("name") != name:
            raise InvalidInput(f"Cannot upsert baseline '{name}' without a matching record.")
        old = (current or {}).get("metadata") or {}
        metadata = {
            "revision": old["revision"] + 1 if current is not None else 1,
            "created_at": old.get("created_at") if current is not None else now,
            "created_by": old.get("created_by") if current is not None else editor_id,
            "updated_at": now,
            "updated_by": editor_id,
        }
        baselines[name] = {**record, "metadata": metadata}
    records = [catalog_converter.structure(r, ImageBaseline) for r in baselines.values()]
    problems = catalog_problems(records, list(baselines))
    if problems:
        raise InvalidInput(problems[0])
    return candidate


def applied_catalog(
    catalog: JsonObject,
    payload: JsonObject,
    referenced: Iterable[str],
    editor_id: str | None,
    now: int,
) -> JsonObject:
    """The catalog after an apply: the dry run on live data with the revision bumped; the live
    catalog itself when the change set's end states already hold (a retried apply is a no-op)."""
    if _end_states_hold(catalog, payload):
        return catalog
    candidate = baseline_dry_run(catalog, payload, referenced, editor_id, now)
    candidate["metadata"] = {
        **candidate["metadata"],
        "revision": candidate["metadata"]["revision"] + 1,
        "updated_at": now,
    }
    return candidate


def referenced_baselines(records: Iterable[Any], payloads: Iterable[JsonObject | None]) -> set[str]:
    """Baselines named by stored image records and by queued image model payloads."""
    named = {getattr(r, "baseline", None) for r in records}
    named |= {p.get("baseline") for p in payloads if isinstance(p, dict)}
    return {n for n in named if isinstance(n, str)}


def affected(payload: JsonObject) -> list[str]:
    return list(dict.fromkeys(c["name"] for c in payload["changes"]))


CATALOG_CATEGORY = {
    IMAGE_BASELINE: Category.image_generation,
    TEXT_GUIDANCE: Category.text_generation,
}
