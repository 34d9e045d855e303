"""Beta models: `PendingModelProvider` against the real read + write services on loopback.

The services ask a fake AI-Horde who owns a key (the anonymous `0000000000` is a valid reader);
a requestor proposes models, which the provider then serves as the source "pending".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from horde_model_records import Category
from horde_model_replica import (
    PENDING_SOURCE_ID,
    PendingModelProvider,
    ReplicaConfig,
    ReplicaManager,
    StatusError,
    UnreachableError,
)
from tests.fakes.horde import refused_url
from tests.replica_helpers import ANONYMOUS_KEY, LivePrimary, start_live_primary

IMAGE = Category.image_generation
BETA = {"name": "Beta Painter XL", "baseline": "stable_diffusion_xl", "nsfw": False}
PENDING_PATH = "/api/model_references/v2/image_generation/pending"

ProviderFactory = Callable[..., PendingModelProvider]


@pytest.fixture
async def primary(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> LivePrimary:
    """The live system, with one beta model proposed."""
    live = await start_live_primary(aiohttp_client, aiohttp_server, tmp_path / "data")
    await live.propose(IMAGE, BETA)
    return live


@pytest.fixture
async def make_provider(primary: LivePrimary) -> AsyncIterator[ProviderFactory]:
    """Build providers for the live PRIMARY (anonymous key, image_generation); closed after."""
    made: list[PendingModelProvider] = []

    def factory(**overrides: Any) -> PendingModelProvider:
        arguments: dict[str, Any] = {
            "primary_api_url": primary.api,
            "apikey": ANONYMOUS_KEY,
            "categories": {IMAGE},
            "retry_backoff_seconds": 0.01,
            **overrides,
        }
        made.append(PendingModelProvider(**arguments))
        return made[-1]

    yield factory
    for provider in made:
        provider.close()


async def test_the_anonymous_key_reads_the_beta_models(make_provider: ProviderFactory) -> None:
    """A proposed model comes back as a typed record under its name."""
    provider = make_provider()
    assert provider.source_id == PENDING_SOURCE_ID and provider.provided_categories() == {IMAGE}
    beta = await provider.fetch_category_async(IMAGE)
    assert beta is not None and list(beta) == ["Beta Painter XL"]
    record = beta["Beta Painter XL"]
    assert record.name == "Beta Painter XL" and record.baseline == "stable_diffusion_xl"


async def test_answers_are_kept_for_the_ttl(
    primary: LivePrimary, make_provider: ProviderFactory
) -> None:
    """Within the TTL, sync and async reads cost one request; `force_refresh` asks again."""
    provider = make_provider()
    first = await provider.fetch_category_async("image_generation")
    for _ in range(3):
        assert await provider.fetch_category_async(IMAGE) == first
    assert primary.faults.count(PENDING_PATH) == 1
    await provider.fetch_category_async(IMAGE, force_refresh=True)
    assert primary.faults.count(PENDING_PATH) == 2


async def test_a_category_it_does_not_serve_is_none_without_a_request(
    primary: LivePrimary, make_provider: ProviderFactory
) -> None:
    """A category outside `categories` (or not one at all) is None, and nothing is asked."""
    provider = make_provider()
    assert await provider.fetch_category_async(Category.esrgan) is None
    assert await provider.fetch_category_async("no such category") is None
    assert primary.faults.count("/pending") == 0


async def test_a_refused_key_is_an_error_kept_for_the_ttl(
    primary: LivePrimary, make_provider: ProviderFactory
) -> None:
    """A key AI-Horde does not know is a 401: raised (the read marks it error), asked once per TTL."""
    provider = make_provider(apikey="not-a-key")
    for _ in range(2):
        with pytest.raises(StatusError, match="401"):
            await provider.fetch_category_async(IMAGE)
    assert primary.faults.count(PENDING_PATH) == 1


async def test_an_unreachable_primary_is_an_error(make_provider: ProviderFactory) -> None:
    """Nothing listening: retried, then raised as UnreachableError."""
    provider = make_provider(primary_api_url=refused_url(), retry_max_attempts=2)
    with pytest.raises(UnreachableError):
        await provider.fetch_category_async(IMAGE)


async def test_a_primary_without_the_route_has_no_beta_models(
    primary: LivePrimary, make_provider: ProviderFactory
) -> None:
    """A 404 (no such route there) means no beta models: None, no error."""
    provider = make_provider(primary_api_url=primary.api + "/elsewhere")
    assert await provider.fetch_category_async(IMAGE) is None


@pytest.fixture
async def manager(primary: LivePrimary, tmp_path: Path) -> AsyncIterator[ReplicaManager]:
    """A manager on the live PRIMARY."""
    config = ReplicaConfig.from_environ(
        {
            "AIWORKER_CACHE_HOME": str(tmp_path / "worker"),
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": primary.api,
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
        }
    )
    async with ReplicaManager(config) as mgr:
        yield mgr


async def test_pending_records_overlay_the_canonical_ones(
    primary: LivePrimary, manager: ReplicaManager, make_provider: ProviderFactory
) -> None:
    """With `["pending", "horde"]`, a proposed update wins over the live record; new ones join."""
    live = await primary.record(IMAGE, "Example Photoreal")
    await primary.propose_update(IMAGE, {**live, "description": "Proposed wording."})
    manager.register_provider(make_provider())
    query = await manager.query_async(IMAGE, source=["pending", "horde"])
    by_name = {record.name: (record, source) for record, source in query.to_list_with_source()}
    assert by_name["Beta Painter XL"][1] == "pending"
    assert by_name["Example Photoreal"][0].description == "Proposed wording."
    assert by_name["Example Photoreal"][1] == "pending"
    assert by_name["Example Anime Inpainting"][1] == "horde"
    assert query.duplicate_names() == {"Example Photoreal": ["pending", "horde"]}
    canonical = await manager.get_model_async(IMAGE, "Example Photoreal")
    assert canonical.description == live["description"]


async def test_a_refused_key_leaves_the_canonical_records(
    manager: ReplicaManager, make_provider: ProviderFactory
) -> None:
    """A refused key marks "pending" as error; the read still serves the canonical records."""
    manager.register_provider(make_provider(apikey="not-a-key"))
    query = await manager.query_async(IMAGE, source=["pending", "horde"])
    assert query.source_status() == {"pending": "error", "horde": "ok"}
    assert "Example Photoreal" in {r.name for r in query.to_list()}
    assert "Beta Painter XL" not in {r.name for r in query.to_list()}
