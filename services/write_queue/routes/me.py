"""The caller's roles, and the beta (pending) models of a category."""

from __future__ import annotations

from aiohttp import web

from shared.http import ApiRoutes
from shared.openapi import any_category_schema, docs
from shared.wire import respond, respond_bytes

from ..guards import aidentify, path_category, require_queue
from ..openapi import CATEGORY, NO_QUEUE, NO_STORE, SECURITY, authenticated
from ..wire import MyRoles

routes = ApiRoutes()


@routes.api("GET", "/me/roles")
@docs(
    "The caller's user and roles",
    tags=("roles",),
    security=SECURITY,
    answer=MyRoles,
    answer_description="The caller (any valid key; no role needed).",
    answer_headers=NO_STORE,
    errors=authenticated(None),
)
async def get_my_roles(request: web.Request) -> web.StreamResponse:
    who = await aidentify(request, None)
    return respond(
        MyRoles(
            user_id=who.user_id,
            username=who.username,
            roles=sorted(who.roles),
            is_approver=who.is_approver,
            is_requestor=who.is_requestor,
            is_license_editor="license_editor" in who.roles,
        )
    )


@routes.api("GET", "/{category}/pending")
@docs(
    "Beta models: proposed creates and updates not yet applied",
    description="Model name → the payload of its newest pending or approved create/update "
    "(by updated_at, then change_id), as a v2 record; deletes never show.",
    tags=("proposals",),
    security=SECURITY,
    path={"category": CATEGORY},
    answer=any_category_schema(),
    answer_description="The beta models of the category.",
    answer_headers=NO_STORE,
    errors={**authenticated(None, NO_QUEUE), 422: "Not a category."},
)
async def list_beta_models(request: web.Request) -> web.StreamResponse:
    category = path_category(request, "model_category_name")
    await aidentify(request, None)
    queue = require_queue(request)
    return respond_bytes(await queue.abeta_models(category))
