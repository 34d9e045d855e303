"""The text toolkit's reads (spec 07 §3): name parsing, groups, schemas, aliases and families.

Every answer comes from the snapshot's TextToolkitView: prepared bodies, or ones computed on first
request and kept for the snapshot's life. Register before the `{category}` routes.
"""

from __future__ import annotations

from aiohttp import web

from horde_model_records import compose_name, group_key
from shared.errors import Unavailable
from shared.http import ApiRoutes
from shared.openapi import docs
from shared.toolkit_wire import AliasEntry, FamilyInfo, GroupNameSchemaResponse, GroupQuery
from shared.wire import path_segment, read_body, read_query

from ..keys import read_config_key
from ..openapi import NO_SNAPSHOT, SNAPSHOT_HEADER, cached_docs
from ..responses import read_model, respond, respond_json
from ..text_toolkit import TextToolkitView, encode, parsed_response
from ..toolkit_wire import (
    AliasListResponse,
    ComposeNameRequest,
    ComposeNameResponse,
    DetectFamiliesResponse,
    DetectQuery,
    DistinctBaselinesResponse,
    FamilyListResponse,
    GroupHealthResponse,
    GroupListResponse,
    GroupMembersResponse,
    GroupsSummaryResponse,
    NameQuery,
    ParsedNameResponse,
)
from ..view import ReadModel

routes = ApiRoutes()

NO_ALIASES = "Group alias storage is not available (backend may be in REPLICA mode)."
NO_FAMILIES = "Group family storage is not available (backend may be in REPLICA mode)."
_STORE_503 = f"{NO_SNAPSHOT} Or a REPLICA deployment, which keeps no aliases or families."

TAGS = ("text_toolkit",)
TEXT = "/text_generation"
_SEGMENT = {
    "schema": {"type": "string"},
    "description": "One path segment: a value containing `/` cannot be reached.",
}


async def toolkit_view(request: web.Request, model: ReadModel) -> TextToolkitView:
    """The snapshot's toolkit view, in this process's mode (every route asks through here)."""
    return await model.text_toolkit.aview(_replica(request))


def _replica(request: web.Request) -> bool:
    return request.config_dict[read_config_key].mode == "REPLICA"


def _require_stores(request: web.Request, message: str) -> None:
    """A REPLICA deployment keeps no side stores: their reads answer 503 (spec 07 §4)."""
    if _replica(request):
        raise Unavailable(message)


@routes.api("GET", TEXT + "/parse_name")
@docs(
    tags=TAGS,
    query=NameQuery,
    answer=ParsedNameResponse,
    answer_headers=SNAPSHOT_HEADER,
    errors={422: "`name` is missing.", 503: NO_SNAPSHOT},
)
async def parse_text_name(request: web.Request) -> web.Response:
    """Parse a text model name into base, size, variant, quant, version and extras

    The parts are those of the whole name (author and backend prefix stay in the base);
    `suggested_group` is the name's group key, alias-resolved.
    """
    model = read_model(request)
    query = read_query(request, NameQuery)
    answer = parsed_response(query.name, (await toolkit_view(request, model)).stores)
    return respond_json(model, encode(answer).data)


@routes.api("GET", TEXT + "/distinct_baselines")
@cached_docs(
    "Every distinct text baseline",
    DistinctBaselinesResponse,
    "Trimmed, non-blank, in code-point order.",
    tags=TAGS,
)
async def list_text_baselines(request: web.Request) -> web.Response:
    model = read_model(request)
    return respond(request, model, (await toolkit_view(request, model)).baselines_body)


@routes.api("GET", TEXT + "/groups")
@cached_docs("Every text model group", GroupListResponse, "Stored group names, sorted.", tags=TAGS)
async def list_text_groups(request: web.Request) -> web.Response:
    model = read_model(request)
    return respond(request, model, (await toolkit_view(request, model)).groups_body)


@routes.api("GET", TEXT + "/groups/summary")
@cached_docs(
    "Every group with counts, schema, family, aliases, sizes and health",
    GroupsSummaryResponse,
    "The overview, groups sorted.",
    tags=TAGS,
)
async def summarize_text_groups(request: web.Request) -> web.Response:
    model = read_model(request)
    return respond(request, model, (await toolkit_view(request, model)).summary_body)


@routes.api("GET", TEXT + "/groups/health")
@cached_docs(
    "Health issues of every group",
    GroupHealthResponse,
    "Issues in group order, then check order.",
    tags=TAGS,
)
async def check_text_groups(request: web.Request) -> web.Response:
    model = read_model(request)
    return respond(request, model, (await toolkit_view(request, model)).health_body)


