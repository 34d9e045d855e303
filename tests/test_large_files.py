"""Large category files are answered from disk (sendfile), with the same bytes and headers as the
small ones held in memory, and records are cut from the mapped file."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.growth import generate
from horde_model_records import ALL_CATEGORIES, Category
from services.read_api.view import Body, FileBody, ReadModel
from shared.dataset import import_legacy_dir, publish_dataset
from shared.snapshot import LARGE_FILE, Snapshot, SnapshotStore, static_etag, v1_path, v2_path

V = "/api/model_references"


@pytest.fixture(scope="module")
def doubled(legacy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the real data twice over: the text files are larger than LARGE_FILE, the
    image files are not."""
    root = tmp_path_factory.mktemp("doubled")
    generate(legacy_dir, root / "seed", 2)
    dataset, _ = import_legacy_dir(root / "seed", now=1_700_000_000)
    publish_dataset(SnapshotStore(root / "data" / "snapshots"), dataset)
    return root / "data"


def _snapshot(data_dir: Path) -> Snapshot:
    snapshot = SnapshotStore(data_dir / "snapshots").read_current()
    assert snapshot is not None
    return snapshot


def test_large_files_are_not_held_and_small_ones_are(doubled: Path) -> None:
    snapshot = _snapshot(doubled)
    model = ReadModel.build(snapshot)
    text = model.categories[Category.text_generation]
    assert isinstance(text.v2, FileBody) and isinstance(text.v1, FileBody)
    assert isinstance(model.categories[Category.image_generation].v2, Body)
    sizes = snapshot.manifest["files"]
    assert sizes[v2_path(Category.text_generation)]["size"] > LARGE_FILE


async def test_every_category_answers_its_file_whichever_way_it_is_held(
    make_client: Any, doubled: Path
) -> None:
    """Bytes, ETag, Content-Length, Content-Encoding for both codings; HEAD; 304 on either
    ETag: for every v1 and v2 category, large or small."""
    snapshot = _snapshot(doubled)
    client = await make_client(doubled)
    listing = snapshot.manifest["files"]
    paths = [v2_path(c) for c in ALL_CATEGORIES] + [
        v1_path(c) for c in ALL_CATEGORIES if v1_path(c) in listing
    ]
    for path in paths:
        url = f"{V}/{path.removesuffix('.json')}"
        meta, gz_meta = listing[path], listing[path + ".gz"]
        for coding, file, m in (("identity", path, meta), ("gzip", path + ".gz", gz_meta)):
            headers = {"Accept-Encoding": coding}
            resp = await client.get(url, headers=headers, auto_decompress=False)
            if json.loads(snapshot.files[path]) == {} and path.startswith("v1/"):
                assert resp.status == 404  # an empty legacy view, as before
                break
            body = await resp.read()
            assert resp.status == 200, url
            assert body == (doubled / "snapshots" / snapshot.name / file).read_bytes(), url
            assert resp.headers["ETag"] == static_etag(m["sha256"], m["size"])
            assert resp.headers["Content-Length"] == str(m["size"])
            assert resp.headers.get("Content-Encoding") == ("gzip" if coding == "gzip" else None)
            assert resp.headers["X-Snapshot-Id"] == str(snapshot.id)
            assert resp.headers["Vary"] == "Accept-Encoding"
            head = await client.head(url, headers=headers)
            assert head.status == 200 and await head.read() == b""
            assert head.headers["ETag"] == resp.headers["ETag"]
            assert head.headers["Content-Length"] == str(m["size"])
            again = await client.get(
                url, headers={**headers, "If-None-Match": resp.headers["ETag"]}
            )
            assert again.status == 304 and await again.read() == b""


async def test_records_of_a_large_file_are_its_spans(make_client: Any, doubled: Path) -> None:
    snapshot = _snapshot(doubled)
    records = json.loads(snapshot.files[v2_path(Category.text_generation)])
    client = await make_client(doubled)
    for name in (next(iter(records)), list(records)[len(records) // 2], list(records)[-1]):
        resp = await client.get(f"{V}/v2/text_generation/model/{name.replace('/', '%2F')}")
        assert resp.status == 200
        assert json.loads(await resp.read()) == records[name]
    resp = await client.get(f"{V}/v2/text_generation/search", params={"limit": "3"})
    page = json.loads(await resp.read())
    assert [r["name"] for r in page["results"]] == list(records)[:3]


async def test_a_large_file_is_still_answered_after_its_directory_is_pruned(
    make_client: Any, doubled: Path, tmp_path: Path
) -> None:
    """A view holds its large files open: a snapshot directory deleted under a live view (a
    prune racing a slow replica) does not break its answers."""
    data = tmp_path / "data"
    shutil.copytree(doubled, data)
    snapshot = _snapshot(data)
    expected = snapshot.files[v2_path(Category.text_generation) + ".gz"]
    client = await make_client(data)
    shutil.rmtree(data / "snapshots" / snapshot.name)
    resp = await client.get(
        f"{V}/v2/text_generation", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert resp.status == 200
    body = await resp.read()
    assert body == expected
    assert json.loads(gzip.decompress(body))


async def test_a_large_file_gone_before_it_was_first_read_is_a_503(
    make_client: Any, doubled: Path, tmp_path: Path
) -> None:
    """A large file is read when a request first needs it (here the text toolkit, which reads
    the v1 text view): if its snapshot directory was pruned meanwhile, the request answers 503
    in the error shape with a Retry-After, not a 500."""
    data = tmp_path / "data"
    shutil.copytree(doubled, data)
    snapshot = _snapshot(data)
    client = await make_client(data)
    shutil.rmtree(data / "snapshots" / snapshot.name)
    resp = await client.get(f"{V}/v2/text_generation/groups")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert "text_generation.json is missing" in (await resp.json())["detail"]
