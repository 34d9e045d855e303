"""Turning prepared bodies into responses: ETag, 304, gzip, cache and snapshot headers."""

from __future__ import annotations

from aiohttp import web

from shared.errors import Unavailable
from shared.http import response_headers_key

from .keys import read_config_key, snapshot_holder_key
from .view import Body, ReadModel


def read_model(request: web.Request) -> ReadModel:
    """The snapshot this request is answered from, taken once at its start."""
    model = request.config_dict[snapshot_holder_key].current
    if model is None:
        raise Unavailable("No model reference snapshot has been published yet.")
    request[response_headers_key] = model.headers
    return model


def _accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            return not (params and q.replace(".", "").strip("0") == "")
    return False


def _etag_matches(header: str, body: Body) -> bool:
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/")
        if tag == "*" or tag == body.etag or tag == body.gz_etag:
            return True
    return False


def respond(request: web.Request, model: ReadModel, body: Body) -> web.Response:
    """A cacheable read: strong ETag, If-None-Match -> 304, gzip when accepted."""
    max_age = request.config_dict[read_config_key].cache_max_age
    use_gz = body.gz is not None and _accepts_gzip(request)
    headers = {
        "Cache-Control": f"public, max-age={max_age}",
        "ETag": body.gz_etag if use_gz else body.etag,
        "X-Snapshot-Id": str(model.snapshot_id),
        "Vary": "Accept-Encoding",
    }
    inm = request.headers.get("If-None-Match")
    if inm is not None and _etag_matches(inm, body):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "application/json"
    if use_gz:
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=body.gz, headers=headers)
    return web.Response(body=body.data, headers=headers)


def respond_json(model: ReadModel, data: bytes) -> web.Response:
    """An uncached computed answer (search): JSON with the snapshot header."""
    return web.Response(
        body=data,
        headers={"Content-Type": "application/json", "X-Snapshot-Id": str(model.snapshot_id)},
    )
