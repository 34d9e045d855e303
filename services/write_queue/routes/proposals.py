"""Proposing changes: v2 create/update/add/delete, and v1 writes on a legacy-canonical PRIMARY."""

from __future__ import annotations

from collections.abc import Callable
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
from horde_model_records.categories import IMAGE_STYLES, KNOWN_BASELINES
from horde_model_records.convert import ConversionError
from horde_model_records.licensing import (
    CREATED_WITHOUT_NOTES,
    UNKNOWN_LICENSING_JSON,
    ModelLicensing,
)
from horde_model_records.records import ImageGenerationRecord, ModelRecord
from horde_model_records.serde import catalog_converter
from horde_model_records.served import stored_fields
from horde_model_records.text import GENERATION_PARAMS
from shared.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    validation_item,
)
from shared.http import ApiRoutes, Handler
from shared.openapi import docs, record_schema_name, ref
from shared.wire import JsonObject, read_json, respond

from ..auth import api_key_of
from ..guards import (
    aidentify,
    loaded_queue,
    path_category,
    require_primary,
    require_queue,
    require_v2_canonical,
)
from ..keys import write_config_key
from ..licensing import check_model_licensing
from ..models import Change, Identity, Operation, Proposal, keep_creation, name_problem
from ..openapi import CATEGORY, MODEL_NAME, NO_QUEUE, REPLICA, SECURITY, authenticated
from ..queue import WriteQueue
from ..wire import compact

routes = ApiRoutes()
_PREFIX_MSG = (
    "Model name '{name}' contains a backend prefix (aphrodite/, koboldcpp/). Submit only the base "
    "model name — backend duplicates are {what} automatically."
)


def _not_an_object() -> InvalidInput:
    return InvalidInput(
        [validation_item("model_attributes_type", ["body"], "Input should be an object", None)]
    )


def _validated(category: Category, body: Any) -> JsonObject:
    """The body as the category's record (422 on failure), serialised the way it is queued."""
    if not isinstance(body, dict):
        raise _not_an_object()
    # a record as read back (licensing default, text guidance) proposes no licensing change
    record = structure_record(category, stored_fields({**body, "record_type": category.value}))
    _check_known(record)
    payload = unstructure_record(record)
    if category is Category.image_generation:
        # alternative spellings (SDXL, SD15...) are stored as the canonical baseline
        payload["baseline"] = KNOWN_BASELINES.get(payload["baseline"], payload["baseline"])
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


def _check_known(record: ModelRecord) -> None:
    """What a reader keeps when it does not know it, a proposal must get right: unknown fields,
    image baselines and styles are a 422 naming each (readers keep them; writers fix typos)."""
    problems = [
        validation_item("extra_forbidden", ["body", key], "Unknown field", None)
        for key in sorted(record.unknown_fields)
    ]
    # an unknown baseline is not a body error: the catalog check after the guards refuses it
    # (spec 06 §2.2)
    if isinstance(record, ImageGenerationRecord):
        if record.style is not None and record.style not in IMAGE_STYLES:
            message = f"Unknown style '{record.style}'. Known: {sorted(IMAGE_STYLES)}"
            problems.append(validation_item("enum", ["body", "style"], message, record.style))
    if problems:
        raise InvalidInput(problems)


def _check_catalogued(payload: JsonObject, catalog: JsonObject) -> None:
    """An image model names a baseline of the live catalog (checked after the vocabulary: a
    baseline deleted from the catalog stays known to records, but takes no new models)."""
    baseline = payload.get("baseline")
    if baseline not in catalog["baselines"]:
        raise InvalidInput(
            f"Unknown baseline '{baseline}'. Publish it through "
            "/model_references/v2/image_generation/baselines/change-sets before submitting "
            "models that use it."
        )


def _check_settings(settings: JsonObject | None) -> None:
    """Text settings: generation parameters only, each a scalar or a flat list."""
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
    queue: WriteQueue, category: Category, operation: Operation, name: str, missing: str
) -> JsonObject | None:
    """The name is usable, has no backend prefix, and exists (or not) as the operation needs;
    the live record, if any."""
    if not name.strip():
        raise InvalidInput("Model name must not be empty or whitespace-only.")
    if "\\" in name:
        raise InvalidInput(f"Model name must not contain invalid characters \\: '{name}'")
    _check_prefix(category, name, "deleted" if operation == "delete" else "generated")
    problem = name_problem(category, name)
    if problem is not None:
        raise InvalidInput(problem)
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


