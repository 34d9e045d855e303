"""The read service's part of the OpenAPI document: title, tags, and the path parameters and
answers its routes share. Each route's operation is declared beside its handler (`@docs`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from horde_model_records import ALL_CATEGORIES
from shared.http import Handler
from shared.openapi import JsonDict, docs, setup_openapi

TITLE = "AI-Horde model reference"
API_VERSION = "2.0.0"  # of the HTTP API (the v2 paths), not of the package
DESCRIPTION = (
    "Reference data of the AI-Horde models: v1 (legacy, GitHub-compatible) and v2 (normalised) "
    "reads, search and change-detection metadata. Reads are unauthenticated; cacheable reads carry "
    'a strong ETag and answer `If-None-Match` with 304. Errors are `{"detail": ...}`.'
)

_TAGS = {
    "capabilities": "What this deployment serves.",
    "v1": "Legacy reads: one JSON object per category, as in the original GitHub repositories.",
    "v2": "Normalised reads: every record carries record_type, metadata, config.download and "
    "model_classification. Each category's records have their own schema (`<Category>Record`).",
    "search": "Filter, sort and page v2 records.",
    "metadata": "Change detection: when each category last changed.",
    "catalogs": "The image baseline catalog: what each image architecture family offers and how "
    "AI-Horde prices and schedules it.",
    "licensing": "Licence definitions, non-model assets and every model's licence conclusion.",
    "guidance": "Text generation guidance: prompt contracts, usage recipes, their assignments.",
    "writes": "This deployment runs no write service: every write answers 503.",
    "text_toolkit": "text_generation curation: parse names, groups and their health, naming "
    "schemas, aliases and families (reads; writes are on the write service).",
}

CATEGORY: JsonDict = {
    "schema": {"type": "string", "enum": [c.value for c in ALL_CATEGORIES]},
    "description": "A v2 category (no v1 aliases); another value is a 422.",
}
V1_CATEGORY: JsonDict = {
    "schema": {"type": "string", "example": "stable_diffusion"},
    "description": "A category, or a v1 alias: a trailing `.json` is dropped, `stable_diffusion` "
    "is image_generation, `db.json` is text_generation. lora and ti answer `{}`.",
}
MODEL_NAME: JsonDict = {
    "schema": {"type": "string", "example": "stable_diffusion"},
    "description": "The model name; it may contain `/` (text models such as "
    "`acrastt/Marx-3B-V3`), literally or as `%2F`.",
}
LEGACY_CATEGORY: JsonDict = {
    "type": "object",
    "description": "A v1 (legacy) category: model name → legacy entry, in v1 order.",
    "additionalProperties": {"type": "object", "additionalProperties": True},
}
_SNAPSHOT_ID: JsonDict = {
    "description": "The snapshot the answer comes from; grows with every publish.",
    "schema": {"type": "integer"},
}
SNAPSHOT_HEADER: dict[str, JsonDict] = {"X-Snapshot-Id": _SNAPSHOT_ID}
CACHE_HEADERS: dict[str, JsonDict] = {
    "ETag": {"description": "Strong validator of the body as sent.", "schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string", "example": "public, max-age=60"}},
    "X-Snapshot-Id": _SNAPSHOT_ID,
}
_IF_NONE_MATCH = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": "An ETag from an earlier answer: 304 while the body is unchanged.",
}
_NOT_MODIFIED = {
    "description": "Not modified: the If-None-Match ETag still matches.",
    "headers": CACHE_HEADERS,
}
NO_SNAPSHOT = "No snapshot has been published yet."


def cached_docs(
    summary: str,
    answer: type | JsonDict,
    answer_description: str,
    *,
    tags: tuple[str, ...],
    errors: Mapping[int, str] | None = None,
    **fields: Any,
) -> Callable[[Handler], Handler]:
    """The operation of a cacheable snapshot read: ETag headers, If-None-Match and its 304."""
    return docs(
        summary,
        tags=tags,
        answer=answer,
        answer_description=answer_description,
        answer_headers=CACHE_HEADERS,
        parameters=(_IF_NONE_MATCH,),
        responses={304: _NOT_MODIFIED},
        errors={503: NO_SNAPSHOT, **(errors or {})},
        **fields,
    )


def setup_read_docs(app: web.Application) -> None:
    """Serve the OpenAPI document and Swagger UI (no I/O)."""
    setup_openapi(app, TITLE, API_VERSION, description=DESCRIPTION, tags=_TAGS)
