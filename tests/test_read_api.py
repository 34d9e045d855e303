"""Every read against the real data: v1 views, v2 categories, single models, capabilities."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import CATEGORY_INFO, LEGACY_CATEGORIES, Category

V1 = "/api/model_references/v1"
V2 = "/api/model_references/v2"
JSON_CATEGORIES = [c for c in LEGACY_CATEGORIES if c is not Category.text_generation]


def ordered(raw: bytes | str) -> Any:
    return json.loads(raw, object_pairs_hook=list)


def v1_aliases(category: Category) -> list[str]:
    names = [category.value, f"{category.value}.json"]
    if category is Category.image_generation:
        names += ["stable_diffusion", "stable_diffusion.json"]
    return names


@pytest.mark.parametrize(
    ("category", "alias"),
    [(c, a) for c in JSON_CATEGORIES for a in v1_aliases(c)],
    ids=lambda v: str(v),
)
async def test_v1_category_equals_github_file(
    client: TestClient, legacy_dir: Path, category: Category, alias: str
) -> None:
    """Each v1 JSON category, under each alias, equals its GitHub file with key order."""
    resp = await client.get(f"{V1}/{alias}")
    assert resp.status == 200
    expected = (legacy_dir / "image" / str(CATEGORY_INFO[category].legacy_file)).read_bytes()
    assert ordered(await resp.read()) == ordered(expected)


@pytest.mark.parametrize(
    "path",
    ["db.json", "text_generation", "text_generation.json", "text_generation?include_group=false"],
)
async def test_v1_text_equals_db_json(client: TestClient, legacy_dir: Path, path: str) -> None:
    """v1 text_generation (and its db.json alias) equals the GitHub db.json: 2,157 entries in order."""
    resp = await client.get(f"{V1}/{path}")
    assert resp.status == 200
    body = await resp.read()
    assert len(json.loads(body)) == 2157
    assert ordered(body) == ordered((legacy_dir / "text" / "db.json").read_bytes())


async def test_v1_include_group_true_is_accepted(client: TestClient) -> None:
    """include_group=true is accepted and answers the text view."""
    resp = await client.get(f"{V1}/text_generation", params={"include_group": "true"})
    assert resp.status == 200
    assert "koboldcpp/Marx-3B-V3" in await resp.json()


async def test_v1_include_group_rejects_non_boolean(client: TestClient) -> None:
    """include_group=banana is a 422 in the list envelope."""
    resp = await client.get(f"{V1}/text_generation", params={"include_group": "banana"})
    assert resp.status == 422
    assert (await resp.json())["detail"][0]["loc"] == ["query", "include_group"]


@pytest.mark.parametrize("category", ["lora", "ti", "lora.json"])
async def test_v1_managed_elsewhere_is_empty_object(client: TestClient, category: str) -> None:
    """v1 lora and ti answer 200 {}."""
    resp = await client.get(f"{V1}/{category}")
    assert resp.status == 200
    assert await resp.json() == {}


@pytest.mark.parametrize(
    "category", ["controlnet_annotator", "video_generation", "audio_generation"]
)
async def test_v1_category_without_legacy_view_is_404(client: TestClient, category: str) -> None:
    """Categories with no legacy format answer 404 with the spec's message."""
    resp = await client.get(f"{V1}/{category}")
    assert resp.status == 404
    assert await resp.json() == {"detail": f"Model category '{category}' not found or is empty"}


@pytest.mark.parametrize("name", ["models.csv", "nope", "stable_diffusion.csv"])
async def test_v1_unknown_category_is_422_string(client: TestClient, name: str) -> None:
    """An unknown v1 category is a 422 whose detail is a string naming it."""
    resp = await client.get(f"{V1}/{name}")
    assert resp.status == 422
    assert await resp.json() == {
        "detail": f"Invalid model category: '{name}'. '{name}' is not a valid MODEL_REFERENCE_CATEGORY"
    }


async def test_v2_category_counts_match_the_seed(client: TestClient) -> None:
    """Every v2 category answers 200 with the seeded number of models, empty ones with {}."""
    expected = {
        "image_generation": 161,
        "text_generation": 719,
        "controlnet": 18,
        "esrgan": 6,
        "blip": 2,
        "clip": 2,
        "miscellaneous": 2,
        "controlnet_annotator": 0,
        "video_generation": 0,
        "lora": 0,
        "ti": 0,
    }
    for category, count in expected.items():
        resp = await client.get(f"{V2}/{category}")
        assert resp.status == 200, category
        assert len(await resp.json()) == count, category


async def test_v2_category_is_in_dataset_order(client: TestClient, legacy_dir: Path) -> None:
    """v2 image_generation lists its models in the GitHub file's order."""
    legacy = json.loads((legacy_dir / "image" / "stable_diffusion.json").read_bytes())
    body = await (await client.get(f"{V2}/image_generation")).json()
    assert list(body) == list(legacy)


async def test_v2_rejects_v1_aliases(client: TestClient) -> None:
    """v2 does not accept the v1 aliases: stable_diffusion is a 422 enum error."""
    resp = await client.get(f"{V2}/stable_diffusion")
    assert resp.status == 422
    detail = (await resp.json())["detail"]
    assert detail[0]["type"] == "enum" and detail[0]["loc"] == ["path", "model_category_name"]


async def test_v2_single_image_model(client: TestClient) -> None:
    """A single image model is served whole, with the normalised baseline."""
    resp = await client.get(f"{V2}/image_generation/model/stable_diffusion")
    assert resp.status == 200
    record = await resp.json()
    assert record["name"] == "stable_diffusion"
    assert record["record_type"] == "image_generation"
    assert record["baseline"] == "stable_diffusion_1"


