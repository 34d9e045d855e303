"""The static path: the deployed nginx serves whole v2 categories from the live snapshot's files,
answering exactly as the read service does (bytes, ETag, caching headers) and following every
publish; the read replicas stay the fallback."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from horde_model_records import ALL_CATEGORIES
from tests.conftest import APPROVER_KEY, REQUESTOR_KEY
from tests.test_deploy import Deployment, deployment, fetch

pytestmark = [pytest.mark.e2e, pytest.mark.subprocess]

__all__ = ["deployment"]  # the fixture, shared with test_deploy

V2 = "/api/model_references/v2"
SAME = ("ETag", "Cache-Control", "Vary", "X-Snapshot-Id", "Content-Type", "Content-Encoding")


async def _get(
    s: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    async with s.get(url, headers=headers, auto_decompress=False) as resp:
        return (
            resp.status,
            {h: resp.headers.get(h, "") for h in (*SAME, "X-Cache")},
            await resp.read(),
        )


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_nginx_and_the_read_service_answer_every_category_alike(
    deployment: Deployment, encoding: str
) -> None:
    """For every category: same status, bytes, ETag, Cache-Control, Vary, X-Snapshot-Id,
    Content-Type and Content-Encoding from nginx's file as from a read replica."""
    headers = {"Accept-Encoding": encoding}
    async with aiohttp.ClientSession() as s:
        for category in ALL_CATEGORIES:
            path = f"{V2}/{category.value}"
            a = await _get(s, deployment.url(path), headers)
            b = await _get(s, deployment.url(path, "read_api_0"), headers)
            assert a[1]["X-Cache"] == "STATIC", category
            assert a[0] == b[0] == 200, category
            assert a[2] == b[2], category
            for h in SAME:
                assert a[1][h] == b[1][h], (category, h)
            assert a[1]["Content-Encoding"] == ("gzip" if encoding == "gzip" else "")


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_an_etag_from_either_path_is_a_304_on_the_other(
    deployment: Deployment, encoding: str
) -> None:
    """A read replica's ETag gets a 304 from nginx, and nginx's ETag a 304 from a replica."""
    path = f"{V2}/image_generation"
    headers = {"Accept-Encoding": encoding}
    async with aiohttp.ClientSession() as s:
        for first, second in (("read_api_1", "nginx"), ("nginx", "read_api_0")):
            _, got, _ = await _get(s, deployment.url(path, first), headers)
            status, again, body = await _get(
                s, deployment.url(path, second), {**headers, "If-None-Match": got["ETag"]}
            )
            assert (status, body) == (304, b""), (first, second)
            assert again["ETag"] == got["ETag"]


async def test_other_reads_and_writes_on_category_paths_reach_the_services(
    deployment: Deployment,
) -> None:
    """Only GET/HEAD of a category with a file is static: a POST reaches the writer, and an
    unknown category the read service's 422."""
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await fetch(s, "POST", deployment.url(f"{V2}/blip"), json={})
        assert status == 401 and headers.get("X-Cache") != "STATIC"
        status, headers, body = await fetch(s, "GET", deployment.url(f"{V2}/no_such_category"))
        assert status == 422 and "detail" in body
        status, headers, _ = await fetch(s, "HEAD", deployment.url(f"{V2}/blip"))
        assert status == 200 and headers.get("X-Cache") == "STATIC"


async def test_a_publish_is_visible_through_nginx_within_a_second(deployment: Deployment) -> None:
    """After an apply, nginx serves the new category file, with the new snapshot id and ETag,
    within a second (polled with a bound; no throughput is asserted)."""
    url = deployment.url
    path = f"{V2}/image_generation"
    async with aiohttp.ClientSession() as s:
        plain = {"Accept-Encoding": "identity"}
        _, before, _ = await _get(s, url(path), plain)
        body = {"name": "Static Path Model", "baseline": "flux_1", "nsfw": False}
        status, _, change = await fetch(
            s, "POST", url(path), json=body, headers={"apikey": REQUESTOR_KEY}
        )
        assert status == 202
        review = {"batch_title": "static", "approved_ids": [change["change_id"]]}
        approver = {"apikey": APPROVER_KEY}
        status, _, _ = await fetch(
            s, "POST", url(f"{V2}/pending_queue/batches"), json=review, headers=approver
        )
        assert status == 200
        apply_url = url(f"{V2}/pending_queue/changes/{change['change_id']}/apply")
        status, _, _ = await fetch(s, "POST", apply_url, json={}, headers=approver)
        assert status == 200
        applied_at = time.monotonic()
        while True:
            status, after, data = await _get(s, url(path), plain)
            if b"Static Path Model" in data:
                break
            assert time.monotonic() - applied_at < 1.0, "nginx kept serving the old snapshot"
            await asyncio.sleep(0.02)
        assert after["X-Cache"] == "STATIC"
        assert int(after["X-Snapshot-Id"]) > int(before["X-Snapshot-Id"])
        assert after["ETag"] != before["ETag"]
        # the replicas notice CURRENT on their next poll: then they give the same ETag
        while True:
            _, replica, _ = await _get(s, url(path, "read_api_0"), plain)
            if replica["X-Snapshot-Id"] == after["X-Snapshot-Id"]:
                break
            assert time.monotonic() - applied_at < 1.0, "the replica kept the old snapshot"
            await asyncio.sleep(0.02)
        assert replica["ETag"] == after["ETag"]
