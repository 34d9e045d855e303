"""The read service's OpenAPI documentation, attached to the route handlers (spec 02)."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from horde_model_records import ALL_CATEGORIES, V2_LISTED_CATEGORIES
from shared.openapi import (
    any_category_schema,
    any_record_schema,
    document,
    error_response,
    json_response,
    path_param,
    query_param,
    ref,
    setup_openapi,
    validation_response,
)

from .routes import capabilities, metadata, models, search, writes
from .search import BACKENDS, MAX_LIMIT, MAX_TAGS, MAX_TEXT

TITLE = "AI-Horde model reference"
API_VERSION = "2.0.0"  # of the HTTP API (the v2 paths), not of the package
DESCRIPTION = (
    "Reference data of the AI-Horde models: v1 (legacy, GitHub-compatible) and v2 (normalised) "
    "reads, search and change-detection metadata. Reads are unauthenticated; cacheable reads carry "
    'a strong ETag and answer `If-None-Match` with 304. Errors are `{"detail": ...}`.'
)

JsonDict = dict[str, Any]

_TAGS = {
    "capabilities": "What this deployment serves.",
    "v1": "Legacy reads: one JSON object per category, as in the original GitHub repositories.",
    "v2": "Normalised reads: every record carries record_type, metadata, config.download and "
    "model_classification. Each category's records have their own schema (`<Category>Record`).",
    "search": "Filter, sort and page v2 records (spec 02 §6).",
    "metadata": "Change detection: when each category last changed (spec 02 §7).",
    "writes": "This deployment runs no write service: every write answers 503.",
}

_COMPONENTS: dict[str, JsonDict] = {
    "Message": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    },
    "ReplicateMode": {
        "type": "object",
        "required": ["replicate_mode", "canonical_format", "writable"],
        "properties": {
            "replicate_mode": {"type": "string", "enum": ["PRIMARY", "REPLICA"]},
            "canonical_format": {"type": "string", "enum": ["v2", "legacy"]},
            "writable": {"type": "boolean", "description": "replicate_mode is PRIMARY"},
        },
    },
    "LegacyCategory": {
        "type": "object",
        "description": "A v1 (legacy) category: model name → legacy entry, in v1 order.",
        "additionalProperties": {"type": "object", "additionalProperties": True},
    },
    "SearchResponse": {
        "type": "object",
        "required": ["results", "total", "offset", "limit", "has_more"],
        "properties": {
            "results": {"type": "array", "items": any_record_schema()},
            "total": {"type": "integer", "minimum": 0, "description": "matches before paging"},
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "has_more": {"type": "boolean", "description": "offset + limit < total"},
        },
    },
    "LastUpdated": {
        "type": "object",
        "required": ["last_updated"],
        "properties": {
            "last_updated": {
                "type": "integer",
                "nullable": True,
                "description": "latest change over all categories, Unix seconds",
            }
        },
    },
    "CategoryLastUpdated": {
        "type": "object",
        "required": ["category", "last_updated"],
        "properties": {
            "category": {"type": "string", "enum": [c.value for c in ALL_CATEGORIES]},
            "last_updated": {"type": "integer", "nullable": True, "description": "Unix seconds"},
        },
    },
    "AllCategoryMetadata": {
        "type": "object",
        "description": "Category → its metadata, for all 15 categories.",
        "additionalProperties": ref("CategoryMetadata"),
    },
}

# --- parameters -----------------------------------------------------------------------------------

_CATEGORY_NAMES = [c.value for c in ALL_CATEGORIES]


_V2_CATEGORY = path_param(
    "category",
    {"type": "string", "enum": _CATEGORY_NAMES},
    "A v2 category (no v1 aliases); another value is a 422.",
)
_V1_CATEGORY = path_param(
    "category",
    {"type": "string", "example": "stable_diffusion"},
    "A category, or a v1 alias: a trailing `.json` is dropped, `stable_diffusion` is "
    "image_generation, `db.json` is text_generation. lora and ti answer `{}`.",
)
_MODEL_NAME = path_param(
    "model_name",
    {"type": "string", "example": "stable_diffusion"},
    "The model name; it may contain `/` (text models such as `acrastt/Marx-3B-V3`), literally "
    "or as `%2F`.",
)
_IF_NONE_MATCH = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": "An ETag from an earlier answer: 304 while the body is unchanged.",
}

_BOOL = "Accepts true/false, 1/0, yes/no, on/off (any case)."
_TEXT = {"type": "string", "maxLength": MAX_TEXT}
_TAG_LIST = {"type": "array", "items": _TEXT, "maxItems": MAX_TAGS}


def _bool(name: str, description: str, default: bool | None = None) -> JsonDict:
    schema: JsonDict = {"type": "boolean"}
    if default is not None:
        schema["default"] = default
    return query_param(name, schema, f"{description} {_BOOL}")


_COMMON_SEARCH = [
    _bool("nsfw", "Keep records whose `nsfw` equals this."),
    query_param(
        "tags_any", _TAG_LIST, "Keep records with at least one of these tags (repeat the key)."
    ),
    query_param("tags_all", _TAG_LIST, "Keep records with all of these tags (repeat the key)."),
    query_param("tags_none", _TAG_LIST, "Drop records with any of these tags (repeat the key)."),
    query_param("name_contains", _TEXT, "Case-insensitive substring of the model name."),
]
_PAGING = [
    _bool("sort_desc", "Sort descending; nulls then come first.", default=False),
    query_param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
        f"Page size, 1–{MAX_LIMIT}.",
    ),
    query_param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Matches to skip."),
]
_CATEGORY_SEARCH = [
    *_COMMON_SEARCH,
    query_param("baseline", _TEXT, "Exact, case-sensitive `baseline`."),
    _bool("inpainting", "Keep records whose `inpainting` equals this (image_generation)."),
    query_param(
        "backend",
        {"type": "string", "enum": list(BACKENDS)},
        "text_generation only: names with this backend prefix; ignored elsewhere.",
    ),
    _bool(
        "exclude_backend_variations",
        "text_generation only: drop backend-prefixed names; ignored elsewhere.",
        default=False,
    ),
    _bool("quantized", "text_generation only: keep (true) or drop (false) quantized names."),
    query_param(
        "sort_by",
        _TEXT,
        "A field of the category's record type; `__` walks into nested fields "
        "(`metadata__created_at`). Without it: dataset order.",
    ),
    *_PAGING,
    query_param(
        "source",
        {"type": "string", "maxLength": MAX_TEXT, "default": "horde"},
        "`horde` (canonical) or `any`; no other providers are registered.",
    ),
]
_ALL_SEARCH = [
    *_COMMON_SEARCH,
    query_param(
        "sort_by",
        {**_TEXT, "example": "name"},
        "A field every record type has (config, description, finetune_series, metadata, "
        "model_classification, name, record_type, size_on_disk_bytes, version); `__` walks "
        "into nested fields.",
    ),
    *_PAGING,
]

# --- responses ------------------------------------------------------------------------------------

_SNAPSHOT_HEADER = {
    "description": "The snapshot the answer comes from; grows with every publish.",
    "schema": {"type": "integer"},
}
_CACHE_HEADERS = {
    "ETag": {"description": "Strong validator of the body as sent.", "schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string", "example": "public, max-age=60"}},
    "X-Snapshot-Id": _SNAPSHOT_HEADER,
}
_NOT_MODIFIED = {
    "description": "Not modified: the If-None-Match ETag still matches.",
    "headers": _CACHE_HEADERS,
}
_NO_SNAPSHOT = error_response("No snapshot has been published yet.")


def _cached(
    description: str, schema: JsonDict, errors: dict[int, JsonDict] | None = None
) -> dict[int, JsonDict]:
    """Responses of a cacheable snapshot read: 200 with cache headers, 304, the errors, 503."""
    return {
        200: json_response(description, schema, _CACHE_HEADERS),
        304: _NOT_MODIFIED,
        503: _NO_SNAPSHOT,
        **(errors or {}),
    }


def _search_responses() -> dict[int, JsonDict]:
    return {
        200: json_response(
            "One page of matches.", ref("SearchResponse"), {"X-Snapshot-Id": _SNAPSHOT_HEADER}
        ),
        400: error_response("A filter the record type lacks, or a bad sort_by, backend or source."),
        422: validation_response("A bad parameter value, or (per category) an unknown category."),
        503: _NO_SNAPSHOT,
    }


def _metadata_unavailable(last_updated: bool) -> JsonDict:
    why = "REPLICA mode"
    if last_updated:
        why += ", or the path's version is not the canonical format"
    return error_response(f"Metadata is unavailable: {why} (or no snapshot yet).")


# --- attaching ------------------------------------------------------------------------------------


@functools.cache
def _document_handlers() -> None:
    """Give every read handler its operation (once per process; the handlers are module-level)."""
    message = ref("Message")
    document(
        capabilities.get_welcome,
        summary="Welcome message pointing at the documentation",
        tags=["capabilities"],
        responses={200: json_response("Welcome.", message)},
    )
    document(
        capabilities.get_replicate_mode,
        summary="Replication mode and canonical format of this deployment",
        tags=["capabilities"],
        responses={200: json_response("The mode.", ref("ReplicateMode"))},
    )
    document(
        capabilities.get_v1_info,
        summary="What v1 serves",
        tags=["v1"],
        responses={200: json_response("About v1.", message)},
    )
    document(
        capabilities.get_v2_info,
        summary="What v2 serves",
        tags=["v2"],
        responses={200: json_response("About v2.", message)},
    )
    document(
        capabilities.list_v1_categories,
        summary="All 15 categories, in enumeration order",
        tags=["v1"],
        responses={
            200: json_response(
                "The categories.",
                {"type": "array", "items": {"type": "string", "enum": _CATEGORY_NAMES}},
            )
        },
    )
    v2_names = [c.value for c in V2_LISTED_CATEGORIES]
    document(
        capabilities.list_v2_categories,
        summary="The 13 v2 categories (all but lora and ti)",
        tags=["v2"],
        responses={
            200: json_response(
                "The categories.", {"type": "array", "items": {"type": "string", "enum": v2_names}}
            )
        },
    )

    document(
        models.get_v1_text_generation,
        summary="The text_generation category in the legacy db.json shape",
        description="Three entries per model (plain and the two backend variants).",
        tags=["v1"],
        parameters=[
            _bool(
                "include_group",
                "Add text_model_group and its summary to each entry (accepted; summaries "
                "are not computed yet).",
                default=False,
            ),
            _IF_NONE_MATCH,
        ],
        responses=_cached(
            "The legacy text models.",
            ref("LegacyCategory"),
            {
                404: error_response("No text models."),
                422: validation_response("include_group is not a boolean."),
            },
        ),
    )
    document(
        models.get_v1_category,
        summary="A category in the legacy format",
        tags=["v1"],
        parameters=[_V1_CATEGORY, _IF_NONE_MATCH],
        responses=_cached(
            "The legacy category; `{}` for lora and ti.",
            ref("LegacyCategory"),
            {
                404: error_response("The category has no legacy view, or it is empty."),
                422: validation_response("Not a category (string detail)."),
            },
        ),
    )
    document(
        models.get_model,
        summary="One v2 record",
        description="The record's schema is the one of the category in the path "
        "(`record_type` tells which).",
        tags=["v2"],
        parameters=[_V2_CATEGORY, _MODEL_NAME, _IF_NONE_MATCH],
        responses=_cached(
            "The record.",
            any_record_schema(),
            {
                404: error_response("No such model in the category."),
                422: validation_response("Not a category."),
            },
        ),
    )
    document(
        models.get_v2_category,
        summary="A whole v2 category: model name → record",
        description="Records as stored, in dataset order; `{}` for empty categories.",
        tags=["v2"],
        parameters=[_V2_CATEGORY, _IF_NONE_MATCH],
        responses=_cached(
            "The category.", any_category_schema(), {422: validation_response("Not a category.")}
        ),
    )

    document(
        search.search_models,
        summary="Search every category but lora and ti",
        description="Filters AND together, then names are de-duplicated across categories (first "
        "wins), sorted (stable) and paged. Filters never fail on a record type.",
        tags=["search"],
        parameters=_ALL_SEARCH,
        responses=_search_responses(),
    )
    document(
        search.search_category_models,
        summary="Search one category",
        description="Filters AND together, then names are de-duplicated, sorted (stable) and "
        "paged. A filter on a field the category's record type lacks is a 400. Results are "
        "records of the category in the path.",
        tags=["search"],
        parameters=[
            path_param("category", {"type": "string", "enum": _CATEGORY_NAMES}, "The category."),
            *_CATEGORY_SEARCH,
        ],
        responses=_search_responses(),
    )

    versions = "Under /v2/metadata for v2 records, under /v1/metadata for the legacy view."
    document(
        metadata.get_last_updated,
        summary="When any category last changed",
        description=f"{versions} Only for the canonical format's version.",
        tags=["metadata"],
        parameters=[_IF_NONE_MATCH],
        responses=_cached(
            "The latest change.",
            ref("LastUpdated"),
            {503: _metadata_unavailable(last_updated=True)},
        ),
    )
    document(
        metadata.list_metadata,
        summary="Change-detection metadata of every category",
        description=versions,
        tags=["metadata"],
        parameters=[_IF_NONE_MATCH],
        responses=_cached(
            "All metadata.",
            ref("AllCategoryMetadata"),
            {503: _metadata_unavailable(last_updated=False)},
        ),
    )
    category = path_param("category", {"type": "string", "enum": _CATEGORY_NAMES}, "The category.")
    document(
        metadata.get_category_metadata,
        summary="Change-detection metadata of one category",
        description=versions,
        tags=["metadata"],
        parameters=[category, _IF_NONE_MATCH],
        responses=_cached(
            "The metadata.",
            ref("CategoryMetadata"),
            {
                422: validation_response("Not a category."),
                503: _metadata_unavailable(last_updated=False),
            },
        ),
    )
    document(
        metadata.get_category_last_updated,
        summary="When one category last changed",
        description=versions,
        tags=["metadata"],
        parameters=[category, _IF_NONE_MATCH],
        responses=_cached(
            "The category's last change.",
            ref("CategoryLastUpdated"),
            {
                422: validation_response("Not a category."),
                503: _metadata_unavailable(last_updated=False),
            },
        ),
    )

    document(
        writes.reject_write,
        summary="Rejected: this deployment has no write service",
        tags=["writes"],
        responses={503: error_response("REPLICA mode, or no write queue on this deployment.")},
    )


def setup_read_docs(app: web.Application) -> None:
    """Document the read routes and serve the OpenAPI document and Swagger UI (no I/O)."""
    _document_handlers()
    setup_openapi(
        app, TITLE, API_VERSION, description=DESCRIPTION, components=_COMPONENTS, tags=_TAGS
    )
