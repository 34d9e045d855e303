"""HTTP caching of reads: strong ETags from bytes, 304s, gzip, Cache-Control, X-Snapshot-Id."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import Category, structure_record
from shared.dataset import import_legacy_dir, publish_dataset, upsert_record
from shared.snapshot import SnapshotStore

V2 = "/api/model_references/v2"
V1 = "/api/model_references/v1"
CACHED = [
    f"{V2}/image_generation",
    f"{V1}/stable_diffusion.json",
    f"{V2}/text_generation/model/acrastt/Marx-3B-V3",
    f"{V2}/metadata/image_generation",
]


@pytest.mark.parametrize("path", CACHED)
async def test_read_carries_cache_headers(client: TestClient, path: str) -> None:
    """Cacheable reads carry a strong ETag, public max-age=60, Vary and the snapshot id."""
    resp = await client.get(path)
    assert resp.status == 200
    etag = resp.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    assert resp.headers["Vary"] == "Accept-Encoding"
    assert resp.headers["X-Snapshot-Id"] == "1"


@pytest.mark.parametrize("path", CACHED)
async def test_if_none_match_gives_304(client: TestClient, path: str) -> None:
    """Sending the ETag back answers 304 with no body and the same ETag."""
    etag = (await client.get(path)).headers["ETag"]
    resp = await client.get(path, headers={"If-None-Match": etag})
    assert resp.status == 304
    assert await resp.read() == b""
    assert resp.headers["ETag"] == etag and resp.headers["X-Snapshot-Id"] == "1"


async def test_if_none_match_accepts_lists_and_weak_form(client: TestClient) -> None:
    """If-None-Match matches within a list and in weak form; a stale tag gets the body."""
    path = f"{V2}/image_generation"
    etag = (await client.get(path)).headers["ETag"]
    assert (await client.get(path, headers={"If-None-Match": f'"old", W/{etag}'})).status == 304
    stale = await client.get(path, headers={"If-None-Match": '"old"'})
    assert stale.status == 200 and await stale.read()


async def test_gzip_has_its_own_etag(client: TestClient) -> None:
    """The gzip representation has a distinct strong ETag; either one revalidates."""
    path = f"{V2}/image_generation"
    plain = await client.get(path, headers={"Accept-Encoding": "identity"})
    gz = await client.get(path, headers={"Accept-Encoding": "gzip, deflate"}, auto_decompress=False)
    assert gz.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert gz.headers["ETag"] != plain.headers["ETag"]
    again = await client.get(path, headers={"If-None-Match": gz.headers["ETag"]})
    assert again.status == 304


async def test_gzip_refused_with_q_zero(client: TestClient) -> None:
    """Accept-Encoding gzip;q=0 gets the identity body."""
    resp = await client.get(f"{V2}/image_generation", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in resp.headers


async def test_head_answers_headers_only(client: TestClient) -> None:
    """HEAD on a category answers 200 with the ETag and no body."""
    resp = await client.head(f"{V2}/image_generation")
    assert resp.status == 200 and "ETag" in resp.headers
    assert await resp.read() == b""


@pytest.mark.parametrize(
    "path",
    [
        f"{V2}/image_generation/model/nope",
        f"{V2}/nope",
        f"{V1}/nope",
        f"{V2}/image_generation/search?limit=0",
        f"{V2}/search?name_contains=x",
        f"{V2}/image_generation/search",
    ],
)
async def test_every_read_carries_snapshot_id(client: TestClient, path: str) -> None:
    """Successes and errors of read routes all carry X-Snapshot-Id."""
    resp = await client.get(path)
    assert resp.headers.get("X-Snapshot-Id") == "1", resp.status


async def test_etag_survives_publishes_that_do_not_touch_a_category(
    make_client: Any, tmp_path: Path, legacy_dir: Path
) -> None:
    """After a publish, an untouched category keeps its ETag and a touched one gets a new one."""
    dataset = import_legacy_dir(legacy_dir, now=1_700_000_000)[0]
    store = SnapshotStore(tmp_path / "snapshots")
    publish_dataset(store, dataset)
    client = await make_client(tmp_path)
    text_before = (await client.get(f"{V2}/text_generation")).headers["ETag"]
    image_before = (await client.get(f"{V2}/image_generation")).headers["ETag"]
    record = structure_record(
        Category.image_generation,
        {"name": "Etag Probe", "baseline": "flux_1", "nsfw": False},
    )
    publish_dataset(store, upsert_record(dataset, Category.image_generation, record, 1_800_000_000))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        resp = await client.get(f"{V2}/text_generation", headers={"If-None-Match": text_before})
        if resp.headers["X-Snapshot-Id"] == "2":
            break
    assert resp.status == 304 and resp.headers["ETag"] == text_before
    image_after = await client.get(
        f"{V2}/image_generation", headers={"If-None-Match": image_before}
    )
    assert image_after.status == 200 and image_after.headers["ETag"] != image_before


@pytest.mark.parametrize(
    "path",
    [
        "/api/",
        "/api/replicate_mode",
        f"{V1}/info",
        f"{V2}/model_categories",
        f"{V2}/metadata/metadata",
    ],
)
async def test_capability_reads_carry_snapshot_id(client: TestClient, path: str) -> None:
    """Capability and metadata reads name the live snapshot too."""
    assert (await client.get(path)).headers.get("X-Snapshot-Id") == "1"
