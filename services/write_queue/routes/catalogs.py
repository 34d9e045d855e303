"""Catalog writes: image baseline and text guidance change sets, queued for review like model
changes; the legacy instruct-format migration preview."""

from __future__ import annotations

import uuid
from typing import Literal

from aiohttp import web

from horde_model_records import Category
from shared.http import ApiRoutes
from shared.openapi import docs
from shared.wire import JsonObject, read_body, respond

from .. import catalogs, guidance
from ..auth import api_key_of
from ..catalog_wire import BaselineChangeSet, GuidanceChangeSet
from ..guards import aidentify, loaded_queue, require_primary, require_queue
from ..models import Change, Identity, Proposal
from ..openapi import NO_QUEUE, REPLICA, SECURITY, authenticated
from ..queue import WriteQueue
from ..wire import compact

routes = ApiRoutes()


@routes.api("POST", "/image_generation/baselines/change-sets")
@docs(
    "Propose a change set of the image baseline catalog",
    description="Checked at once against the live catalog (a baseline changed since "
    "`expected_before` was read is a 409; a result breaking the catalog's rules, or deleting a "
    "baseline a model or a queued model change names, a 422), then queued for review; an "
    "approver applies it like a model change.",
    tags=("catalogs",),
    security=SECURITY,
    body=BaselineChangeSet,
    answer=Change,
    status=202,
    answer_description="Queued: the new change (resource_kind image_baseline), nulls omitted.",
    errors={
        **authenticated("requestor", REPLICA, NO_QUEUE),
        409: "A baseline changed after review (its expected_before no longer matches).",
        422: "A malformed change set, or one whose result the catalog refuses.",
    },
)
async def submit_baseline_change_set(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    change_set = await read_body(request, BaselineChangeSet)
    payload = catalogs.normalized_change_set(change_set)
    who = await aidentify(request, "requestor")
    require_primary(request)
    queue = require_queue(request)
    dataset = queue.live()
    images = dataset.categories[Category.image_generation].records.values()
    referenced = catalogs.referenced_baselines(images, []) | await queue.aqueued_baselines()
    catalogs.baseline_dry_run(
        dataset.catalogs.baselines, payload, referenced, who.user_id, queue.clock()
    )
    names = catalogs.affected(payload)
    return await _enqueue_change_set(
        queue,
        who,
        Category.image_generation,
        "image_baseline",
        payload,
        change_set.title,
        {"affected_baselines": names},
        names,
    )


async def _enqueue_change_set(
    queue: WriteQueue,
    who: Identity,
    category: Category,
    kind: Literal["image_baseline", "text_guidance"],
    payload: JsonObject,
    title: str,
    affected: JsonObject,
    related: list[str],
) -> web.StreamResponse:
    """Queue a catalog change set as one change (named `<catalog>:<uuid>`) for review: 202."""
    resource_id = str(uuid.uuid4())
    catalog = kind.split("_", 1)[1]  # baseline, guidance
    proposal = Proposal(
        category=category,
        operation="update",
        name=f"{catalog}:{resource_id}",
        payload=payload,
        route=f"submit_{kind}_change_set",
        resource_kind=kind,
        resource_id=resource_id,
        notes=title,
        request_metadata={"title": title, **affected},
        related_models=related,
    )
    change = await queue.aenqueue(who, proposal)
    return respond(compact(change), status=202)


@routes.api("POST", "/text_generation/guidance/change-sets")
@docs(
    "Propose a change set of the text guidance catalog",
    description="Profiles are created, updated or deprecated, then assignments set or removed. "
    "Checked at once against the live catalog (a profile or assignment changed since "
    "`expected_before` was read is a 409; unknown settings keys, or a result breaking the "
    "catalog's rules, a 422), then queued for review. Applying a change set whose result already "
    "holds is a successful no-op.",
    tags=("guidance",),
    security=SECURITY,
    body=GuidanceChangeSet,
    answer=Change,
    status=202,
    answer_description="Queued: the new change (resource_kind text_guidance), nulls omitted.",
    errors={
        **authenticated("requestor", REPLICA, NO_QUEUE),
        409: "A profile or assignment changed after review.",
        422: "A malformed change set, or one whose result the catalog refuses.",
    },
)
async def submit_guidance_change_set(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    change_set = await read_body(request, GuidanceChangeSet)
    payload = guidance.normalized_change_set(change_set)  # the body's shape: 422 before auth
    who = await aidentify(request, "requestor")
    require_primary(request)
    guidance.check_settings(payload)
    queue = loaded_queue(request)
    dataset = queue.live()
    texts = set(dataset.categories[Category.text_generation].records)
    guidance.guidance_dry_run(dataset.catalogs.guidance, payload, texts, who.user_id, queue.clock())
    models = guidance.affected_models(payload)
    return await _enqueue_change_set(
        require_queue(request),
        who,
        Category.text_generation,
        "text_guidance",
        payload,
        change_set.title,
        {"affected_models": models},
        models,
    )


@routes.api("POST", "/text_generation/guidance/migration/preview")
@docs(
    "Preview the migration of legacy instruct-format labels to guidance",
    description="A change set (nothing is stored) creating a prompt contract per legacy "
    "instruct_format label no profile names yet, and assigning it to every text model that has "
    "the label and no assignment; submit it to /change-sets to queue it.",
    tags=("guidance",),
    security=SECURITY,
    answer={"type": "object", "additionalProperties": True},
    answer_description='`{"change_set": {...} | null, "source_model_count", "format_count"}`.',
    errors=authenticated("requestor", REPLICA),
)
async def preview_guidance_migration(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    await aidentify(request, "requestor")
    require_primary(request)
    dataset = loaded_queue(request).live()
    records = dataset.categories[Category.text_generation].records.values()
    return respond(guidance.migration_preview(dataset.catalogs.guidance, records))
