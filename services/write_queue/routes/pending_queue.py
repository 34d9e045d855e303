"""The review queue, served alike under /v2/pending_queue and /v1/pending_queue: list, diff,
approve or reject in batches, purge, apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from shared.errors import Conflict, NotFound
from shared.http import ApiRoutes, Handler, status_of
from shared.openapi import docs
from shared.wire import path_id, read_body, read_query, respond

from ..guards import REPLICA_QUEUE, aidentify, require_primary, require_queue
from ..models import Change, Identity
from ..openapi import (
    BATCH_ID,
    CHANGE_ID,
    NO_QUEUE,
    NO_STORE,
    REPLICA,
    SECURITY,
    authenticated,
    unavailable,
)
from ..queue import ApplyOutcome, WriteQueue
from ..wire import (
    ApplyPendingChangeRequest,
    ApplyPendingChangesResponse,
    ApplySingleChangeResponse,
    ChangesQuery,
    DiffsQuery,
    JobQuery,
    MyChangesQuery,
    PendingBatchRequest,
    PendingBatchResult,
    PendingChangeDiff,
    PendingChangeDiffPage,
    PendingQueuePage,
    PurgePendingChangesResponse,
    compact,
    split_fields,
)
from ..wire import ApplyPendingChangesRequest as ApplyManyBody
from ..wire import ApplyPendingChangesResponse as Applied
from ..wire import PurgePendingChangesRequest as PurgeBody

routes = ApiRoutes()

QUEUE = "/pending_queue"
BOTH = ("v2", "v1")
TAGS = ("pending_queue",)
_NOT_FOUND = "No such change."


async def _guarded(
    request: web.Request, role: str | None, *, primary: bool
) -> tuple[Identity, WriteQueue]:
    """Who is calling, then PRIMARY (for queue changes and listings), then the queue is on."""
    who = await aidentify(request, role)
    if primary:
        require_primary(request, REPLICA_QUEUE)
    return who, require_queue(request)


def _docs(role: str | None, *, primary: bool = True, **fields: Any) -> Callable[[Handler], Handler]:
    """The operation of a queue route: the `apikey` scheme, no-store answers, auth errors."""
    reasons = (REPLICA, NO_QUEUE) if primary else (NO_QUEUE,)
    errors = {**authenticated(role, *reasons), **fields.pop("errors", {})}
    return docs(tags=TAGS, security=SECURITY, answer_headers=NO_STORE, errors=errors, **fields)


_BAD_QUERY = {422: "A bad parameter value."}
_ONE_CHANGE = {404: _NOT_FOUND, 422: "A bad change id."}


@routes.api("GET", QUEUE + "/changes", versions=BOTH)
@_docs(None, query=ChangesQuery, answer=PendingQueuePage, errors=_BAD_QUERY)
async def list_changes(request: web.Request) -> web.StreamResponse:
    """Changes in the queue, any status

    Filters AND together; list filters match any of their values.
    """
    _, queue = await _guarded(request, None, primary=True)
    query = read_query(request, ChangesQuery)
    return respond(PendingQueuePage.of(await queue.alist(query.filter), query.offset, query.limit))


@routes.api("GET", QUEUE + "/my_changes", versions=BOTH)
@_docs("requestor", query=MyChangesQuery, answer=PendingQueuePage, errors=_BAD_QUERY)
async def list_my_changes(request: web.Request) -> web.StreamResponse:
    """The caller's own changes"""
    who, queue = await _guarded(request, "requestor", primary=True)
    query = read_query(request, MyChangesQuery)
    changes = await queue.alist(query.filter(who.user_id))
    return respond(PendingQueuePage.of(changes, query.offset, query.limit))


@routes.api("GET", QUEUE + "/changes/{change_id}", versions=BOTH)
@_docs(None, primary=False, path={"change_id": CHANGE_ID}, answer=Change, errors=_ONE_CHANGE)
async def get_change(request: web.Request) -> web.StreamResponse:
    """One change, null fields included"""
    _, queue = await _guarded(request, None, primary=False)
    return respond(await queue.aget(path_id(request, "change_id")))


