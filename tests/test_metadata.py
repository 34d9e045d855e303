"""Metadata routes: per-category change detection and their mode guards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

V2M = "/api/model_references/v2/metadata"
V1M = "/api/model_references/v1/metadata"


async def test_v2_last_updated_is_the_newest_category(client: TestClient) -> None:
    """/v2/metadata/last_updated is the largest last_updated over categories."""
    body = await (await client.get(f"{V2M}/last_updated")).json()
    assert body == {"last_updated": 1_700_000_000}


async def test_v1_last_updated_needs_legacy_canonical(client: TestClient) -> None:
    """On a v2-canonical deployment /v1/metadata/last_updated is 503 with the spec's message."""
    resp = await client.get(f"{V1M}/last_updated")
    assert resp.status == 503
    assert await resp.json() == {
        "detail": "This endpoint is only available when canonical_format='LEGACY'. "
        "Current setting: canonical_format='v2'"
    }


async def test_v2_last_updated_refused_on_legacy_canonical(
    make_client: Any, real_data_dir: Path
) -> None:
    """On a legacy-canonical deployment v2 last_updated is 503 and v1 last_updated answers."""
    client = await make_client(real_data_dir, HMR_CANONICAL_FORMAT="legacy")
    resp = await client.get(f"{V2M}/last_updated")
    assert resp.status == 503
    assert "canonical_format='legacy'" in (await resp.json())["detail"]
    assert (await client.get(f"{V1M}/last_updated")).status == 200


@pytest.mark.parametrize("prefix", [V2M, V1M])
async def test_all_metadata_lists_fifteen_categories(client: TestClient, prefix: str) -> None:
    """/metadata/metadata answers CategoryMetadata for all 15 categories."""
    body = await (await client.get(f"{prefix}/metadata")).json()
    assert len(body) == 15
    image = body["image_generation"]
    assert image["total_models"] == 161 and image["backend_type"] == "snapshot"
    assert image["last_operation_type"] is None
    assert image["initialization_time"] == image["last_updated"] == 1_700_000_000


async def test_category_metadata_and_last_updated(client: TestClient) -> None:
    """Per-category metadata and last_updated answer for a known category."""
    meta = await (await client.get(f"{V2M}/text_generation")).json()
    assert meta["category"] == "text_generation" and meta["total_models"] == 719
    legacy = await (await client.get(f"{V1M}/text_generation")).json()
    assert legacy["total_models"] == 2157
    last = await (await client.get(f"{V2M}/text_generation/last_updated")).json()
    assert last == {"category": "text_generation", "last_updated": 1_700_000_000}


async def test_unknown_metadata_category_is_422(client: TestClient) -> None:
    """An unknown category in a metadata route is 422 in the list envelope."""
    resp = await client.get(f"{V2M}/nope/last_updated")
    assert resp.status == 422
    assert (await resp.json())["detail"][0]["type"] == "enum"


@pytest.mark.parametrize(
    "path",
    [f"{V2M}/last_updated", f"{V2M}/metadata", f"{V1M}/blip", f"{V2M}/blip/last_updated"],
)
async def test_metadata_refused_on_replica(
    make_client: Any, real_data_dir: Path, path: str
) -> None:
    """Every metadata route is 503 on a REPLICA."""
    client = await make_client(real_data_dir, HMR_MODE="REPLICA")
    resp = await client.get(path)
    assert resp.status == 503
    assert await resp.json() == {"detail": "Metadata tracking is not supported in REPLICA mode"}