def _created_licensing(request: web.Request) -> JsonObject:
    """What a create without `licensing` stores (spec 06 §1.2): a NOASSERTION conclusion noting
    none was supplied, or a 422 when the deployment requires an explicit one."""
    if request.config_dict[write_config_key].require_explicit_model_licensing:
        raise InvalidInput("New v2 model records require an explicit licensing conclusion.")
    return {**UNKNOWN_LICENSING_JSON, "notes": CREATED_WITHOUT_NOTES}


def _check_prefix(category: Category, name: str, what: str) -> None:
    if category is Category.text_generation and has_backend_prefix(name):
        raise BadRequest(_PREFIX_MSG.format(name=name, what=what))


async def _propose(
    request: web.Request, operation: Operation, route: str, typed_put: bool = False
) -> web.StreamResponse:
    api_key_of(request)  # a key must be present before anything else is looked at
    category = path_category(request, "model_category_name")
    path_name = request.match_info.get("model_name")
    payload = None
    cleared = False
    if operation != "delete":
        body = await read_json(request)
        cleared = isinstance(body, dict) and "licensing" in body and body["licensing"] is None
        payload = _validated(category, body)
        if typed_put and payload["name"] != path_name:
            raise BadRequest("Model name in the path must match the payload when queuing updates.")
    who = await aidentify(request, "requestor")
    require_primary(request)
    require_v2_canonical(request, category)
    name = path_name if payload is None else payload["name"]
    assert name is not None
    queue = loaded_queue(request)
    live = _check_target(queue, category, operation, name, missing="not found in")
    if cleared:  # spec 06 §1.2: after the existence checks
        raise InvalidInput(
            "licensing cannot be explicitly cleared; omit it to preserve the current conclusion."
        )
    if operation == "delete":
        payload = live
    if operation == "update" and payload is not None:
        payload = keep_creation(payload, live)
    if payload is not None and "licensing" not in payload:
        if operation == "create":
            payload["licensing"] = _created_licensing(request)
        elif live is not None and "licensing" in live:
            payload["licensing"] = live["licensing"]  # omitted: the conclusion stays
    if category is Category.image_generation and payload is not None:
        _check_catalogued(payload, queue.live().catalogs.baselines)
    if payload is not None and isinstance(payload.get("licensing"), dict):
        definitions = queue.live().catalogs.licensing["licenses"]["records"]
        conclusion = catalog_converter.structure(payload["licensing"], ModelLicensing)
        check_model_licensing(conclusion, definitions)
    proposal = Proposal(
        category=category, operation=operation, name=name, payload=payload, route=route
    )
    return await _aenqueue(request, who, proposal)


async def _aenqueue(request: web.Request, who: Identity, proposal: Proposal) -> web.StreamResponse:
    change = await require_queue(request).aenqueue(who, proposal)
    return respond(compact(change), status=202)


_ANY_RECORD = {
    "anyOf": [ref(record_schema_name(c)) for c in Category],
    "description": "A v2 record of the category in the path.",
}
_QUEUED = "Queued: the new change, null fields omitted."
_PREFIX_400 = "text_generation: the name has a backend prefix (aphrodite/, koboldcpp/)"
_PROPOSE_503 = (REPLICA, "the deployment is legacy-canonical (v2 writes off)", NO_QUEUE)
_PROPOSE_ERRORS = {
    **authenticated("requestor", *_PROPOSE_503),
    400: f"Not possible: {_PREFIX_400}.",
    422: "Unknown category, or a body failing the record schema.",
}


def _propose_docs(
    summary: str, *, body: bool = True, **errors: str
) -> Callable[[Handler], Handler]:
    return docs(
        summary,
        tags=("proposals",),
        security=SECURITY,
        path={"category": CATEGORY, "model_name": MODEL_NAME},
        body=_ANY_RECORD if body else None,
        answer=Change,
        status=202,
        answer_description=_QUEUED,
        errors={**_PROPOSE_ERRORS, **{int(code[1:]): text for code, text in errors.items()}},
    )


@routes.api("POST", "/{category}/add")
@_propose_docs(
    "Propose a new model (category from the path)",
    _409="A model of that name exists in the category: use PUT.",
)
async def create_model_generic(request: web.Request) -> web.StreamResponse:
    return await _propose(request, "create", "create_v2_model")


