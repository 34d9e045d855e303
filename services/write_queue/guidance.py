"""Text guidance change sets and the legacy instruct-format migration preview.

Pure functions over the stored guidance catalog JSON ({metadata, profiles, assignments}); one dry
run serves proposal, diff and apply, as for image baselines. Unlike upstream, an apply whose end
states already hold is a no-op, so a retried apply succeeds.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import cattrs

from horde_model_records import ModelRecord, has_backend_prefix
from horde_model_records.guidance import PROFILE_KINDS, GuidanceAssignment
from horde_model_records.serde import catalog_converter
from horde_model_records.text import GENERATION_PARAMS
from shared.errors import Conflict, InvalidInput, validation_items
from shared.wire import JsonObject

from .catalog_wire import GuidanceChangeSet

_PROFILE_ID = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
_RAW_HTML = re.compile(r"<\s*/?\s*[A-Za-z!?][^>]*>")
MIGRATION_TITLE = "Migrate legacy instruct-format guidance"


def _structure(data: Any, cls: type[Any], loc: list[str | int]) -> Any:
    try:
        return catalog_converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise InvalidInput(validation_items(exc, loc)) from None


def _profile(data: Any, loc: list[str | int]) -> JsonObject:
    """A profile in full shape (defaults filled), its rules checked; 422 otherwise."""
    kind = data.get("kind") if isinstance(data, dict) else None
    cls = PROFILE_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInput(
            [
                {
                    "type": "union_tag_invalid",
                    "loc": [*loc, "kind"],
                    "msg": "Input tag is not 'prompt_contract' or 'usage_recipe'",
                    "input": kind,
                }
            ]
        )
    profile = _structure(data, cls, loc)
    if not _PROFILE_ID.match(profile.profile_id):
        raise InvalidInput("profile_id must be a lowercase URL-safe identifier.")
    texts = [profile.summary]
    for audience in (profile.user, profile.developer):
        texts += [audience.overview, *audience.use_cases, *audience.tips, *audience.caveats]
    if any(_RAW_HTML.search(t) for t in texts):
        raise InvalidInput("Guidance CommonMark must not contain raw HTML.")
    if any(not example.messages for example in profile.examples):
        raise InvalidInput("A guidance example needs at least one message.")
    if any(not s.url.startswith(("http://", "https://")) for s in profile.sources):
        raise InvalidInput("A guidance source URL must be http or https.")
    if kind == "prompt_contract":
        if not profile.interaction_modes:
            raise InvalidInput("A prompt contract needs at least one interaction mode.")
        if any(t.syntax == "other" and not t.syntax_name for t in profile.templates):
            raise InvalidInput("syntax_name is required when template syntax is 'other'.")
    out: JsonObject = catalog_converter.unstructure(profile)
    return out


def _assignment(data: Any, loc: list[str | int]) -> JsonObject:
    assignment = _structure(data, GuidanceAssignment, loc)
    ids = [assignment.primary_profile_id, *assignment.supplemental_profile_ids]
    if len(ids) != len(set(ids)):
        raise InvalidInput("A guidance profile may be assigned only once to a model.")
    out: JsonObject = catalog_converter.unstructure(assignment)
    return out


def _settings_keys(profile: JsonObject) -> set[str]:
    keys = set(profile.get("recommended_settings", {}))
    for example in profile.get("ai_horde_examples", []):
        keys |= set(example.get("parameters", {}))
    return keys


def check_settings(payload: JsonObject) -> None:
    """Every settings key of the normalized change set's profiles (recommended settings, AI-Horde
    example parameters) is a text generation setting (422 naming the others)."""
    unknown: set[str] = set()
    for change in payload["profile_changes"]:
        if change["profile"] is not None:
            unknown |= _settings_keys(change["profile"]) - GENERATION_PARAMS
    if unknown:
        raise InvalidInput(f"Unknown text generation settings: {', '.join(sorted(unknown))}")


def normalized_change_set(change_set: GuidanceChangeSet) -> JsonObject:
    """The change set as queued: profiles and assignments in full shape (422 when one is not);
    settings keys are checked later (check_settings, after authentication)."""
    if not change_set.profile_changes and not change_set.assignment_changes:
        raise InvalidInput("A guidance change set must contain at least one change.")
    profiles = []
    for i, change in enumerate(change_set.profile_changes):
        loc: list[str | int] = ["body", "profile_changes", i]
        out: JsonObject = {"operation": change.operation, "profile_id": change.profile_id}
        out["profile"] = (
            None if change.profile is None else _profile(change.profile, [*loc, "profile"])
        )
        out["expected_before"] = (
            None
            if change.expected_before is None
            else _profile(change.expected_before, [*loc, "expected_before"])
        )
        profiles.append(out)
    assignments = []
    for i, a in enumerate(change_set.assignment_changes):
        loc = ["body", "assignment_changes", i]
        assignments.append(
            {
                "model_name": a.model_name,
                "assignment": None
                if a.assignment is None
                else _assignment(a.assignment, [*loc, "assignment"]),
                "expected_before": None
                if a.expected_before is None
                else _assignment(a.expected_before, [*loc, "expected_before"]),
            }
        )
    return {
        "title": change_set.title,
        "profile_changes": profiles,
        "assignment_changes": assignments,
    }


def _stamp(record: JsonObject, old: JsonObject | None, editor: str | None, now: int) -> JsonObject:
    meta = (old or {}).get("metadata") or {}
    return {
        **record,
        "metadata": {
            "revision": meta["revision"] + 1 if old is not None else 1,
            "created_at": meta.get("created_at") if old is not None else now,
            "created_by": meta.get("created_by") if old is not None else editor,
            "updated_at": now,
            "updated_by": editor,
        },
    }


def _check_invariants(catalog: JsonObject, text_models: set[str]) -> None:
    profiles: dict[str, Any] = catalog["profiles"]
    seen: dict[str, str] = {}
    for pid, profile in profiles.items():
        if profile["profile_id"] != pid:
            raise InvalidInput(f"Guidance profile key '{pid}' does not match its profile_id.")
        for alias in profile.get("aliases", []):
            folded = alias.casefold()
            if seen.get(folded, pid) != pid:
                raise InvalidInput(f"Guidance alias '{alias}' is used by two profiles.")
            seen[folded] = pid
    for model, assignment in catalog["assignments"].items():
        if assignment["model_name"] != model:
            raise InvalidInput(f"Guidance assignment key '{model}' does not match its model.")
        if has_backend_prefix(model) or model not in text_models:
            raise InvalidInput(f"Unknown canonical text model: {model}")
        primary = profiles.get(assignment["primary_profile_id"])
        if primary is None or primary["kind"] != "prompt_contract" or primary["deprecated"]:
            raise InvalidInput(f"Assignment for '{model}' requires an active prompt contract.")
        for pid in assignment.get("supplemental_profile_ids", []):
            recipe = profiles.get(pid)
            if recipe is None or recipe["kind"] != "usage_recipe" or recipe["deprecated"]:
                raise InvalidInput(
                    f"Assignment for '{model}' supplemental profiles must be active usage recipes."
                )


def guidance_dry_run(
    catalog: JsonObject,
    payload: JsonObject,
    text_models: set[str],
    editor_id: str | None,
    now: int,
) -> JsonObject:
    """The catalog with the change set applied (a copy); Conflict (409) when something changed
    after review, InvalidInput (422) when the result breaks the catalog's rules."""
    candidate = copy.deepcopy(catalog)
    profiles: dict[str, Any] = candidate["profiles"]
    assignments: dict[str, Any] = candidate["assignments"]
    for change in payload["profile_changes"]:
        pid = change["profile_id"]
        current = profiles.get(pid)
        if current != change.get("expected_before"):
            raise Conflict(f"Guidance profile '{pid}' changed after review.")
        operation, profile = change["operation"], change.get("profile")
        if operation == "create" and (current is not None or profile is None):
            raise InvalidInput(f"Cannot create guidance profile '{pid}'.")
        if operation in ("update", "deprecate") and current is None:
            raise InvalidInput(f"Cannot {operation} missing guidance profile '{pid}'.")
        if operation == "deprecate":
            profiles[pid] = _stamp({**current, "deprecated": True}, current, editor_id, now)
            continue
        if profile is None or profile["profile_id"] != pid:
            raise InvalidInput(
                f"Cannot {operation} guidance profile '{pid}' without a matching profile."
            )
        profiles[pid] = _stamp(profile, current, editor_id, now)
    for change in payload["assignment_changes"]:
        model = change["model_name"]
        current = assignments.get(model)
        if current != change.get("expected_before"):
            raise Conflict(f"Guidance assignment for '{model}' changed after review.")
        assignment = change.get("assignment")
        if assignment is None:
            if current is None:
                raise InvalidInput(f"Cannot remove missing guidance assignment for '{model}'.")
            del assignments[model]
            continue
        if assignment["model_name"] != model:
            raise InvalidInput(f"Guidance assignment for '{model}' names another model.")
        assignments[model] = _stamp(assignment, current, editor_id, now)
    _check_invariants(candidate, text_models)
    return candidate


