"""Audit views under .../pending_queue/audit, both prefixes, reader role (spec 03 §11)."""

from __future__ import annotations

import time

from aiohttp import web
from multidict import MultiDict

from shared.errors import NotFound
from shared.query import QueryParser

from ..audit import AuditReplay
from ..guards import aidentify, json_response, require_queue
from ..keys import write_config_key

routes = web.RouteTableDef()

PREFIXES = (
    "/api/model_references/v2/pending_queue/audit",
    "/api/model_references/v1/pending_queue/audit",
)


async def _replay(request: web.Request) -> tuple[str, AuditReplay]:
    await aidentify(request, None)
    queue = require_queue(request)
    p = QueryParser(request.query)
    override = p.choices("domain_override", ("v2", "legacy"))
    p.check()
    domain = override[-1] if override else request.config_dict[write_config_key].canonical_format
    return domain, AuditReplay.of(await queue.store.audit_events(domain))


async def get_current(request: web.Request) -> web.StreamResponse:
    domain, replay = await _replay(request)
    pending = replay.current()
    return json_response(
        {
            "domain": domain,
            "pending_changes": pending,
            "total_pending": len(pending),
            "generated_at": int(time.time()),
        }
    )


async def list_batches(request: web.Request) -> web.StreamResponse:
    p = QueryParser(request.query)
    cursor = p.integer("cursor", 0, ge=1) if "cursor" in request.query else None
    limit = p.integer("limit", 10, ge=1, le=50)
    p.check()
    domain, replay = await _replay(request)
    batches, next_cursor = replay.batch_page(cursor, limit)
    return json_response({"domain": domain, "batches": batches, "next_cursor": next_cursor})


def _batch_id(request: web.Request) -> int:
    p = QueryParser(MultiDict(batch_id=request.match_info["batch_id"]))
    value = p.integer("batch_id", 0, ge=1)
    p.check()
    return value


async def get_batch(request: web.Request) -> web.StreamResponse:
    batch_id = _batch_id(request)
    domain, replay = await _replay(request)
    detail = replay.batch_detail(batch_id)
    if detail is None:
        raise NotFound("Batch not found")
    return json_response({"domain": domain, **detail})


async def get_batch_net_changes(request: web.Request) -> web.StreamResponse:
    batch_id = _batch_id(request)
    domain, replay = await _replay(request)
    net = replay.net_changes(batch_id)
    if net is None:
        raise NotFound("Batch not found")
    return json_response({**net, "domain": domain, "generated_at": int(time.time())})


for _prefix in PREFIXES:
    routes.get(_prefix + "/current")(get_current)
    routes.get(_prefix + "/batches")(list_batches)
    routes.get(_prefix + "/batches/{batch_id}")(get_batch)
    routes.get(_prefix + "/batches/{batch_id}/net_changes")(get_batch_net_changes)