@routes.api("POST", "/{category}")
@_propose_docs("Propose a new model", _409="A model of that name exists in the category: use PUT.")
async def create_model(request: web.Request) -> web.StreamResponse:
    category = request.match_info["category"]
    return await _propose(request, "create", f"create_v2_{category}")


@routes.api("PUT", "/{category}/model/{model_name:.+}")
@_propose_docs(
    "Propose replacing a model",
    _400=f"The path's name differs from the body's, or {_PREFIX_400}.",
    _404="No such model in the category: use POST.",
)
async def update_model(request: web.Request) -> web.StreamResponse:
    category = request.match_info["category"]
    return await _propose(request, "update", f"update_v2_{category}", typed_put=True)


@routes.api("DELETE", "/{category}/model/{model_name:.+}")
@_propose_docs(
    "Propose deleting a model",
    body=False,
    _404="No such model in the category.",
    _422="Unknown category, or a blank name or one containing `\\`.",
)
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


def _validated_legacy(category: Category, body: Any) -> JsonObject:
    """A legacy record as submitted, once it is known to convert to a valid v2 record (else 422)."""
    if not isinstance(body, dict):
        raise _not_an_object()
    try:
        legacy_to_v2(category, body)
    except ConversionError as exc:
        raise InvalidInput(
            [validation_item("value_error", ["body", exc.field or "config"], str(exc), None)]
        ) from None
    return body


_LEGACY_ROUTES: dict[str, str] = {
    "create": "create_legacy_{}_model",
    "delete": "delete_legacy_model",
}


def _legacy_route(category: Category, operation: Operation) -> str:
    if operation == "update":
        if category is Category.image_generation:
            return "update_legacy_model"
        return f"update_legacy_{category.value}_model"
    return _LEGACY_ROUTES[operation].format(category.value)


@routes.api("POST", "/{category}", versions=("v1",))
@routes.api("PUT", "/{category}", versions=("v1",))
@routes.api("DELETE", "/{category}/model/{model_name:.+}", versions=("v1",))
@docs(
    "v1 (legacy) write: create (POST), update (PUT) or delete",
    description="Only on a legacy-canonical PRIMARY (elsewhere 503). The body is a legacy "
    "record of the category (text: a db.json entry with a base name); it is queued as sent "
    "and, once applied, becomes the model's v1 entry verbatim while v2 gets its conversion.",
    tags=("proposals",),
    security=SECURITY,
    path={
        "category": {"schema": {"type": "string", "example": "image_generation"}},
        "model_name": MODEL_NAME,
    },
    body={"type": "object", "additionalProperties": True, "description": "A legacy record."},
    body_required=False,
    answer=Change,
    status=202,
    answer_description=_QUEUED,
    errors={
        **authenticated(
            "requestor", REPLICA, "canonical format v2 (v1 writes not offered)", NO_QUEUE
        ),
        400: "text_generation: the name has a backend prefix.",
        404: "Update or delete of a model that does not exist.",
        409: "Create of a model that already exists: use PUT.",
        422: "A category without a legacy format, or a body that is not a valid legacy record.",
    },
)
async def legacy_write(request: web.Request) -> web.StreamResponse:
    """v1 writes: only on a legacy-canonical PRIMARY; the payload stays legacy."""
    api_key_of(request)  # a key must be present before anything else is looked at
    config = request.config_dict[write_config_key]
    if config.canonical_format != "legacy":
        # v1 writes are not offered at all here: say so before looking at the request
        raise Unavailable(
            "This deployment does not expose write operations for this API. "
            "Expected canonical_format='legacy', got 'v2'."
        )
    category = _legacy_category(request)
    operation: Operation = {"POST": "create", "PUT": "update", "DELETE": "delete"}[request.method]  # type: ignore[assignment]  # -- the three methods routed here
    payload: JsonObject | None = None
    if operation == "delete":
        name = request.match_info["model_name"]
    else:
        payload = _validated_legacy(category, await read_json(request))
        name = str(payload["name"])
    queue = loaded_queue(request)
    _check_target(queue, category, operation, name, missing="does not exist in")
    if operation == "delete":
        payload = queue.live_legacy_record(category, name)
    who = await aidentify(request, "requestor")
    require_primary(request)
    proposal = Proposal(
        category=category,
        operation=operation,
        name=name,
        payload=payload,
        route=_legacy_route(category, operation),
        payload_format="legacy",
    )
    return await _aenqueue(request, who, proposal)
