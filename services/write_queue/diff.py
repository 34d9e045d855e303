"""What a change would do to the live record: leaf differences, and whether they are critical."""

from __future__ import annotations

from typing import Any

from horde_model_records import Category
from shared.wire import JsonObject

from .models import Change
from .wire import FieldDiff, NetOperation, PendingChangeDiff

_CRITICAL: dict[Category, tuple[str, ...]] = {
    Category.image_generation: ("baseline", "nsfw", "inpainting", "trigger", "homepage"),
    Category.text_generation: ("baseline", "nsfw", "url", "parameters"),
    **{
        c: ("style", "nsfw")
        for c in (
            Category.controlnet,
            Category.blip,
            Category.clip,
            Category.codeformer,
            Category.esrgan,
            Category.gfpgan,
            Category.safety_checker,
        )
    },
}


def _leaves(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for key in sorted(value):
            out += _leaves(value[key], f"{prefix}.{key}" if prefix else key)
        return out
    return [(prefix, value)]


def field_diffs(
    old: JsonObject | None, new: JsonObject | None, prefix: str = ""
) -> list[FieldDiff]:
    """Leaf differences, keys sorted, nested objects by dotted path, lists compared whole."""
    if old is None or new is None:
        if new is not None:
            return [
                FieldDiff(field_path=p, old_value=None, new_value=v, change_type="added")
                for p, v in _leaves(new, prefix)
            ]
        if old is not None:
            return [
                FieldDiff(field_path=p, old_value=v, new_value=None, change_type="removed")
                for p, v in _leaves(old, prefix)
            ]
        return []
    out: list[FieldDiff] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}.{key}" if prefix else key
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += field_diffs(a, b, path)
        elif key not in old or a is None:
            out += field_diffs(None, {key: b}, prefix)
        elif key not in new or b is None:
            out += field_diffs({key: a}, None, prefix)
        else:
            out.append(FieldDiff(field_path=path, old_value=a, new_value=b, change_type="modified"))
    return out


def is_critical(category: Category, diffs: list[FieldDiff]) -> bool:
    """Whether a diff touches a field that decides what workers download or how a model is
    shown and charged: the licensing conclusion and downloads in every category (spec 06 §1.2
    amends 03 §10), plus each category's own critical fields."""
    fields = ("licensing", *_CRITICAL.get(category, ()))
    for d in diffs:
        path = d.field_path
        if path.startswith("config.download"):
            return True
        if any(path == f or path.startswith(f + ".") for f in fields):
            return True
    return False


def change_diff(change: Change, current: JsonObject | None) -> PendingChangeDiff:
    """What one change would do against the live record."""
    proposed = change.payload
    net: NetOperation
    if change.operation == "delete":
        net = "deleted" if current is not None else "unchanged"
        diffs = field_diffs(current, None)
    elif change.operation == "create":
        net = "modified" if current is not None else "added"
        diffs = field_diffs(current, proposed)
    else:
        net = "added" if current is None else ("unchanged" if current == proposed else "modified")
        diffs = field_diffs(current, proposed)
    return PendingChangeDiff(
        change_id=change.change_id,
        category=change.category,
        model_name=change.model_name,
        operation=change.operation,
        current_state=current,
        proposed_state=proposed,
        net_operation=net,
        field_diffs=diffs,
        is_critical=is_critical(change.category, diffs),
        fields_added=[d.field_path for d in diffs if d.change_type == "added"],
        fields_removed=[d.field_path for d in diffs if d.change_type == "removed"],
        fields_modified=[d.field_path for d in diffs if d.change_type == "modified"],
    )


def catalog_change_diff(
    change: Change, current: JsonObject, proposed: JsonObject
) -> PendingChangeDiff:
    """What a catalog change set would do: the whole catalog before and after, dotted paths
    (`baselines.<name>.horde_policy.kudos`); catalog changes are always critical."""
    diffs = field_diffs(current, proposed)
    net: NetOperation = "unchanged" if current == proposed else "modified"
    return PendingChangeDiff(
        change_id=change.change_id,
        category=change.category,
        model_name=change.model_name,
        operation=change.operation,
        current_state=current,
        proposed_state=proposed,
        net_operation=net,
        field_diffs=diffs,
        is_critical=True,
        fields_added=[d.field_path for d in diffs if d.change_type == "added"],
        fields_removed=[d.field_path for d in diffs if d.change_type == "removed"],
        fields_modified=[d.field_path for d in diffs if d.change_type == "modified"],
    )
