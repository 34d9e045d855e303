"""The caller's roles and the beta (pending) models of a category (spec 03 §2, §12)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from horde_model_records import legacy_to_v2, unstructure_record

from ..guards import aidentify, json_response, path_category, require_queue
from ..queue import is_legacy_change

routes = web.RouteTableDef()


@routes.get("/api/model_references/v2/me/roles")
async def get_my_roles(request: web.Request) -> web.StreamResponse:
    who = await aidentify(request, None)
    roles = sorted(who.roles)
    return json_response(
        {
            "user_id": who.user_id,
            "username": who.username,
            "roles": roles,
            "is_approver": who.is_approver,
            "is_requestor": who.is_requestor,
        }
    )


@routes.get("/api/model_references/v2/{category}/pending")
async def list_beta_models(request: web.Request) -> web.StreamResponse:
    """Create/update payloads still pending or approved; the newest change per name wins."""
    category = path_category(request, "model_category_name")
    await aidentify(request, None)
    queue = require_queue(request)
    latest: dict[str, Any] = {}
    order: dict[str, tuple[int, int]] = {}
    for change in await queue.alist(statuses=["pending", "approved"]):
        if change.category is not category or change.operation == "delete":
            continue
        key = (change.updated_at, change.change_id)
        if change.model_name not in order or key > order[change.model_name]:
            order[change.model_name] = key
            payload = change.payload
            if is_legacy_change(change) and payload is not None:
                # legacy-canonical payloads are legacy records: show them as v2 (spec 03 §12)
                payload = unstructure_record(legacy_to_v2(category, payload))
            latest[change.model_name] = payload
    return json_response(latest)