@routes.api("GET", QUEUE + "/changes/{change_id}/diff", versions=BOTH)
@_docs(
    None, primary=False, path={"change_id": CHANGE_ID}, answer=PendingChangeDiff, errors=_ONE_CHANGE
)
async def get_change_diff(request: web.Request) -> web.StreamResponse:
    """What one change would do to the live record"""
    _, queue = await _guarded(request, None, primary=False)
    found = await queue.adiffs([path_id(request, "change_id")])
    if not found.diffs and found.errors and found.errors[0].error_type != "NotFound":
        # a catalog change set that no longer applies (stale or already applied): say why
        raise Conflict(found.errors[0].error)
    if not found.diffs:
        raise NotFound("Change not found")
    return respond(found.diffs[0])


@routes.api("GET", QUEUE + "/diffs", versions=BOTH)
@_docs(None, primary=False, query=DiffsQuery, answer=PendingChangeDiffPage, errors=_BAD_QUERY)
async def list_diffs(request: web.Request) -> web.StreamResponse:
    """The diffs of several changes; unknown ids are listed in errors"""
    _, queue = await _guarded(request, None, primary=False)
    return respond(await queue.adiffs(read_query(request, DiffsQuery).change_ids))


_REVIEW_ERRORS = {
    400: "A change does not exist or is not pending; nothing changed.",
    422: "Blank title, no ids, an id in both lists, or rejecting without a reason.",
}


@routes.api("POST", QUEUE + "/batches", versions=BOTH)
@_docs("approver", body=PendingBatchRequest, answer=PendingBatchResult, errors=_REVIEW_ERRORS)
async def review_batch(request: web.Request) -> web.StreamResponse:
    """Approve and reject pending changes

    Approved changes join the open batch (one at a time: every approved, unapplied change
    shares it); rejected ones get the same batch id. All or nothing.
    """
    who, queue = await _guarded(request, "approver", primary=True)
    review = await read_body(request, PendingBatchRequest)
    result = await queue.abatch(who, review.title, review.approved, review.rejected, review.reason)
    return respond(result)


_PURGE_ERRORS = {422: "No filter and not purge_all, or an unknown status or category."}


@routes.api("POST", QUEUE + "/purge", versions=BOTH)
@_docs("approver", body=PurgeBody, answer=PurgePendingChangesResponse, errors=_PURGE_ERRORS)
async def purge_changes(request: web.Request) -> web.StreamResponse:
    """Delete changes from the queue, history included"""
    who, queue = await _guarded(request, "approver", primary=True)
    purge = await read_body(request, PurgeBody)
    return respond(await queue.apurge(who, purge.filter, purge.dry_run))


def _job(job_id: str | None) -> str | None:
    return None if job_id is None else job_id.strip() or None


def _outcome(outcome: ApplyOutcome) -> web.StreamResponse:
    """The answer of a multi-apply: what was applied and, with its status, what failed."""
    failure = outcome.failure
    answer = ApplyPendingChangesResponse(
        applied=outcome.applied,
        failed_change_id=None if failure is None else failure.change_id,
        failed_error=None if failure is None else str(failure.detail),
        failed_error_type=None if failure is None else failure.error_type,  # type: ignore[arg-type]  # -- one of the four kinds
        refused=outcome.refused or None,
        **split_fields(outcome.split),
    )
    return respond(compact(answer), status=200 if failure is None else status_of(failure))


