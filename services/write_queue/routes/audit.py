"""The queue's history, rebuilt from the audit log: pending changes, batches, net changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from shared.errors import NotFound
from shared.http import ApiRoutes, Handler
from shared.openapi import docs
from shared.wire import path_id, read_query, respond

from ..audit import AuditReplay
from ..guards import aidentify, require_queue
from ..keys import write_config_key
from ..openapi import BATCH_ID, NO_QUEUE, NO_STORE, SECURITY, authenticated
from ..wire import (
    AuditBatchDetail,
    AuditBatchPage,
    AuditCurrent,
    AuditQuery,
    BatchesQuery,
    BatchNetChange,
    Domain,
    LicensingAuditPage,
    LicensingAuditQuery,
)

routes = ApiRoutes()

AUDIT = "/pending_queue/audit"
BOTH = ("v2", "v1")
_ERRORS = {
    **authenticated(None, NO_QUEUE, "the audit trail is disabled"),
    422: "A bad parameter value.",
}


def _docs(answer: type, **fields: Any) -> Callable[[Handler], Handler]:
    """The operation of an audit view: reader role, no-store answers (summary: the docstring)."""
    errors = {**_ERRORS, **fields.pop("errors", {})}
    return docs(
        tags=("audit",),
        security=SECURITY,
        answer=answer,
        answer_headers=NO_STORE,
        errors=errors,
        **fields,
    )


async def _replay(request: web.Request, override: Domain | None) -> tuple[Domain, AuditReplay]:
    await aidentify(request, None)
    queue = require_queue(request)
    canonical = request.config_dict[write_config_key].canonical_format
    domain: Domain = override or ("legacy" if canonical == "legacy" else "v2")
    return domain, await queue.areplay(domain)


@routes.api("GET", AUDIT + "/current", versions=BOTH)
@_docs(AuditCurrent, query=AuditQuery)
async def get_current(request: web.Request) -> web.StreamResponse:
    """Changes still pending, from the audit log"""
    query = read_query(request, AuditQuery)
    domain, replay = await _replay(request, query.domain_override)
    pending = replay.current()
    now = int(time.time())
    current = AuditCurrent(
        domain=domain, pending_changes=pending, total_pending=len(pending), generated_at=now
    )
    return respond(current)


@routes.api("GET", AUDIT + "/batches", versions=BOTH)
@_docs(AuditBatchPage, query=BatchesQuery)
async def list_batches(request: web.Request) -> web.StreamResponse:
    """Batches, newest first"""
    query = read_query(request, BatchesQuery)
    domain, replay = await _replay(request, query.domain_override)
    batches, next_cursor = replay.batch_page(query.cursor, query.limit)
    return respond(AuditBatchPage(domain=domain, batches=batches, next_cursor=next_cursor))


async def _batch_view(
    request: web.Request, view: Callable[[AuditReplay, int, Domain], object | None]
) -> web.StreamResponse:
    """One view of the batch in the path; 404 when the log knows no such batch."""
    batch_id = path_id(request, "batch_id")
    domain, replay = await _replay(request, read_query(request, AuditQuery).domain_override)
    found = view(replay, batch_id, domain)
    if found is None:
        raise NotFound("Batch not found")
    return respond(found)


_ONE_BATCH = {
    "query": AuditQuery,
    "path": {"batch_id": BATCH_ID},
    "errors": {404: "No such batch."},
}


@routes.api("GET", AUDIT + "/batches/{batch_id}", versions=BOTH)
@_docs(AuditBatchDetail, **_ONE_BATCH)
async def get_batch(request: web.Request) -> web.StreamResponse:
    """A batch and its changes"""
    return await _batch_view(request, AuditReplay.batch_detail)


@routes.api("GET", AUDIT + "/batches/{batch_id}/net_changes", versions=BOTH)
@_docs(BatchNetChange, **_ONE_BATCH)
async def get_batch_net_changes(request: web.Request) -> web.StreamResponse:
    """What a batch did to each model"""
    now = int(time.time())
    return await _batch_view(request, lambda replay, b, d: replay.net_changes(b, d, now))


@routes.api("GET", AUDIT + "/licensing", versions=("v2",))
@_docs(LicensingAuditPage, query=LicensingAuditQuery)
async def list_licensing_writes(request: web.Request) -> web.StreamResponse:
    """Direct licensing writes (licence definitions, assets), newest first"""
    query = read_query(request, LicensingAuditQuery)
    domain, replay = await _replay(request, query.domain_override)
    events, next_cursor = replay.licensing_page(query.cursor, query.limit)
    return respond(LicensingAuditPage(domain=domain, events=events, next_cursor=next_cursor))
