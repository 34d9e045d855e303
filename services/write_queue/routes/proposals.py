"""Proposing changes: v2 create/update/add/delete, and v1 writes (spec 03 §3-4)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from horde_model_records import (
    LEGACY_CATEGORIES,
    Category,
    has_backend_prefix,
    legacy_to_v2,
    structure_record,
    unstructure_record,
)
from horde_model_records import text_model_group as group_of
from horde_model_records.categories import KNOWN_BASELINES
from horde_model_records.convert import ConversionError
from horde_model_records.text import GENERATION_PARAMS
from shared.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    validation_item,
)

from ..auth import api_key_of
from ..guards import (
    aidentify,
    json_response,
    path_category,
    read_json,
    require_primary,
    require_queue,
    require_v2_canonical,
)
from ..keys import write_config_key, write_queue_key
from ..queue import WriteQueue

routes = web.RouteTableDef()

V2 = "/api/model_references/v2"
V1 = "/api/model_references/v1"
_PREFIX_MSG = (
    "Model name '{name}' contains a backend prefix (aphrodite/, koboldcpp/). Submit only the base "
    "model name — backend duplicates are {what} automatically."
)


def _validated(category: Category, body: Any) -> dict[str, Any]:
    """The body as the category's record (422 on failure), serialised the way it is queued."""
    if not isinstance(body, dict):
        raise InvalidInput(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Input should be an object",
                    "input": None,
                }
            ]
        )
    record = structure_record(category, {**body, "record_type": category.value})
    payload = unstructure_record(record)
    if category is Category.image_generation:
        # [OURS] alternative spellings (SDXL, SD15...) are stored as the canonical baseline
        payload["baseline"] = KNOWN_BASELINES[payload["baseline"]]
    if category is Category.text_generation and not payload.get("text_model_group"):
        payload["text_model_group"] = group_of(record.name)
    if category is Category.text_generation:
        _check_settings(payload.get("settings"))
    if category is Category.text_generation and payload.get("parameters", 0) <= 0:
        raise InvalidInput(
            [
                {
                    "type": "greater_than",
                    "loc": ["body", "parameters"],
                    "msg": "Input should be greater than 0",
                    "input": payload.get("parameters"),
                    "ctx": {"gt": 0},
                }
            ]
        )
    return payload


def _check_settings(settings: dict[str, Any] | None) -> None:
    """Text settings: generation parameters only, each a scalar or a flat list (spec 01 §3.3)."""
    problems = []
    for key, value in (settings or {}).items():
        if key not in GENERATION_PARAMS:
            problems.append(
                validation_item(
                    "value_error",
                    ["body", "settings", key],
                    f"Unknown generation parameter '{key}'",
                    key,
                )
            )
        elif isinstance(value, dict) or (
            isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)
        ):
            problems.append(
                validation_item(
                    "value_error",
                    ["body", "settings", key],
                    "Settings values must be scalars or flat lists",
                    None,
                )
            )
    if problems:
        raise InvalidInput(problems)


def _check_target(
    queue: WriteQueue, category: Category, operation: str, name: str, missing: str
) -> dict[str, Any] | None:
    """Guards 4-6 of spec 03 §1 (name, backend prefix, existence); the live record, if any."""
    if not name.strip():
        raise InvalidInput("Model name must not be empty or whitespace-only.")
    if "\\" in name:
        raise InvalidInput(f"Model name must not contain invalid characters \\: '{name}'")
    _check_prefix(category, name, "deleted" if operation == "delete" else "generated")
    live = queue.live_record(category, name)
    where = f"category '{category.value}'"
    if operation == "create" and live is not None:
        raise Conflict(
            f"Model '{name}' already exists in {where}. Use PUT to update existing models."
        )
    if operation == "update" and live is None:
        raise NotFound(f"Model '{name}' {missing} {where}. Use POST to create new models.")
    if operation == "delete" and live is None:
        raise NotFound(f"Model '{name}' not found in {where}")
    return live


def _check_prefix(category: Category, name: str, what: str) -> None:
    if category is Category.text_generation and has_backend_prefix(name):
        raise BadRequest(_PREFIX_MSG.format(name=name, what=what))


