"""`get_popular_models`: the reference's models ranked by a fake AI-Horde's live numbers.

The models come from the live PRIMARY (the bundled sample data); the numbers from the fake
AI-Horde on loopback (tests/fakes/horde.py), in the shapes AI-Horde sends them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from horde_model_records import Category
from horde_model_replica import ReplicaConfig, ReplicaManager, RetryableStatus
from tests.fakes.horde_payloads import image_status, text_status, usage, workers
from tests.replica_helpers import LivePrimary, start_live_primary

IMAGE = Category.image_generation
TEXT = Category.text_generation
#: the sample's image models, in the order the fake makes them busiest first
IMAGE_ORDER = [
    "Example Flux Swift",
    "Example Classic 768",
    "Example Photoreal",
    "Example Critter XL",
    "Example XL Painter",
    "Example Anime Inpainting",
]


@pytest.fixture
async def primary(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> LivePrimary:
    """The live system; its fake AI-Horde serves status, usage and workers for the sample."""
    live = await start_live_primary(aiohttp_client, aiohttp_server, tmp_path / "data")
    names = [*IMAGE_ORDER, "Not In The Reference"]
    live.horde.payloads["status_image"] = image_status(names)
    # use runs the other way round: the least busy model is the most used
    live.horde.payloads["usage_image"] = usage(names[::-1])
    image_workers, _ = workers(names, [], count=12)
    live.horde.payloads["workers_image"] = image_workers
    return live


@pytest.fixture
async def mgr(primary: LivePrimary, tmp_path: Path) -> AsyncIterator[ReplicaManager]:
    config = ReplicaConfig.from_environ(
        {
            "AIWORKER_CACHE_HOME": str(tmp_path / "worker"),
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": primary.api,
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
            "HORDE_MODEL_REFERENCE_PRIMARY_API_RETRY_BACKOFF_SECONDS": "0.01",
            "AI_HORDE_URL": primary.horde.url,
        }
    )
    async with ReplicaManager(config) as manager:
        yield manager


async def test_models_are_ranked_by_worker_count(primary: LivePrimary, mgr: ReplicaManager) -> None:
    """The busiest reference models first, with their status numbers; unknown names left out."""
    primary.horde.paths.clear()
    ranked = await mgr.get_popular_models(IMAGE, limit=4)
    assert [r.name for r in ranked] == IMAGE_ORDER[:4]
    top = ranked[0]
    assert top.stats.worker_count == 7 and top.stats.eta == 20 and top.stats.performance == 1.5
    assert top.stats.queued == 1000.0 and top.stats.queued_jobs == 3.0
    assert top.stats.worker_summaries is None
    assert top.record["name"] == "Example Flux Swift" and top.record["baseline"] == "flux_1"
    assert sorted(primary.horde.paths) == [
        "/api/v2/stats/img/models?model_state=known",
        "/api/v2/status/models?type=image&model_state=known",
    ]


async def test_models_can_be_ranked_by_use(mgr: ReplicaManager) -> None:
    """`sort_by="usage_month"` orders by the month's use, summed over a model's names."""
    ranked = await mgr.get_popular_models(IMAGE, sort_by="usage_month", limit=10)
    assert [r.name for r in ranked] == IMAGE_ORDER[::-1]
    months = [r.stats.usage_stats.month for r in ranked if r.stats.usage_stats]
    assert months == sorted(months, reverse=True) and len(months) == len(IMAGE_ORDER)


async def test_workers_are_listed_when_asked(primary: LivePrimary, mgr: ReplicaManager) -> None:
    """`include_workers=True` reads /v2/workers and counts each model's workers from it."""
    ranked = await mgr.get_popular_models(IMAGE, include_workers=True, limit=10)
    assert "/api/v2/workers?type=image" in primary.horde.paths
    for result in ranked:
        summaries = result.stats.worker_summaries
        assert summaries is not None and result.stats.worker_count == len(summaries)
        served = [w for w in primary.horde.payloads["workers_image"] if result.name in w["models"]]
        assert sorted(summaries) == sorted(w["id"] for w in served)


async def test_a_text_model_counts_all_its_backend_names(
    primary: LivePrimary, mgr: ReplicaManager
) -> None:
    """koboldcpp/ and aphrodite/ names add up to the model: busiest status, summed use."""
    names = list(await mgr.get_model_reference_async(TEXT))
    primary.horde.payloads["status_text"] = text_status(names)
    name = "ExampleOrg/Tiny-Tales-1B"
    primary.horde.payloads["usage_text"] = {
        "day": {name: 7, "koboldcpp/Tiny-Tales-1B": 5, f"aphrodite/{name}": 1},
        "month": {},
        "total": {},
    }
    ranked = await mgr.get_popular_models(TEXT, sort_by="usage_day", limit=1)
    assert [r.name for r in ranked] == [name]
    assert ranked[0].stats.usage_stats is not None and ranked[0].stats.usage_stats.day == 13
    # the koboldcpp entry (2 + position workers) is busier than the aphrodite one (1)
    assert ranked[0].stats.worker_count == 2 + names.index(name)


async def test_categories_without_live_numbers_give_nothing(
    primary: LivePrimary, mgr: ReplicaManager
) -> None:
    """AI-Horde has numbers for image and text models only; other categories ask nothing."""
    primary.horde.paths.clear()
    assert await mgr.get_popular_models(Category.esrgan) == []
    assert primary.horde.paths == []
    with pytest.raises(ValueError, match="sort_by"):
        await mgr.get_popular_models(IMAGE, sort_by="kudos")  # type: ignore[arg-type]


async def test_an_ai_horde_that_cannot_answer_raises(
    primary: LivePrimary, mgr: ReplicaManager
) -> None:
    """A 503 from AI-Horde is retried, then raised."""
    primary.horde.status = 503
    with pytest.raises(RetryableStatus, match="503"):
        await mgr.get_popular_models(IMAGE)
