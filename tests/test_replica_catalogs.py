"""The worker library's catalogs: image baselines, licensing and text guidance from the PRIMARY's
exports, kept on disk, with the bundled fallbacks; unknown baselines in records are kept."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import attrs
import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import Category
from horde_model_replica import ReplicaConfig, ReplicaManager
from shared.dataset import Dataset, publish_dataset, upsert_record
from shared.snapshot import SnapshotStore


def config(cache: Path, primary: str) -> ReplicaConfig:
    return ReplicaConfig.from_environ(
        {
            "AIWORKER_CACHE_HOME": str(cache),
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": primary,
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
            "HORDE_MODEL_REFERENCE_PRIMARY_API_RETRY_BACKOFF_SECONDS": "0.01",
        }
    )


async def test_catalogs_come_from_the_primary_and_stay_on_disk(
    client: TestClient, tmp_path: Path
) -> None:
    """Baselines, licensing and guidance are the PRIMARY's exports, saved as last good copies;
    with the PRIMARY gone a new manager serves them from disk."""
    async with ReplicaManager(config(tmp_path, str(client.make_url("/api")))) as mgr:
        baselines = await mgr.get_image_baselines_async()
        licensing = await mgr.get_licensing_async()
        guidance = await mgr.get_text_guidance_async()
        assert len(baselines["baselines"]) == 13
        assert licensing is not None
        assert (len(licensing["licenses"]), len(licensing["assets"])) == (16, 919)
        assert guidance["profiles"] == {} and guidance["metadata"]["revision"] == 1
        again = await mgr.get_image_baselines_async(refresh=True)  # a conditional GET
        assert again == baselines
    saved = tmp_path / "horde_model_reference" / "catalogs"
    assert {p.name for p in saved.glob("*.json")} == {
        "image_baselines.json",
        "licensing.json",
        "text_guidance.json",
    }
    async with ReplicaManager(config(tmp_path, "http://127.0.0.1:9/api")) as offline:
        licensing = await offline.get_licensing_async()
        assert licensing is not None and len(licensing["licenses"]) == 16


async def test_without_primary_or_copy_the_bundled_catalogs_serve(tmp_path: Path) -> None:
    """Nothing reachable, nothing on disk: the 13 bundled baselines, an empty guidance catalog,
    no licensing."""
    async with ReplicaManager(config(tmp_path, "http://127.0.0.1:9/api")) as mgr:
        baselines = await mgr.get_image_baselines_async()
        assert "krea2_turbo" in baselines["baselines"]
        assert (await mgr.get_text_guidance_async())["assignments"] == {}
        assert await mgr.get_licensing_async() is None


async def test_an_unknown_baseline_from_the_primary_is_kept_with_a_warning(
    tmp_path: Path,
    dataset: Dataset,
    make_client: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A record whose baseline no catalog knows reaches the worker as it is (a warning names the
    value once per process: here it may already have come when the record was made)."""
    record = dataset.categories[Category.image_generation].records["Deliberate"]
    future = attrs.evolve(record, name="Future Model", baseline="unheard_of_arch_7")
    changed = upsert_record(dataset, Category.image_generation, future, int(time.time()))
    publish_dataset(SnapshotStore(tmp_path / "data" / "snapshots"), changed)
    primary = await make_client(tmp_path / "data")  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="horde_model_records"):
        async with ReplicaManager(config(tmp_path / "w", str(primary.make_url("/api")))) as mgr:
            models = await mgr.get_model_reference_async(Category.image_generation)
    assert models["Future Model"].baseline == "unheard_of_arch_7"
    assert any("unheard_of_arch_7" in r.getMessage() for r in caplog.records)