async def _propose(
    request: web.Request, operation: str, route: str, typed_put: bool = False
) -> web.StreamResponse:
    api_key_of(request)  # 0: a key must be present before anything else is looked at
    category = path_category(request, "model_category_name")
    path_name = request.match_info.get("model_name")
    payload = None
    if operation != "delete":
        payload = _validated(category, await read_json(request))
        if typed_put and payload["name"] != path_name:
            raise BadRequest("Model name in the path must match the payload when queuing updates.")
    who = await aidentify(request, "requestor")
    require_primary(request)
    require_v2_canonical(request, category)
    name = path_name if payload is None else payload["name"]
    assert name is not None
    queue = request.config_dict[write_queue_key]
    live = _check_target(queue, category, operation, name, missing="not found in")
    if operation == "delete":
        payload = live
    if operation == "update" and payload is not None and live is not None:
        old_meta = live.get("metadata") or {}
        meta = dict(payload.get("metadata") or {})
        for key in ("created_at", "created_by"):
            if old_meta.get(key) is not None:
                meta[key] = old_meta[key]
        payload["metadata"] = meta
    queue = require_queue(request)
    change = await queue.aenqueue(who, category, operation, name, payload, route)
    return json_response(change.to_wire(omit_nulls=True), status=202)


@routes.post(V2 + "/{category}/add")
async def create_model_generic(request: web.Request) -> web.StreamResponse:
    return await _propose(request, "create", "create_v2_model")


@routes.post(V2 + "/{category}")
async def create_model(request: web.Request) -> web.StreamResponse:
    category = request.match_info["category"]
    return await _propose(request, "create", f"create_v2_{category}")


@routes.put(V2 + "/{category}/model/{model_name:.+}")
async def update_model(request: web.Request) -> web.StreamResponse:
    category = request.match_info["category"]
    return await _propose(request, "update", f"update_v2_{category}", typed_put=True)


@routes.delete(V2 + "/{category}/model/{model_name:.+}")
async def delete_model(request: web.Request) -> web.StreamResponse:
    return await _propose(request, "delete", "delete_v2_model")


LEGACY_WRITABLE = tuple(c for c in LEGACY_CATEGORIES)


def _legacy_category(request: web.Request) -> Category:
    raw = request.match_info["category"]
    try:
        category = Category(raw)
    except ValueError:
        category = None
    if category not in LEGACY_WRITABLE:
        names = ", ".join(f"'{c.value}'" for c in LEGACY_WRITABLE)
        raise InvalidInput(
            [
                validation_item(
                    "enum",
                    ["path", "category"],
                    f"Input should be {names}",
                    raw,
                    {"expected": names},
                )
            ]
        )
    assert category is not None
    return category


def _validated_legacy(category: Category, body: Any) -> dict[str, Any]:
    """A legacy record as submitted, once it is known to convert to a valid v2 record (else 422)."""
    if not isinstance(body, dict):
        raise InvalidInput(
            [validation_item("model_attributes_type", ["body"], "Input should be an object", None)]
        )
    try:
        legacy_to_v2(category, body)
    except ConversionError as exc:
        raise InvalidInput(
            [validation_item("value_error", ["body", exc.field or "config"], str(exc), None)]
        ) from None
    return body


@routes.post(V1 + "/{category}")
@routes.put(V1 + "/{category}")
@routes.delete(V1 + "/{category}/model/{model_name:.+}")
async def legacy_write(request: web.Request) -> web.StreamResponse:
    """v1 writes (spec 03 §4): only on a legacy-canonical PRIMARY; the payload stays legacy."""
    api_key_of(request)  # 0: a key must be present before anything else is looked at
    config = request.config_dict[write_config_key]
    if config.canonical_format != "legacy":
        # v1 writes are not offered at all here: say so before looking at the request
        raise Unavailable(
            "This deployment does not expose write operations for this API. "
            "Expected canonical_format='legacy', got 'v2'."
        )
    category = _legacy_category(request)
    operation = {"POST": "create", "PUT": "update", "DELETE": "delete"}[request.method]
    payload: dict[str, Any] | None = None
    if operation == "delete":
        name = request.match_info["model_name"]
    else:
        payload = _validated_legacy(category, await read_json(request))
        name = str(payload["name"])
    queue = request.config_dict[write_queue_key]
    _check_target(queue, category, operation, name, missing="does not exist in")
    if operation == "delete":
        payload = queue.live_legacy_record(category, name)
    who = await aidentify(request, "requestor")
    require_primary(request)
    if operation == "create":
        route = f"create_legacy_{category.value}_model"
    elif operation == "update":
        route = (
            "update_legacy_model"
            if category is Category.image_generation
            else f"update_legacy_{category.value}_model"
        )
    else:
        route = "delete_legacy_model"
    queue = require_queue(request)
    change = await queue.aenqueue(who, category, operation, name, payload, route)
    return json_response(change.to_wire(omit_nulls=True), status=202)
