"""Turning prepared bodies into responses: ETag, 304, gzip, cache and snapshot headers."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from shared.errors import Unavailable
from shared.http import response_headers_key

from .keys import read_config_key, snapshot_holder_key
from .view import Body, FileBody, ReadModel, SnapshotFile

_CHUNK = 1 << 18  # what is read at a time where the kernel cannot send a file itself


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


def _etag_matches(header: str, body: Body | FileBody) -> bool:
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/")
        if tag == "*" or tag == body.etag or tag == body.gz_etag:
            return True
    return False


def _cache_headers(
    request: web.Request, model: ReadModel, body: Body | FileBody, use_gz: bool
) -> dict[str, str]:
    max_age = request.config_dict[read_config_key].cache_max_age
    return {
        "Cache-Control": f"public, max-age={max_age}",
        "ETag": body.gz_etag if use_gz else body.etag,
        "X-Snapshot-Id": str(model.snapshot_id),
        "Vary": "Accept-Encoding",
    }


def _answer(
    request: web.Request, model: ReadModel, body: Body | FileBody
) -> web.Response | tuple[dict[str, str], bool]:
    """The 304 of a cacheable read, or the headers of its 200 and whether it sends gzip."""
    use_gz = body.gz is not None and _accepts_gzip(request)
    headers = _cache_headers(request, model, body, use_gz)
    inm = request.headers.get("If-None-Match")
    if inm is not None and _etag_matches(inm, body):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "application/json"
    if use_gz:
        headers["Content-Encoding"] = "gzip"
    return headers, use_gz


def respond(request: web.Request, model: ReadModel, body: Body) -> web.Response:
    """A cacheable read: strong ETag, If-None-Match -> 304, gzip when accepted."""
    answer = _answer(request, model, body)
    if isinstance(answer, web.Response):
        return answer
    headers, use_gz = answer
    return web.Response(body=body.gz if use_gz else body.data, headers=headers)


def respond_file(
    request: web.Request, model: ReadModel, body: Body | FileBody
) -> web.StreamResponse:
    """`respond` for a whole category, which may be a large file sent from disk."""
    if isinstance(body, Body):
        return respond(request, model, body)
    answer = _answer(request, model, body)
    if isinstance(answer, web.Response):
        return answer
    headers, use_gz = answer
    return SendFile(body.gz if use_gz and body.gz is not None else body.file, headers)


class SendFile(web.StreamResponse):
    """A snapshot file sent by the kernel (sendfile), as nginx sends it: no copy of it passes
    through this process."""

    def __init__(self, file: SnapshotFile, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self._file = file
        self.content_length = file.size

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)  # the headers go out now
        if writer is None or request.method == "HEAD" or self._file.size == 0:
            return writer
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("Connection lost")
        loop = asyncio.get_running_loop()
        try:
            # an explicit offset: requests sharing the open file never move each other's place
            await loop.sendfile(transport, self._file.handle, 0, self._file.size)
        except NotImplementedError:  # a transport that cannot (TLS): read and write it
            fd = self._file.handle.fileno()
            for offset in range(0, self._file.size, _CHUNK):
                await writer.write(await loop.run_in_executor(None, os.pread, fd, _CHUNK, offset))
        await super().write_eof()
        return writer


def respond_json(model: ReadModel, data: bytes) -> web.Response:
    """An uncached computed answer (search): JSON with the snapshot header."""
    return web.Response(
        body=data,
        headers={"Content-Type": "application/json", "X-Snapshot-Id": str(model.snapshot_id)},
    )
