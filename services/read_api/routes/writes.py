"""What a read-only deployment answers to writes: 503 in the error envelope."""

from __future__ import annotations

from aiohttp import web

from shared.errors import Unavailable
from shared.openapi import docs

from ..keys import read_config_key

routes = web.RouteTableDef()

_REPLICA = (
    "This instance is in REPLICA mode and does not support write operations. "
    "Only PRIMARY instances can modify data."
)
_NO_QUEUE = "Pending queue is disabled or unsupported on this deployment."


@docs(
    "Rejected: this deployment has no write service",
    tags=("writes",),
    errors={503: "REPLICA mode, or no write queue on this deployment."},
)
async def reject_write(request: web.Request) -> web.Response:
    if request.config_dict[read_config_key].mode == "REPLICA":
        raise Unavailable(_REPLICA)
    raise Unavailable(_NO_QUEUE)


for _method in ("POST", "PUT", "PATCH", "DELETE"):
    routes.route(_method, "/api/model_references/{tail:.*}")(reject_write)
for _path in (
    "/api/model_references/v1/pending_queue{tail:.*}",
    "/api/model_references/v2/pending_queue{tail:.*}",
    "/api/model_references/v2/me/roles",
    "/api/model_references/v2/{category}/pending",
):
    routes.get(_path, allow_head=False)(reject_write)
