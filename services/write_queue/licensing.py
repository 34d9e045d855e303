"""Licensing writes: licence definitions and non-model assets, edited directly (no queue).

Pure functions over the stored licensing JSON (`{"licenses": dataset, "assets": dataset}`, a
dataset being {schema_version, revision, updated_at, records}); each returns the new JSON and the
audit entry of the write. The queue commits, audits and publishes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import cattrs
from license_expression import ExpressionError, Licensing

from horde_model_records import ModelRecord
from horde_model_records.licensing import (
    NOASSERTION,
    LicenseAssignment,
    LicensedAsset,
    LicenseDefinition,
    ModelLicensing,
    PermissionStatus,
)
from horde_model_records.serde import catalog_converter
from shared.errors import BadRequest, Conflict, InvalidInput, NotFound, validation_items
from shared.wire import JsonObject

_SPDX = Licensing()


def _symbols(expression: str) -> list[str] | None:
    """The licence symbols of an SPDX expression, in order; None when it does not parse."""
    try:
        parsed = _SPDX.parse(expression, validate=False)
    except ExpressionError:
        return None
    if parsed is None:
        return None
    return [str(s) for s in parsed.symbols]


def structure_body(data: Any, cls: type[Any], loc: list[str | int]) -> Any:
    try:
        return catalog_converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise InvalidInput(validation_items(exc, loc)) from None


def _invalid(message: str, loc: list[str | int], value: Any) -> InvalidInput:
    return InvalidInput([{"type": "value_error", "loc": loc, "msg": message, "input": value}])


def check_license_id(license_id: str) -> None:
    """One atomic SPDX identifier or LicenseRef, not NOASSERTION (422 otherwise)."""
    loc: list[str | int] = ["body", "license_id"]
    symbols = _symbols(license_id)
    if symbols is None:
        raise _invalid(f"Invalid license identifier: {license_id}", loc, license_id)
    # the parser takes "has space" as one symbol; an SPDX idstring has neither spaces nor parens
    if symbols != [license_id] or any(c.isspace() or c in "()" for c in license_id):
        raise _invalid(
            "license_id must be one atomic SPDX identifier or LicenseRef", loc, license_id
        )
    if license_id == NOASSERTION:
        raise _invalid(
            "NOASSERTION is a conclusion, not a reusable license definition", loc, license_id
        )


def check_assignment(
    assignment: LicenseAssignment, definitions: JsonObject, loc: list[str | int]
) -> None:
    """SPDX syntax; NOASSERTION means no ids and all unknown; otherwise the expression's symbols
    are exactly the ids; every id names a defined, non-deprecated definition."""
    expression = assignment.license_expression
    symbols = _symbols(expression)
    if symbols is None:
        raise _invalid(f"Invalid license expression: {expression}", loc, expression)
    if expression == NOASSERTION:
        unknown = PermissionStatus.unknown
        if assignment.license_ids:
            raise _invalid("NOASSERTION must not reference license definitions", loc, expression)
        if assignment.commercial_use is not unknown or assignment.redistribution is not unknown:
            raise _invalid("NOASSERTION requires unknown permissions", loc, expression)
    else:
        if set(symbols) != set(assignment.license_ids):
            raise _invalid(
                "license_ids must exactly match the identifiers in license_expression",
                loc,
                expression,
            )
        if not assignment.license_ids:
            raise _invalid(
                "A known license expression must reference at least one definition", loc, expression
            )
    for license_id in assignment.license_ids:
        definition = definitions.get(license_id)
        if definition is None:
            raise InvalidInput(f"Unknown license definition: {license_id}")
        if definition.get("deprecated"):
            raise InvalidInput(
                f"Deprecated license definition cannot be newly assigned: {license_id}"
            )


def check_model_licensing(licensing: ModelLicensing, definitions: JsonObject) -> None:
    """A model's conclusion and each file override (see check_assignment)."""
    check_assignment(licensing, definitions, ["body", "licensing"])
    for name, assignment in licensing.files.items():
        check_assignment(assignment, definitions, ["body", "licensing", "files", name])


