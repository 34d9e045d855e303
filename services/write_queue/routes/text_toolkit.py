"""The text toolkit's writes (spec 07 §4–§6): group name schemas, aliases and families are
written directly (stored, audited and published before the answer); common fields and name
exceptions are queued for review like every model change.

Every write checks, in order: a key is present (401), the request is valid (422), the key's user
is a requestor (401/403/503), this is the PRIMARY (503), then the operation's own rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs
from aiohttp import web

from horde_model_records import (
    Category,
    has_backend_prefix,
    structure_record,
    unstructure_record,
)
from shared.errors import BadRequest, NotFound
from shared.http import ApiRoutes, Handler
from shared.observability import request_id_var
from shared.openapi import docs
from shared.text_toolkit import ToolkitStores
from shared.toolkit_wire import (
    AliasEntry,
    FamilyInfo,
    GroupNameSchemaResponse,
    GroupQuery,
    StoredNameSchema,
)
from shared.wire import JsonObject, path_segment, read_body, read_query, respond

from .. import text_toolkit as ops
from ..auth import api_key_of
from ..guards import (
    aidentify,
    loaded_queue,
    require_primary,
    require_queue,
    require_v2_canonical,
)
from ..models import Identity, Proposal
from ..openapi import MODEL_NAME, NO_QUEUE, NO_STORE, REPLICA, SECURITY, authenticated
from ..queue import WriteQueue
from ..toolkit_wire import (
    AliasBody,
    AliasesBody,
    BatchUpdateResponse,
    CommonFieldsUpdate,
    FamilyBody,
    FamilyMemberBody,
    NameExceptionBody,
    NameExceptionResponse,
    NameSchemaUpdate,
)

routes = ApiRoutes()

TEXT = "/text_generation"
TAGS = ("text_toolkit",)
_SEGMENT = {
    "schema": {"type": "string"},
    "description": "One path segment: a value containing `/` cannot be reached.",
}


async def _edit(
    request: web.Request, edit: Callable[[ToolkitStores], ToolkitStores]
) -> ToolkitStores:
    """Check the caller and the mode, then apply `edit` to the stores (the body is read first)."""
    who = await aidentify(request, "requestor")
    require_primary(request)
    queue = loaded_queue(request)
    return await queue.aupdate_toolkit(who, edit, request_id=request_id_var.get())


def _direct_docs(
    summary: str, answer: type | None, status: int = 200, **fields: Any
) -> Callable[[Handler], Handler]:
    errors = {**authenticated("requestor", REPLICA), **fields.pop("errors", {})}
    if "path" in fields:  # a segment holding `/` (sent as %2F) matches no route
        errors.setdefault(404, "No route: the path value holds a `/`.")
    if answer is None:  # no body: the status is documented on its own
        fields["responses"] = {
            status: {"description": "Deleted and published.", "headers": dict(NO_STORE)}
        }
    return docs(
        summary,
        tags=TAGS,
        security=SECURITY,
        answer=answer,
        status=status,
        answer_description="Stored and published.",
        answer_headers=NO_STORE,
        errors=errors,
        **fields,
    )


def _no_content() -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


# --- name schemas --------------------------------------------------------------------------------


@routes.api("PUT", TEXT + "/group/name_schema")
@_direct_docs(
    "Store a group's naming schema",
    GroupNameSchemaResponse,
    description="Starts from the group's stored schema (or its alias's canonical group's), else "
    "from the defaults; non-null body fields overwrite; stored under the exact name. Nothing is "
    "validated and the group need not exist.",
    query=GroupQuery,
    body=NameSchemaUpdate,
    errors={422: "`name` missing, or a body field of the wrong type."},
)
async def put_group_name_schema(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    group = read_query(request, GroupQuery).name
    body = await read_body(request, NameSchemaUpdate)
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(body).items()}
    stores = await _edit(request, lambda s: ops.put_schema(s, group, fields))
    answer = GroupNameSchemaResponse(
        group_name=group, name_schema=StoredNameSchema.of(stores.schemas[group]), is_custom=True
    )
    return respond(answer)


@routes.api("DELETE", TEXT + "/group/name_schema")
@_direct_docs(
    "Delete a group's stored naming schema",
    None,
    204,
    query=GroupQuery,
    errors={404: "No schema stored under exactly this name.", 422: "`name` missing."},
)
async def delete_group_name_schema(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    group = read_query(request, GroupQuery).name
    await _edit(request, lambda s: ops.delete_schema(s, group))
    return _no_content()


# --- aliases -------------------------------------------------------------------------------------


def _alias_entry(stores: ToolkitStores, canonical: str) -> AliasEntry:
    return AliasEntry(canonical=canonical, aliases=list(stores.aliases.get(canonical, ())))


@routes.api("PUT", TEXT + "/aliases/{canonical}")
@_direct_docs(
    "Replace a canonical group's aliases",
    AliasEntry,
    path={"canonical": _SEGMENT},
    body=AliasesBody,
    errors={
        409: "The canonical name is in the list, or an alias belongs to another group.",
        422: 'A body that is not `{"aliases": [str]}`.',
    },
)
async def put_group_aliases(request: web.Request) -> web.StreamResponse:
    canonical = path_segment(request, "canonical")
    api_key_of(request)
    body = await read_body(request, AliasesBody)
    stores = await _edit(request, lambda s: ops.put_aliases(s, canonical, body.aliases))
    return respond(_alias_entry(stores, canonical))


@routes.api("POST", TEXT + "/aliases/{canonical}/add")
@_direct_docs(
    "Add one alias (creating the entry)",
    AliasEntry,
    path={"canonical": _SEGMENT},
    body=AliasBody,
    errors={409: "The alias is the canonical name, or belongs to another group.", 422: "Bad body."},
)
async def add_group_alias(request: web.Request) -> web.StreamResponse:
    canonical = path_segment(request, "canonical")
    api_key_of(request)
    body = await read_body(request, AliasBody)
    stores = await _edit(request, lambda s: ops.add_alias(s, canonical, body.alias))
    return respond(_alias_entry(stores, canonical))


@routes.api("POST", TEXT + "/aliases/{canonical}/remove")
@_direct_docs(
    "Remove one alias (the last one deletes the entry)",
    AliasEntry,
    path={"canonical": _SEGMENT},
    body=AliasBody,
    errors={404: "The alias is not under the group.", 422: "Bad body."},
)
async def remove_group_alias(request: web.Request) -> web.StreamResponse:
    canonical = path_segment(request, "canonical")
    api_key_of(request)
    body = await read_body(request, AliasBody)
    stores = await _edit(request, lambda s: ops.remove_alias(s, canonical, body.alias))
    return respond(_alias_entry(stores, canonical))


@routes.api("DELETE", TEXT + "/aliases/{canonical}")
@_direct_docs(
    "Delete a canonical group's alias entry",
    None,
    204,
    path={"canonical": _SEGMENT},
    errors={404: "No alias entry for the group."},
)
async def delete_group_aliases(request: web.Request) -> web.StreamResponse:
    canonical = path_segment(request, "canonical")
    api_key_of(request)
    await _edit(request, lambda s: ops.delete_aliases(s, canonical))
    return _no_content()


# --- families ------------------------------------------------------------------------------------


def _family(stores: ToolkitStores, family: str) -> FamilyInfo:
    return FamilyInfo(family_name=family, members=list(stores.families.get(family, ())))


@routes.api("PUT", TEXT + "/families/{family_name}")
@_direct_docs(
    "Create or replace a family",
    FamilyInfo,
    description="Members are stored sorted, once each; members left out are released.",
    path={"family_name": _SEGMENT},
    body=FamilyBody,
    errors={409: "No members, or a member belongs to another family.", 422: "Bad body."},
)
async def put_group_family(request: web.Request) -> web.StreamResponse:
    family = path_segment(request, "family_name")
    api_key_of(request)
    body = await read_body(request, FamilyBody)
    stores = await _edit(request, lambda s: ops.put_family(s, family, body.members))
    return respond(_family(stores, family))


@routes.api("POST", TEXT + "/families/{family_name}/add")
@_direct_docs(
    "Add a group to a family",
    FamilyInfo,
    path={"family_name": _SEGMENT},
    body=FamilyMemberBody,
    errors={
        404: "No such family.",
        409: "The group belongs to another family.",
        422: "Bad body.",
    },
)
async def add_family_member(request: web.Request) -> web.StreamResponse:
    family = path_segment(request, "family_name")
    api_key_of(request)
    body = await read_body(request, FamilyMemberBody)
    stores = await _edit(request, lambda s: ops.add_member(s, family, body.group_name))
    return respond(_family(stores, family))


@routes.api("POST", TEXT + "/families/{family_name}/remove")
@_direct_docs(
    "Remove a group from a family (the last one deletes the family)",
    FamilyInfo,
    path={"family_name": _SEGMENT},
    body=FamilyMemberBody,
    errors={404: "The group is not in the family (or there is no family).", 422: "Bad body."},
)
async def remove_family_member(request: web.Request) -> web.StreamResponse:
    family = path_segment(request, "family_name")
    api_key_of(request)
    body = await read_body(request, FamilyMemberBody)
    stores = await _edit(request, lambda s: ops.remove_member(s, family, body.group_name))
    return respond(_family(stores, family))


@routes.api("DELETE", TEXT + "/families/{family_name}")
@_direct_docs(
    "Delete a family, releasing its groups",
    None,
    204,
    path={"family_name": _SEGMENT},
    errors={404: "No such family."},
)
async def delete_group_family(request: web.Request) -> web.StreamResponse:
    family = path_segment(request, "family_name")
    api_key_of(request)
    await _edit(request, lambda s: ops.delete_family(s, family))
    return _no_content()


# --- queued model edits (spec 07 §5) -------------------------------------------------------------

_QUEUED_ERRORS = authenticated(
    "requestor", REPLICA, "the deployment is legacy-canonical (v2 writes off)", NO_QUEUE
)


def _checked_record(payload: JsonObject) -> JsonObject:
    """The merged record as a valid text record would be queued (422 when it is not one)."""
    return unstructure_record(structure_record(Category.text_generation, payload))


async def _queued_caller(request: web.Request) -> Identity:
    who = await aidentify(request, "requestor")
    require_primary(request)
    require_v2_canonical(request, Category.text_generation)
    return who


@routes.api("PUT", TEXT + "/group/common_fields")
@docs(
    "Propose the same fields for every canonical member of a group",
    description="One queued update per canonical member (dataset order), each the stored record "
    "with the given fields overwritten (`tags` replaced whole), sharing a batch_id in their "
    "request_metadata. Review and apply them like any change.",
    tags=TAGS,
    security=SECURITY,
    query=GroupQuery,
    body=CommonFieldsUpdate,
    answer=BatchUpdateResponse,
    status=202,
    answer_description="Queued.",
    answer_headers=NO_STORE,
    errors={
        **_QUEUED_ERRORS,
        400: "No non-null field to set.",
        404: "No model (or no canonical model) in the group.",
        422: "`name` missing, a field of the wrong type, or a merged record failing the schema.",
    },
)
async def put_group_common_fields(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    group = read_query(request, GroupQuery).name
    body = await read_body(request, CommonFieldsUpdate)
    who = await _queued_caller(request)
    queue: WriteQueue = loaded_queue(request)
    records = queue.live().categories[Category.text_generation].records
    members = [name for name, r in records.items() if getattr(r, "text_model_group", None) == group]
    if not members:
        raise NotFound(f"No models found in group '{group}'")
    canonical = [name for name in members if not has_backend_prefix(name)]
    if not canonical:
        raise NotFound(f"No canonical models found in group '{group}'")
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(body).items()}
    fields = {k: v for k, v in fields.items() if v is not None}
    if not fields:
        raise BadRequest("No fields to update. Provide at least one field.")
    queue = require_queue(request)
    batch_id = str(uuid.uuid4())
    proposals = [
        Proposal(
            category=Category.text_generation,
            operation="update",
            name=name,
            payload=_checked_record({**unstructure_record(records[name]), **fields}),
            route="update_group_common_fields",
            notes=f"Batch group update for '{group}'",
            request_metadata={"batch_id": batch_id},
        )
        for name in canonical
    ]
    changes = await queue.aenqueue_all(who, proposals)
    answer = BatchUpdateResponse(
        updated_count=len(changes),
        batch_id=batch_id,
        pending_change_ids=[c.change_id for c in changes],
    )
    return respond(answer, status=202)


@routes.api("PUT", TEXT + "/{model_name:.+}/name_exception")
@docs(
    "Propose (or clear) a model's naming-schema exception",
    description="Queues one update of the stored record with `name_schema_exception` set to the "
    "reason (null removes it).",
    tags=TAGS,
    security=SECURITY,
    path={"model_name": MODEL_NAME},
    body=NameExceptionBody,
    answer=NameExceptionResponse,
    status=202,
    answer_description="Queued.",
    answer_headers=NO_STORE,
    errors={
        **_QUEUED_ERRORS,
        404: "No text model of that name.",
        422: "The body has no `reason` key, or it is not a string or null.",
    },
)
async def put_name_exception(request: web.Request) -> web.StreamResponse:
    api_key_of(request)
    name = request.match_info["model_name"]
    body = await read_body(request, NameExceptionBody)
    who = await _queued_caller(request)
    queue: WriteQueue = loaded_queue(request)
    record = queue.live_record(Category.text_generation, name)
    if record is None:
        raise NotFound(f"Model '{name}' not found in text_generation category")
    queue = require_queue(request)
    record.pop("name_schema_exception", None)
    if body.reason is not None:
        record["name_schema_exception"] = body.reason
    what = "set" if body.reason else "cleared"  # upstream notes "" as cleared, yet stores it
    proposal = Proposal(
        category=Category.text_generation,
        operation="update",
        name=name,
        payload=_checked_record(record),
        route="set_name_exception",
        notes=f"Name exception {what} for '{name}'",
    )
    change = await queue.aenqueue(who, proposal)
    return respond(NameExceptionResponse(pending_change_id=change.change_id), status=202)
