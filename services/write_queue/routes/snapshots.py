"""Snapshots over HTTP, for read replicas that cannot share the data volume (internal routes)."""

from __future__ import annotations

import json

from aiohttp import web

from shared.errors import NotFound
from shared.snapshot import MANIFEST, SnapshotError, snapshot_id_of

from ..keys import write_queue_key

routes = web.RouteTableDef()

PREFIX = "/api/internal/snapshots"


@routes.get(PREFIX + "/current")
async def get_current_snapshot(request: web.Request) -> web.Response:
    store = request.config_dict[write_queue_key].snapshots
    name = store.current_name()
    if name is None:
        raise NotFound("No snapshot has been published yet.")
    return web.json_response({"name": name}, headers={"Cache-Control": "no-store"})


@routes.get(PREFIX + "/{name}/{path:.+}")
async def get_snapshot_file(request: web.Request) -> web.Response:
    """A file of a published snapshot; only names the manifest lists are served (no traversal)."""
    store = request.config_dict[write_queue_key].snapshots
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
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
