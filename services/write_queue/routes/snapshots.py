"""Snapshots over HTTP, for read replicas that cannot share the data volume (internal routes)."""

from __future__ import annotations

import json

from aiohttp import web

from shared.errors import NotFound
from shared.observability import quiet_key
from shared.openapi import docs
from shared.snapshot import MANIFEST, SnapshotError, snapshot_id_of
from shared.wire import respond

from ..keys import snapshot_store_key
from ..wire import SnapshotName

routes = web.RouteTableDef()

PREFIX = "/api/internal/snapshots"


@routes.get(PREFIX + "/current")
@docs(
    "The name of the live snapshot",
    tags=("internal",),
    answer=SnapshotName,
    answer_description="The live snapshot (never cached).",
    answer_headers={"Cache-Control": {"schema": {"type": "string", "example": "no-store"}}},
    errors={404: "No snapshot has been published yet."},
)
async def get_current_snapshot(request: web.Request) -> web.Response:
    request[quiet_key] = True  # every pulling replica asks several times a second
    name = request.config_dict[snapshot_store_key].current_name()
    if name is None:
        raise NotFound("No snapshot has been published yet.")
    return respond(SnapshotName(name=name))


_IMMUTABLE = "public, max-age=31536000, immutable"


@routes.get(PREFIX + "/{name}/{path:.+}")
@docs(
    "One file of a published snapshot",
    description="The manifest, or a file it lists (path relative to the snapshot, e.g. "
    "`v2/image_generation.json`). Snapshots never change once published.",
    tags=("internal",),
    path={
        "name": {"schema": {"type": "string", "example": "000042-3f9a1c"}},
        "path": {"schema": {"type": "string", "example": "manifest.json"}},
    },
    responses={
        200: {
            "description": "The file's bytes.",
            "headers": {"Cache-Control": {"schema": {"type": "string", "example": _IMMUTABLE}}},
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
    errors={404: "No such snapshot, or a file its manifest does not list."},
)
async def get_snapshot_file(request: web.Request) -> web.Response:
    """A file of a published snapshot; only names the manifest lists are served (no traversal)."""
    store = request.config_dict[snapshot_store_key]
    name, path = request.match_info["name"], request.match_info["path"]
    if snapshot_id_of(name) is None:
        raise NotFound(f"Snapshot '{name}' not found")
    directory = store.root / name
    try:
        manifest_bytes = (directory / MANIFEST).read_bytes()
        if path != MANIFEST and path not in json.loads(manifest_bytes)["files"]:
            raise NotFound(f"File '{path}' is not part of snapshot '{name}'")
        data = manifest_bytes if path == MANIFEST else (directory / path).read_bytes()
    except (OSError, ValueError, KeyError, SnapshotError):
        raise NotFound(f"Snapshot '{name}' not found") from None
    # immutable by construction: a snapshot's files never change once published
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Cache-Control": _IMMUTABLE},
    )
