"""The pending queue under /v2/pending_queue and /v1/pending_queue (spec 03 §6-8, §10)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from attrs import frozen
from multidict import MultiDict

from horde_model_records import Category
from shared.errors import BadRequest, InvalidInput, NotFound, Unavailable, validation_item
from shared.query import QueryParser

from ..diff import change_diff
from ..guards import (
    REPLICA_QUEUE,
    aidentify,
    json_response,
    read_json,
    require_primary,
    require_queue,
)
from ..models import STATUSES, Change
from ..queue import ApplyOutcome, is_legacy_change, split_fields

routes = web.RouteTableDef()

PREFIXES = ("/api/model_references/v2/pending_queue", "/api/model_references/v1/pending_queue")
CATEGORIES = tuple(c.value for c in Category)
_FAILURE_STATUS = {
    "PendingChangeNotFoundError": 404,
    "PendingChangeStateError": 400,
    "PendingChangePayloadError": 400,
    "PendingChangeBackendError": 503,
}


def _route(method: str, path: str) -> Any:
    def register(handler: Any) -> Any:
        for prefix in PREFIXES:
            routes.route(method, prefix + path)(handler)
        return handler

    return register


async def _guarded(request: web.Request, role: str | None, primary: bool) -> tuple[Any, Any]:
    """auth -> PRIMARY (for G endpoints) -> queue present, in that order (spec 03 §6)."""
    who = await aidentify(request, role)
    if primary:
        require_primary(request, REPLICA_QUEUE)
    return who, require_queue(request)


def _current(queue: Any, change: Change) -> dict[str, Any] | None:
    """The live state a change is compared with: the legacy record for v1 changes."""
    if is_legacy_change(change):
        return queue.live_legacy_record(change.category, change.model_name)
    return queue.live_record(change.category, change.model_name)


def _page(items: list[Change], offset: int, limit: int) -> dict[str, Any]:
    return {
        "items": [c.to_wire() for c in items[offset : offset + limit]],
        "total": len(items),
        "offset": offset,
        "limit": limit,
    }


MAX_ID = 2**63 - 1  # SQLite's integer range; anything larger cannot name a change


def _path_id(request: web.Request, name: str) -> int:
    p = QueryParser(MultiDict({name: request.match_info[name]}))
    value = p.integer(name, 0, ge=1, le=MAX_ID)
    for error in p.errors:
        error["loc"] = ["path", name]
    p.check()
    return value


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value <= MAX_ID


@frozen
class _ListQuery:
    statuses: tuple[str, ...]
    categories: tuple[str, ...]
    offset: int
    limit: int


def _list_query(request: web.Request) -> tuple[_ListQuery, QueryParser]:
    p = QueryParser(request.query, max_text=200, max_items=100)
    q = _ListQuery(
        statuses=p.choices("statuses", STATUSES),
        categories=p.choices("categories", CATEGORIES),
        offset=p.integer("offset", 0, ge=0),
        limit=p.integer("limit", 50, ge=1, le=500),
    )
    return q, p


def _basic_filter(q: _ListQuery, c: Change) -> bool:
    return (not q.statuses or c.status in q.statuses) and (
        not q.categories or c.category.value in q.categories
    )


@_route("GET", "/changes")
async def list_changes(request: web.Request) -> web.StreamResponse:
    _, queue = await _guarded(request, None, primary=True)
    q, p = _list_query(request)
    batch_id = p.integer("batch_id", 0, ge=1) if "batch_id" in request.query else None
    model_name = p.text("model_name")
    if model_name is not None and not model_name:
        p.errors.append(
            validation_item(
                "string_too_short",
                ["query", "model_name"],
                "String should have at least 1 character",
                "",
                {"min_length": 1},
            )
        )
    requested_by = p.texts("requested_by")
    p.check()
    needle = (model_name or "").lower()
    items = [
        c
        for c in await queue.alist()
        if _basic_filter(q, c)
        and (batch_id is None or c.batch_id == batch_id)
        and needle in c.model_name.lower()
        and (not requested_by or c.requested_by in requested_by)
    ]
    return json_response(_page(items, q.offset, q.limit))


@_route("GET", "/my_changes")
async def list_my_changes(request: web.Request) -> web.StreamResponse:
    who, queue = await _guarded(request, "requestor", primary=True)
    q, p = _list_query(request)
    p.check()
    items = [
        c for c in await queue.alist() if _basic_filter(q, c) and c.requested_by == who.user_id
    ]
    return json_response(_page(items, q.offset, q.limit))


@_route("GET", "/changes/{change_id}")
async def get_change(request: web.Request) -> web.StreamResponse:
    _, queue = await _guarded(request, None, primary=False)
    change = await queue.aget(_path_id(request, "change_id"))
    return json_response(change.to_wire())


@_route("GET", "/changes/{change_id}/diff")
async def get_change_diff(request: web.Request) -> web.StreamResponse:
    _, queue = await _guarded(request, None, primary=False)
    change = await queue.aget(_path_id(request, "change_id"))
    return json_response(change_diff(change, _current(queue, change)))


@_route("GET", "/diffs")
async def list_diffs(request: web.Request) -> web.StreamResponse:
    _, queue = await _guarded(request, None, primary=False)
    raw_ids = request.query.getall("change_ids", [])
    ids: list[int] = []
    for raw in raw_ids:
        try:
            value = int(raw) if len(raw) <= 20 else MAX_ID + 1
        except ValueError:
            value = MAX_ID + 1
        if not 1 <= value <= MAX_ID:
            raise InvalidInput(
                [
                    validation_item(
                        "int_parsing",
                        ["query", "change_ids"],
                        "Input should be a valid integer",
                        raw[:64],
                    )
                ]
            )
        ids.append(value)
    if not 1 <= len(ids) <= 100:
        raise InvalidInput(
            [
                validation_item(
                    "too_short" if not ids else "too_long",
                    ["query", "change_ids"],
                    "Provide between 1 and 100 change ids",
                    len(ids),
                )
            ]
        )
    diffs, errors = [], []
    for cid in ids:
        try:
            change = await queue.aget(cid)
        except NotFound:
            errors.append({"change_id": cid, "error": "Change not found", "error_type": "NotFound"})
            continue
        diffs.append(change_diff(change, _current(queue, change)))
    return json_response({"diffs": diffs, "total": len(ids), "errors": errors})


def _ids(body: dict[str, Any], key: str) -> list[int]:
    raw = body.get(key) or []
    if not isinstance(raw, list) or not all(_is_id(i) for i in raw):
        raise InvalidInput(
            [validation_item("list_type", ["body", key], "Input should be a list of integers", raw)]
        )
    return sorted({i for i in raw if i > 0})


def _strings(body: dict[str, Any], key: str) -> list[str]:
    """A list-of-strings filter (user ids may come as numbers)."""
    raw = body.get(key) or []
    if not isinstance(raw, list) or not all(isinstance(v, str) or _is_id(v) for v in raw):
        raise InvalidInput(
            [validation_item("list_type", ["body", key], "Input should be a list of strings", raw)]
        )
    return [str(v) for v in raw]


def _optional_text(body: dict[str, Any], key: str, max_length: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            [validation_item("string_type", ["body", key], "Input should be a valid string", value)]
        )
    if len(value) > max_length:
        raise InvalidInput(
            [
                validation_item(
                    "string_too_long",
                    ["body", key],
                    f"String should have at most {max_length} characters",
                    value[:64],
                    {"max_length": max_length},
                )
            ]
        )
    return value.strip() or None


async def _object_body(request: web.Request, required: bool = True) -> dict[str, Any]:
    body = await read_json(request, required=required)
    if not isinstance(body, dict):
        raise InvalidInput(
            [validation_item("model_attributes_type", ["body"], "Input should be an object", None)]
        )
    return body


@_route("POST", "/batches")
async def review_batch(request: web.Request) -> web.StreamResponse:
    who, queue = await _guarded(request, "approver", primary=True)
    body = await _object_body(request)
    title = _optional_text(body, "batch_title", 120)
    approved, rejected = _ids(body, "approved_ids"), _ids(body, "rejected_ids")
    reason = _optional_text(body, "reject_reason", 500)
    problems = []
    if title is None:
        problems.append(
            validation_item(
                "value_error",
                ["body", "batch_title"],
                "batch_title must not be blank",
                body.get("batch_title"),
            )
        )
    if not approved and not rejected:
        problems.append(
            validation_item(
                "value_error",
                ["body"],
                "Provide at least one approved or rejected change id.",
                None,
            )
        )
    both = sorted(set(approved) & set(rejected))
    if both:
        problems.append(
            validation_item(
                "value_error",
                ["body"],
                f"Change ids cannot be both approved and rejected: {both}",
                both,
            )
        )
    if rejected and reason is None:
        problems.append(
            validation_item(
                "value_error",
                ["body", "reject_reason"],
                "A reject_reason is required when rejecting changes.",
                None,
            )
        )
    if problems:
        raise InvalidInput(problems)
    assert title is not None
    return json_response(await queue.abatch(who, title, approved, rejected, reason))


@_route("POST", "/purge")
async def purge_changes(request: web.Request) -> web.StreamResponse:
    who, queue = await _guarded(request, "approver", primary=True)
    body = await _object_body(request)
    statuses = _strings(body, "statuses")
    categories = _strings(body, "categories")
    requested_by = _strings(body, "requested_by")
    model_name = _optional_text(body, "model_name", 200)
    purge_all = body.get("purge_all", False) is True
    dry_run = body.get("dry_run", False) is True
    bad = [s for s in statuses if s not in STATUSES] + [
        c for c in categories if c not in CATEGORIES
    ]
    if bad:
        raise InvalidInput(
            [validation_item("enum", ["body"], f"Unknown status or category: {bad}", bad)]
        )
    if not (statuses or categories or requested_by or model_name or purge_all):
        raise InvalidInput(
            [
                validation_item(
                    "value_error",
                    ["body"],
                    "Provide at least one filter or set purge_all=true to clear the entire queue.",
                    None,
                )
            ]
        )
    needle = (model_name or "").lower()

    def matches(c: Change) -> bool:
        return (
            (not statuses or c.status in statuses)
            and (not categories or c.category.value in categories)
            and (not requested_by or c.requested_by in requested_by)
            and needle in c.model_name.lower()
        )

    return json_response(await queue.apurge(who, matches, dry_run))


def _job_id(value: Any, loc: list[str | int]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 120:
        raise InvalidInput(
            [
                validation_item(
                    "string_too_long" if isinstance(value, str) else "string_type",
                    loc,
                    "job_id must be a string of at most 120 characters",
                    str(value)[:64],
                )
            ]
        )
    return value.strip() or None


def _outcome_response(outcome: ApplyOutcome) -> web.StreamResponse:
    status = 200 if outcome.failure is None else _FAILURE_STATUS[outcome.failure.kind]
    return json_response(outcome.to_wire(), status=status)


@_route("POST", "/changes/{change_id}/apply")
async def apply_change(request: web.Request) -> web.StreamResponse:
    who, queue = await _guarded(request, "approver", primary=True)
    change_id = _path_id(request, "change_id")
    body = await _object_body(request)
    outcome = await queue.aapply(who, [change_id], _job_id(body.get("job_id"), ["body", "job_id"]))
    if outcome.failure is not None:
        failure = outcome.failure
        status = _FAILURE_STATUS[failure.kind]
        if status == 404:
            raise NotFound(failure.message)
        if status == 503:
            raise Unavailable(failure.message)
        raise BadRequest(failure.message)
    return json_response(
        {"record": outcome.applied[0].to_wire(omit_nulls=True), **split_fields(outcome.split)}
    )


async def _check_cohesion(queue: Any, ids: list[int]) -> None:
    batches = []
    for cid in ids:
        data = await queue.store.get_change(cid)
        if data is None:
            raise NotFound(f"Change {cid} not found")
        batches.append(data.get("batch_id"))
    if any(b is None for b in batches):
        raise BadRequest("Cannot apply changes that have not been approved in a batch")
    distinct = sorted(set(batches))
    if len(distinct) > 1:
        raise BadRequest(f"All changes must belong to the same batch. Found batch IDs: {distinct}")


@_route("POST", "/apply")
async def apply_changes(request: web.Request) -> web.StreamResponse:
    who, queue = await _guarded(request, "approver", primary=True)
    body = await _object_body(request)
    raw = body.get("change_ids")
    if not isinstance(raw, list) or not raw or not all(_is_id(i) and i > 0 for i in raw):
        raise InvalidInput(
            [
                validation_item(
                    "value_error",
                    ["body", "change_ids"],
                    "change_ids must be a non-empty list of positive integers",
                    raw,
                )
            ]
        )
    ids = list(dict.fromkeys(raw))
    job = _job_id(body.get("job_id"), ["body", "job_id"])
    if body.get("allow_mixed_batch", False) is not True:
        await _check_cohesion(queue, ids)
    return _outcome_response(await queue.aapply(who, ids, job))


@_route("POST", "/apply_batch/{batch_id}")
async def apply_batch(request: web.Request) -> web.StreamResponse:
    who, queue = await _guarded(request, "approver", primary=True)
    batch_id = _path_id(request, "batch_id")
    job = _job_id(request.query.get("job_id"), ["query", "job_id"])
    members = [c for c in await queue.alist() if c.batch_id == batch_id]
    if not members:
        raise NotFound(f"No changes found for batch {batch_id}")
    approved = [c.change_id for c in members if c.status == "approved"]
    if not approved:
        if all(c.status == "applied" for c in members if c.status != "rejected"):
            return json_response({"applied": [], "batch_split_occurred": False})
        raise NotFound(f"No approved changes found in batch {batch_id}")
    return _outcome_response(await queue.aapply(who, approved, job))
