"""The queue's history, rebuilt from the audit log: pending changes, batches, net changes."""

from __future__ import annotations

import time

from aiohttp import web

from shared.errors import NotFound
from shared.http import ApiRoutes
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
)

routes = ApiRoutes()

AUDIT = "/pending_queue/audit"
BOTH = ("v2", "v1")
_ERRORS = {
    **authenticated(None, NO_QUEUE, "the audit trail is disabled"),
    422: "A bad parameter value.",
}


def _audit_docs(summary: str, answer: type, **fields: object) -> object:
    return docs(
        summary,
        tags=("audit",),
        security=SECURITY,
        answer=answer,
        answer_headers=NO_STORE,
        **fields,  # type: ignore[arg-type] -- docs() checks its own keywords
    )


async def _replay(request: web.Request, override: Domain | None) -> tuple[Domain, AuditReplay]:
    await aidentify(request, None)
    queue = require_queue(request)
    domain = override or request.config_dict[write_config_key].canonical_format
    return domain, await queue.areplay(domain)


@routes.api("GET", AUDIT + "/current", versions=BOTH)
@_audit_docs(
    "Changes still pending, from the audit log", AuditCurrent, query=AuditQuery, errors=_ERRORS
)
async def get_current(request: web.Request) -> web.StreamResponse:
    query = read_query(request, AuditQuery)
    domain, replay = await _replay(request, query.domain_override)
    pending = replay.current()
    return respond(
        AuditCurrent(
            domain=domain,
            pending_changes=pending,
            total_pending=len(pending),
            generated_at=int(time.time()),
        )
    )


@routes.api("GET", AUDIT + "/batches", versions=BOTH)
@_audit_docs("Batches, newest first", AuditBatchPage, query=BatchesQuery, errors=_ERRORS)
async def list_batches(request: web.Request) -> web.StreamResponse:
    query = read_query(request, BatchesQuery)
    domain, replay = await _replay(request, query.domain_override)
    batches, next_cursor = replay.batch_page(query.cursor, query.limit)
    return respond(AuditBatchPage(domain=domain, batches=batches, next_cursor=next_cursor))


_BATCH_ERRORS = {**_ERRORS, 404: "No such batch."}


@routes.api("GET", AUDIT + "/batches/{batch_id}", versions=BOTH)
@_audit_docs(
    "A batch and its changes",
    AuditBatchDetail,
    query=AuditQuery,
    path={"batch_id": BATCH_ID},
    errors=_BATCH_ERRORS,
)
async def get_batch(request: web.Request) -> web.StreamResponse:
    batch_id = path_id(request, "batch_id")
    domain, replay = await _replay(request, read_query(request, AuditQuery).domain_override)
    detail = replay.batch_detail(batch_id, domain)
    if detail is None:
        raise NotFound("Batch not found")
    return respond(detail)


@routes.api("GET", AUDIT + "/batches/{batch_id}/net_changes", versions=BOTH)
@_audit_docs(
    "What a batch did to each model",
    BatchNetChange,
    query=AuditQuery,
    path={"batch_id": BATCH_ID},
    errors=_BATCH_ERRORS,
)
async def get_batch_net_changes(request: web.Request) -> web.StreamResponse:
    batch_id = path_id(request, "batch_id")
    domain, replay = await _replay(request, read_query(request, AuditQuery).domain_override)
    net = replay.net_changes(batch_id, domain, int(time.time()))
    if net is None:
        raise NotFound("Batch not found")
    return respond(net)