@pytest.mark.parametrize("path", ["acrastt/Marx-3B-V3", "acrastt%2FMarx-3B-V3"])
async def test_v2_text_model_name_with_slash(client: TestClient, path: str) -> None:
    """Text model names containing '/' resolve, raw or percent-encoded."""
    resp = await client.get(f"{V2}/text_generation/model/{path}")
    assert resp.status == 200
    record = await resp.json()
    assert record["name"] == "acrastt/Marx-3B-V3" and record["parameters"] == 3_000_000_000


async def test_v2_unknown_model_is_404(client: TestClient) -> None:
    """An unknown model is a 404 naming model and category."""
    resp = await client.get(f"{V2}/image_generation/model/search")
    assert resp.status == 404
    assert await resp.json() == {
        "detail": "Model 'search' not found in category 'image_generation'"
    }


async def test_model_categories_lists(client: TestClient) -> None:
    """v1 lists all 15 categories; v2 lists 13, without lora and ti, in enumeration order."""
    v1 = await (await client.get(f"{V1}/model_categories")).json()
    v2 = await (await client.get(f"{V2}/model_categories")).json()
    assert v1 == [c.value for c in Category]
    assert v2 == [c.value for c in Category if c.value not in ("lora", "ti")]


async def test_info_routes_answer_messages(client: TestClient) -> None:
    """v1 and v2 info answer a message object."""
    for prefix in (V1, V2):
        body = await (await client.get(f"{prefix}/info")).json()
        assert isinstance(body["message"], str) and body["message"]


async def test_replicate_mode_reports_config(make_client: Any, real_data_dir: Path) -> None:
    """/replicate_mode reports mode, canonical format and writability from config."""
    replica = await make_client(real_data_dir, HMR_MODE="replica", HMR_CANONICAL_FORMAT="LEGACY")
    body = await (await replica.get("/api/replicate_mode")).json()
    assert body == {"replicate_mode": "REPLICA", "canonical_format": "legacy", "writable": False}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_writes_to_read_only_deployment_are_503(client: TestClient, method: str) -> None:
    """A write sent to the read service answers 503 in the error envelope."""
    resp = await client.request(method, f"{V2}/image_generation", json={"name": "x"})
    assert resp.status == 503
    assert "Pending queue is disabled" in (await resp.json())["detail"]


async def test_writes_on_replica_name_replica_mode(make_client: Any, real_data_dir: Path) -> None:
    """On a REPLICA the 503 says writes need a PRIMARY."""
    replica = await make_client(real_data_dir, HMR_MODE="REPLICA")
    resp = await replica.post(f"{V2}/image_generation/add", json={})
    assert resp.status == 503
    assert (await resp.json())["detail"].startswith("This instance is in REPLICA mode")


async def test_unmatched_route_is_json_404(client: TestClient) -> None:
    """An unknown path is 404 {"detail": "Not Found"}."""
    resp = await client.get("/api/nothing/here")
    assert resp.status == 404
    assert await resp.json() == {"detail": "Not Found"}


async def test_wrong_method_is_json_405(client: TestClient) -> None:
    """A wrong method on a read-only path is 405 {"detail": "Method Not Allowed"}."""
    resp = await client.delete("/api/replicate_mode")
    assert resp.status == 405
    assert await resp.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize(
    "path",
    [
        f"{V2}/%ff",
        f"{V2}/image_generation/model/%C3%28",
        f"{V2}/image_generation/model/%00",
        f"{V1}/%ff%fe.json",
        f"{V2}/metadata/%ff",
        f"{V2}/%ff/search",
    ],
)
async def test_undecodable_paths_are_4xx_json(client: TestClient, path: str) -> None:
    """Paths with bytes that are not UTF-8 get a 4xx in the error envelope."""
    resp = await client.get(path)
    assert 400 <= resp.status < 500
    assert "detail" in await resp.json()


async def test_raw_non_utf8_request_line_is_4xx(client: TestClient) -> None:
    """Raw non-UTF-8 bytes in the request line never produce a 500."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"GET /api/model_references/v2/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    status = int(status_line.split()[1])
    assert 400 <= status < 500


async def test_absurdly_long_url_is_414_json(client: TestClient) -> None:
    """A 20,000-character model name is refused with 414 in the error envelope."""
    resp = await client.get(f"{V2}/image_generation/model/{'x' * 20_000}")
    assert resp.status == 414
    assert await resp.json() == {"detail": "URI Too Long"}


async def test_gzip_body_decompresses_to_identity(client: TestClient) -> None:
    """With Accept-Encoding gzip the body is the gzip of the identity bytes."""
    plain = await (
        await client.get(f"{V1}/db.json", headers={"Accept-Encoding": "identity"})
    ).read()
    resp = await client.get(
        f"{V1}/db.json", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert resp.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await resp.read()) == plain


async def test_both_spellings_of_a_renamed_model_resolve(client: TestClient) -> None:
    """The legacy controlnet key control_qr_sdxl names control_qr_xl: v2 knows it by its name,
    v1 keeps the GitHub key, and single-model reads and name search find either spelling."""
    v2 = await (await client.get(f"{V2}/controlnet")).json()
    assert "control_qr_xl" in v2 and "control_qr_sdxl" not in v2
    v1 = await (await client.get("/api/model_references/v1/controlnet")).json()
    assert "control_qr_sdxl" in v1 and "control_qr_xl" not in v1
    for spelling in ("control_qr_xl", "control_qr_sdxl"):
        resp = await client.get(f"{V2}/controlnet/model/{spelling}")
        assert resp.status == 200, spelling
        assert (await resp.json())["name"] == "control_qr_xl"
    found = await (
        await client.get(f"{V2}/controlnet/search", params={"name_contains": "qr_sdxl"})
    ).json()
    assert [r["name"] for r in found["results"]] == ["control_qr_xl"]
