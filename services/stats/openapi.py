"""The stats service's part of the OpenAPI document: title and tags. Each route's operation is
declared beside its handler (`@docs`); schemas come from the classes in wire.py."""

from __future__ import annotations

from aiohttp import web

from shared.openapi import setup_openapi

TITLE = "AI-Horde model reference statistics"
API_VERSION = "2.0.0"
DESCRIPTION = (
    "AI-Horde status, usage and workers merged with the model reference: heartbeat, popular "
    "models, category statistics and deletion risk. Answers come from the last good AI-Horde poll; "
    "when AI-Horde has never answered, `popular` is an empty list and deletion risk a 502."
)
_TAGS = {"stats": "AI-Horde usage and worker statistics."}


def setup_stats_docs(app: web.Application) -> None:
    """Serve the document (or join the app's, when another service serves it). No I/O."""
    setup_openapi(app, TITLE, API_VERSION, description=DESCRIPTION, tags=_TAGS)