def _same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal but for server-owned metadata."""
    if a is None or b is None:
        return a is b
    return {**a, "metadata": None} == {**b, "metadata": None}


def _end_states_hold(catalog: JsonObject, payload: JsonObject) -> bool:
    for change in payload["profile_changes"]:
        current = catalog["profiles"].get(change["profile_id"])
        if change["operation"] == "deprecate":
            if current is None or not current["deprecated"]:
                return False
        elif not _same(current, change.get("profile")):
            return False
    for change in payload["assignment_changes"]:
        if not _same(catalog["assignments"].get(change["model_name"]), change.get("assignment")):
            return False
    return True


def applied_guidance(
    catalog: JsonObject,
    payload: JsonObject,
    text_models: set[str],
    editor_id: str | None,
    now: int,
) -> JsonObject:
    """The catalog after an apply (revision bumped); the live one itself when the change set's
    end states already hold (upstream conflicts there instead)."""
    if _end_states_hold(catalog, payload):
        return catalog
    candidate = guidance_dry_run(catalog, payload, text_models, editor_id, now)
    candidate["metadata"] = {
        **candidate["metadata"],
        "revision": candidate["metadata"]["revision"] + 1,
        "updated_at": now,
    }
    return candidate


def affected_models(payload: JsonObject) -> list[str]:
    return list(dict.fromkeys(c["model_name"] for c in payload["assignment_changes"]))


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "prompt-contract"


def migration_preview(catalog: JsonObject, records: Iterable[ModelRecord]) -> JsonObject:
    """A change set turning every legacy instruct_format label into a prompt contract (reusing a
    profile whose display name or alias matches) and assigning it to the unassigned models."""
    profiles: dict[str, Any] = catalog["profiles"]
    by_label: dict[str, str] = {}
    for pid, profile in profiles.items():
        for label in [profile["display_name"], *profile.get("aliases", [])]:
            by_label.setdefault(label.casefold(), pid)
    taken = set(profiles)
    new_profiles: list[JsonObject] = []
    assignments: list[JsonObject] = []
    for record in records:
        label = (getattr(record, "instruct_format", None) or "").strip()
        if not label:
            continue
        found = by_label.get(label.casefold())
        if found is not None:
            pid = found
        else:
            base = _slug(label)
            pid, n = base, 2
            while pid in taken:
                pid, n = f"{base}-{n}", n + 1
            taken.add(pid)
            by_label[label.casefold()] = pid
            profile = _profile(
                {
                    "kind": "prompt_contract",
                    "profile_id": pid,
                    "display_name": label,
                    "aliases": [label],
                    "summary": f"Review and document the legacy {label} prompt contract.",
                    "interaction_modes": ["instruction"],
                },
                ["preview"],
            )
            new_profiles.append(
                {
                    "operation": "create",
                    "profile_id": pid,
                    "profile": profile,
                    "expected_before": None,
                }
            )
        if record.name in catalog["assignments"]:
            continue
        assignments.append(
            {
                "model_name": record.name,
                "assignment": _assignment(
                    {"model_name": record.name, "primary_profile_id": pid}, ["preview"]
                ),
                "expected_before": None,
            }
        )
    change_set = None
    if new_profiles or assignments:
        change_set = {
            "title": MIGRATION_TITLE,
            "profile_changes": new_profiles,
            "assignment_changes": assignments,
        }
    return {
        "change_set": change_set,
        "source_model_count": len(assignments),
        "format_count": len(new_profiles),
    }