@routes.api("GET", TEXT + "/group")
@cached_docs(
    "One group in detail",
    GroupMembersResponse,
    "Members with parsed names, common fields, sizes, usages, naming schema and family.",
    tags=TAGS,
    query=GroupQuery,
    errors={404: "No model is in the group.", 422: "`name` is missing."},
)
async def get_text_group(request: web.Request) -> web.Response:
    model = read_model(request)
    query = read_query(request, GroupQuery)
    return respond(request, model, (await toolkit_view(request, model)).group_detail(query.name))


@routes.api("GET", TEXT + "/group/name_schema")
@cached_docs(
    "A group's naming schema",
    GroupNameSchemaResponse,
    "The stored (custom) schema, else the one inferred from its canonical members.",
    tags=TAGS,
    query=GroupQuery,
    errors={404: "No stored schema and no model in the group.", 422: "`name` is missing."},
)
async def get_text_group_schema(request: web.Request) -> web.Response:
    model = read_model(request)
    query = read_query(request, GroupQuery)
    return respond(request, model, (await toolkit_view(request, model)).group_schema(query.name))


@routes.api("POST", TEXT + "/compose_name")
@docs(
    tags=TAGS,
    body=ComposeNameRequest,
    answer=ComposeNameResponse,
    answer_headers=SNAPSHOT_HEADER,
    errors={422: "base_name or size missing, or a field of the wrong type.", 503: NO_SNAPSHOT},
)
async def compose_text_name(request: web.Request) -> web.Response:
    """Compose a model name from its parts (read-only)

    Parts join with the separator in `part_order` (default base, size, variant, version, quant),
    prefixed by `author/`. `already_exists` looks the name up in the live data; `suggested_group`
    is its group key without aliases.
    """
    model = read_model(request)
    body = await read_body(request, ComposeNameRequest)  # unknown keys are dropped
    composed = compose_name(
        body.base_name,
        body.size,
        variant=body.variant,
        version=body.version,
        quant=body.quant,
        author=body.author,
        separator=body.separator,
        part_order=body.part_order,
    )
    answer = ComposeNameResponse(
        composed_name=composed,
        already_exists=composed in (await toolkit_view(request, model)).records,
        suggested_group=group_key(composed),
    )
    return respond_json(model, encode(answer).data)


@routes.api("GET", TEXT + "/aliases")
@cached_docs(
    "Every alias entry",
    AliasListResponse,
    "Entries sorted by canonical group.",
    tags=TAGS,
    errors={503: _STORE_503},
)
async def list_text_aliases(request: web.Request) -> web.Response:
    model = read_model(request)
    _require_stores(request, NO_ALIASES)
    return respond(request, model, (await toolkit_view(request, model)).aliases_body)


@routes.api("GET", TEXT + "/aliases/{canonical}")
@cached_docs(
    "One alias entry",
    AliasEntry,
    "The canonical group and its aliases.",
    tags=TAGS,
    path={"canonical": _SEGMENT},
    errors={404: "No alias entry for the group.", 503: _STORE_503},
)
async def get_text_alias(request: web.Request) -> web.Response:
    model = read_model(request)
    _require_stores(request, NO_ALIASES)
    return respond(
        request,
        model,
        (await toolkit_view(request, model)).alias_entry(path_segment(request, "canonical")),
    )


@routes.api("GET", TEXT + "/families")
@cached_docs(
    "Every family",
    FamilyListResponse,
    "Families sorted by name.",
    tags=TAGS,
    errors={503: _STORE_503},
)
async def list_text_families(request: web.Request) -> web.Response:
    model = read_model(request)
    _require_stores(request, NO_FAMILIES)
    return respond(request, model, (await toolkit_view(request, model)).families_body)


@routes.api("GET", TEXT + "/families/detect")
@cached_docs(
    "Suggest families from shared name prefixes",
    DetectFamiliesResponse,
    "Suggestions only: nothing is stored and existing families are ignored.",
    tags=TAGS,
    query=DetectQuery,
    errors={422: "A bound out of range."},
)
async def detect_text_families(request: web.Request) -> web.Response:
    model = read_model(request)
    query = read_query(request, DetectQuery)
    body = (await toolkit_view(request, model)).detected(
        query.min_prefix_length, query.min_family_size
    )
    return respond(request, model, body)


@routes.api("GET", TEXT + "/families/{family_name}")
@cached_docs(
    "One family",
    FamilyInfo,
    "The family and its member groups.",
    description="A family named `detect` can be written but not read here.",
    tags=TAGS,
    path={"family_name": _SEGMENT},
    errors={404: "No such family.", 503: _STORE_503},
)
async def get_text_family(request: web.Request) -> web.Response:
    model = read_model(request)
    _require_stores(request, NO_FAMILIES)
    return respond(
        request,
        model,
        (await toolkit_view(request, model)).family(path_segment(request, "family_name")),
    )