_APPLY_ONE_ERRORS = {
    400: "The change is not approved, is reserved by another job, or has no payload.",
    404: _NOT_FOUND,
    422: "A bad id, body or job_id.",
    503: unavailable(REPLICA, NO_QUEUE, "the dataset could not take the change"),
}
#: a multi-apply answers its outcome with the failure's status, or an error envelope
_APPLY_MANY_ERRORS: dict[int, str | tuple[str, type]] = {
    400: (
        "A change is not approved, is reserved by another job or has no payload (outcome), or "
        "the changes are not all in one batch (detail).",
        ApplyPendingChangesResponse,
    ),
    404: (
        "A change does not exist or vanished (outcome); no such batch or no approved change "
        "in it (detail).",
        ApplyPendingChangesResponse,
    ),
    503: (
        "The dataset could not take a change (outcome); or (detail) AI-Horde could not tell "
        "whose key it is, the deployment is a REPLICA, or the queue is disabled.",
        ApplyPendingChangesResponse,
    ),
}


@routes.api("POST", QUEUE + "/changes/{change_id}/apply", versions=BOTH)
@_docs(
    "approver",
    path={"change_id": CHANGE_ID},
    body=ApplyPendingChangeRequest,
    answer=ApplySingleChangeResponse,
    errors=_APPLY_ONE_ERRORS,
)
async def apply_change(request: web.Request) -> web.StreamResponse:
    """Apply one approved change

    Writes the change to the dataset and publishes a new snapshot, which the reads serve within
    a second. Approved changes left in its batch move to a new batch.
    """
    who, queue = await _guarded(request, "approver", primary=True)
    change_id = path_id(request, "change_id")
    body = await read_body(request, ApplyPendingChangeRequest)
    outcome = await queue.aapply(who, [change_id], _job(body.job_id))
    if outcome.failure is not None:
        raise outcome.failure
    answer = ApplySingleChangeResponse(record=outcome.applied[0], **split_fields(outcome.split))
    return respond(compact(answer))


_MANY_BAD_BODY = {422: "change_ids is not a non-empty list of positive integers, or a bad job_id."}
_APPLY_MANY_BODY_ERRORS = {**_APPLY_MANY_ERRORS, **_MANY_BAD_BODY}


@routes.api("POST", QUEUE + "/apply", versions=BOTH)
@_docs("approver", body=ApplyManyBody, answer=Applied, errors=_APPLY_MANY_BODY_ERRORS)
async def apply_changes(request: web.Request) -> web.StreamResponse:
    """Apply several approved changes, in order

    Stops at the first failure; the changes applied before it stay applied (one snapshot), and
    the answer is the outcome with the failure's status.
    """
    who, queue = await _guarded(request, "approver", primary=True)
    body = await read_body(request, ApplyManyBody)
    ids = list(dict.fromkeys(body.change_ids))
    if not body.allow_mixed_batch:
        await queue.acheck_one_batch(ids)
    return _outcome(await queue.aapply(who, ids, _job(body.job_id)))


@routes.api("POST", QUEUE + "/apply_batch/{batch_id}", versions=BOTH)
@_docs(
    "approver",
    path={"batch_id": BATCH_ID},
    query=JobQuery,
    answer=ApplyPendingChangesResponse,
    errors={**_APPLY_MANY_ERRORS, 422: "A bad batch id or job_id."},
)
async def apply_batch(request: web.Request) -> web.StreamResponse:
    """Apply the approved changes of a batch

    In change_id order. A batch whose changes are all applied answers 200 with nothing applied.
    """
    who, queue = await _guarded(request, "approver", primary=True)
    batch_id = path_id(request, "batch_id")
    job = _job(read_query(request, JobQuery).job_id)
    members = await queue.abatch_members(batch_id)
    if not members:
        raise NotFound(f"No changes found for batch {batch_id}")
    approved = [c.change_id for c in members if c.status == "approved"]
    if not approved:
        if all(c.status == "applied" for c in members if c.status != "rejected"):
            return respond(
                compact(ApplyPendingChangesResponse(applied=[], batch_split_occurred=False))
            )
        raise NotFound(f"No approved changes found in batch {batch_id}")
    return _outcome(await queue.aapply(who, approved, job))