def _bumped(dataset: JsonObject, now: int) -> JsonObject:
    return {**dataset, "revision": dataset["revision"] + 1, "updated_at": now}


def _stamped(record: JsonObject, old: JsonObject | None, editor: str, now: int) -> JsonObject:
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


def _audit(
    operation: str, kind: str, key: str, before: JsonObject | None, after: JsonObject | None
) -> JsonObject:
    return {
        "operation": operation,
        "record_kind": kind,
        "record_key": key,
        "before": before,
        "after": after,
    }


def _referenced(license_id: str, licensing: JsonObject, models: Iterable[ModelRecord]) -> bool:
    for asset in licensing["assets"]["records"].values():
        if license_id in asset["licensing"]["license_ids"]:
            return True
    return any(
        record.licensing is not None and license_id in record.licensing.all_license_ids
        for record in models
    )


def write_definition(
    licensing: JsonObject,
    operation: str,
    path_id: str | None,
    body: Any,
    editor: str,
    now: int,
    models: Iterable[ModelRecord],
) -> tuple[JsonObject, JsonObject, JsonObject | None]:
    """(new licensing, audit entry, the definition written) for a create/update/delete."""
    out = copy.deepcopy(licensing)
    records = out["licenses"]["records"]
    if operation == "delete":
        assert path_id is not None
        if _referenced(path_id, licensing, models):
            raise Conflict(f"License definition is still referenced: {path_id}")
        old = records.pop(path_id, None)
        if old is None:
            raise NotFound(f"License definition not found: {path_id}")
        out["licenses"] = _bumped(out["licenses"], now)
        return out, _audit("delete", "license_definition", path_id, old, None), None
    definition = structure_body(body, LicenseDefinition, ["body"])
    check_license_id(definition.license_id)
    if path_id is not None and definition.license_id != path_id:
        raise BadRequest("Path and body license identifiers must match.")
    key = definition.license_id
    old = records.get(key)
    if operation == "create" and old is not None:
        raise Conflict(f"License definition already exists: {key}")
    if operation == "update" and old is None:
        raise NotFound(f"License definition not found: {key}")
    new = _stamped(catalog_converter.unstructure(definition), old, editor, now)
    records[key] = new
    out["licenses"] = _bumped(out["licenses"], now)
    return out, _audit(operation, "license_definition", key, old, new), new


def write_asset(
    licensing: JsonObject,
    operation: str,
    path_key: str | None,
    body: Any,
    editor: str,
    now: int,
) -> tuple[JsonObject, JsonObject, JsonObject | None]:
    """(new licensing, audit entry, the asset written) for a create/update/delete; `path_key`
    is `<kind>:<identifier>`."""
    out = copy.deepcopy(licensing)
    records = out["assets"]["records"]
    if operation == "delete":
        assert path_key is not None
        old = records.pop(path_key, None)
        if old is None:
            raise NotFound(f"Licensed asset not found: {path_key}")
        out["assets"] = _bumped(out["assets"], now)
        return out, _audit("delete", "licensed_asset", path_key, old, None), None
    asset = structure_body(body, LicensedAsset, ["body"])
    if path_key is not None and asset.key != path_key:
        raise BadRequest("Path and body asset identities must match.")
    old = records.get(asset.key)
    if operation == "create" and old is not None:
        raise Conflict(f"Licensed asset already exists: {asset.key}")
    if operation == "update" and old is None:
        raise NotFound(f"Licensed asset not found: {asset.key}")
    check_assignment(asset.licensing, out["licenses"]["records"], ["body", "licensing"])
    new = _stamped(catalog_converter.unstructure(asset), old, editor, now)
    records[asset.key] = new
    out["assets"] = _bumped(out["assets"], now)
    return out, _audit(operation, "licensed_asset", asset.key, old, new), new
