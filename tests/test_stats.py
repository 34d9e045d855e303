"""The stats service against a fake AI-Horde on loopback, on the real model data."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from attrs import evolve
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from horde_model_records import Category, structure_record, text_model_group
from services.stats.app import create_app
from services.stats.config import Config
from shared.dataset import Dataset, import_legacy_dir, publish_dataset, upsert_record
from shared.snapshot import SnapshotStore
from tests.conftest import serve
from tests.fakes import horde_payloads as payloads
from tests.fakes.horde import FakeHorde, refused_url, start_fake_horde
from tests.helpers import wait_for_json

V2 = "/api/model_references/v2"
STATS = "/api/model_references/statistics"


@pytest.fixture(scope="module")
def names(legacy_dir: Path) -> tuple[list[str], list[str]]:
    """Forty image and twenty text model names of the real data, in dataset order."""
    image = list(json.loads((legacy_dir / "image" / "stable_diffusion.json").read_bytes()))[:40]
    rows = (legacy_dir / "text" / "models.csv").read_text().splitlines()[1:21]
    text = [row.split(",", 1)[0] for row in rows]
    return image, text


@pytest.fixture
async def horde(aiohttp_server: Any, names: tuple[list[str], list[str]]) -> FakeHorde:
    """A fake AI-Horde with a hundred workers and realistic status, usage and worker payloads."""
    image, text = names
    fake = await start_fake_horde(aiohttp_server)
    image_workers, text_workers = payloads.workers(image, text, count=100)
    fake.payloads = {
        "status_image": payloads.image_status(image),
        "status_text": payloads.text_status(text),
        "usage_image": payloads.usage(image),
        # a quantised sibling of the first text model, as workers report it
        "usage_text": payloads.usage([*text, text[0] + "-Q4_K_M"]),
        "workers_image": image_workers,
        "workers_text": text_workers,
    }
    yield fake
    fake.release()


StatsFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_stats(aiohttp_client: Any) -> StatsFactory:
    async def factory(data_dir: Path, horde_url: str, **overrides: object) -> TestClient:
        env = {
            "HMR_DATA_DIR": str(data_dir),
            "HMR_HORDE_URL": horde_url,
            "HMR_POLL_INTERVAL": "60",
            "HMR_HORDE_TIMEOUT": "0.5",
            "HMR_HORDE_RETRY_BACKOFF": "0.01",
            "HMR_SNAPSHOT_POLL_INTERVAL": "0.05",
            **{k: str(v) for k, v in overrides.items()},
        }
        return await aiohttp_client(await serve(create_app(Config.from_environ(env))))

    return factory


@pytest.fixture
async def stats(make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde) -> TestClient:
    return await make_stats(real_data_dir, horde.url)


async def get_json(client: TestClient, path: str, status: int = 200, **params: Any) -> Any:
    resp = await client.get(path, params=params)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_heartbeat_reports_a_healthy_upstream(stats: TestClient) -> None:
    """The heartbeat says ok, not degraded, with the time of the last successful poll."""
    body = await get_json(stats, "/api/heartbeat")
    assert body["status"] == "ok"
    assert body["ai_horde"]["degraded"] is False and body["ai_horde"]["consecutive_failures"] == 0
    assert body["ai_horde"]["seconds_until_retry"] is None
    assert body["ai_horde"]["last_successful_poll"] <= time.time()
    assert body["ai_horde"]["poll_in_progress_seconds"] is None  # between polls
    assert body["snapshot_id"] == 1


async def test_popular_image_ranks_by_worker_count(stats: TestClient, names: Any) -> None:
    """Image models rank by status worker count by default, most served first."""
    body = await get_json(stats, f"{V2}/image_generation/popular", limit=3)
    assert [m["name"] for m in body] == names[0][:3]
    first = body[0]
    assert (
        first["record"]["name"] == names[0][0]
        and first["record"]["record_type"] == "image_generation"
    )
    assert first["stats"]["worker_count"] == 40
    assert first["stats"]["usage_stats"] == {"day": 400, "month": 12000, "total": 4_000_000}
    assert "worker_summaries" not in first["stats"]


async def test_popular_image_ranks_by_usage_when_asked(stats: TestClient, names: Any) -> None:
    """sort_by=usage_month ranks by monthly usage; models without usage keep dataset order last."""
    body = await get_json(stats, f"{V2}/image_generation/popular", sort_by="usage_month", limit=100)
    months = [m["stats"].get("usage_stats", {}).get("month", 0) for m in body]
    assert months == sorted(months, reverse=True)
    assert body[0]["name"] == names[0][0]


async def test_popular_text_merges_backend_variants(stats: TestClient, names: Any) -> None:
    """Text models take the busiest of their koboldcpp/aphrodite entries and sum their usage."""
    body = await get_json(stats, f"{V2}/text_generation/popular", sort_by="usage_month", limit=1)
    top = body[0]
    assert top["name"] == names[1][0]
    # month usage: the model itself plus its -Q4_K_M sibling
    assert top["stats"]["usage_stats"]["month"] == 21 * 300 + 1 * 300
    assert top["stats"]["worker_count"] == 2  # koboldcpp/ entry count beats aphrodite/ (1)
    assert top["record"]["parameters"] > 0


async def test_popular_records_carry_licensing_but_no_guidance(stats: TestClient) -> None:
    """Popular records are v2 reads without the text `guidance` status (spec 06 §3.2) but with
    the licensing default (§1.2)."""
    body = await get_json(stats, f"{V2}/text_generation/popular", limit=100)
    assert body and not any("guidance" in m["record"] for m in body)
    assert all(m["record"]["licensing"]["license_expression"] == "NOASSERTION" for m in body)


async def test_popular_with_workers_matches_prefixed_names(stats: TestClient) -> None:
    """include_workers attaches summaries; text workers advertise backend-prefixed names."""
    body = await get_json(stats, f"{V2}/text_generation/popular", include_workers="true", limit=100)
    served = [m["stats"] for m in body if "worker_summaries" in m["stats"]]
    assert len(served) >= 10  # text workers advertise koboldcpp/ names, matched to base names
    assert all(s["worker_count"] == len(s["worker_summaries"]) for s in served)
    summary = next(iter(served[0]["worker_summaries"].values()))
    assert set(summary) == {"id", "name", "performance", "online", "trusted", "uptime"}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": "0"}, 422),
        ({"limit": "101"}, 422),
        ({"sort_by": "fame"}, 422),
        ({"include_workers": "x"}, 422),
    ],
)
async def test_popular_rejects_bad_parameters(stats: TestClient, params: dict, status: int) -> None:
    """Out-of-range limits, unknown sort keys and non-boolean flags are 422."""
    await get_json(stats, f"{V2}/image_generation/popular", status=status, **params)


async def test_popular_unknown_and_other_categories(stats: TestClient) -> None:
    """An unknown category is a 422 with a string detail; other categories answer []."""
    body = await get_json(stats, f"{V2}/banana/popular", status=422)
    assert body["detail"].startswith("Unknown category 'banana'")
    assert await get_json(stats, f"{V2}/controlnet/popular") == []


async def test_statistics_match_the_reference_figures(stats: TestClient) -> None:
    """Image statistics on the reference data give the spec's worked figures."""
    body = await get_json(stats, f"{STATS}/image_generation")
    assert body["total_models"] == 161 and body["nsfw_count"] == 82
    assert list(body["baseline_distribution"]) == [
        "stable_diffusion_1",
        "stable_diffusion_xl",
        "stable_diffusion_2_768",
        "stable_cascade",
        "flux_1",
    ]
    assert body["baseline_distribution"]["stable_diffusion_xl"]["percentage"] == 30.43
    downloads = body["download_stats"]
    assert downloads["total_download_entries"] == 162
    assert downloads["total_size_bytes"] == 700483908653
    assert downloads["models_with_size_info"] == 160
    assert downloads["average_size_bytes"] == 4378024429.08
    assert body["top_styles"][0] == {"tag": "anime", "count": 56, "percentage": 34.78}
    assert body["models_with_trigger_words"] == 24 and body["models_with_requirements"] == 29
    assert body["offset"] == 0 and body["limit"] is None


async def test_text_statistics_bucket_parameters_and_group(stats: TestClient) -> None:
    """Text statistics bucket parameter counts; grouping counts the 419 model groups."""
    plain = await get_json(stats, f"{STATS}/text_generation")
    assert plain["total_models"] == 719 and plain["parameter_buckets"]
    assert (
        sum(b["count"] for b in plain["parameter_buckets"]) + plain["models_without_param_info"]
        == 719
    )
    grouped = await get_json(stats, f"{STATS}/text_generation", group_text_models="true", limit="5")
    assert grouped["total_models"] == 419 and grouped["limit"] == 5


async def test_statistics_errors(stats: TestClient) -> None:
    """Empty categories are 404, unknown ones 422."""
    body = await get_json(stats, f"{STATS}/lora", status=404)
    assert body == {"detail": "Category 'lora' not found or has no models"}
    await get_json(stats, f"{STATS}/nope", status=422)


async def test_deletion_risk_presets_and_paging(stats: TestClient) -> None:
    """Deletion risk sorts by monthly usage, filters by preset and pages the result."""
    body = await get_json(stats, f"{STATS}/image_generation/deletion-risk", limit="2")
    assert body["total_count"] == 161 and body["returned_count"] == 2
    assert body["models"][0]["usage_month"] >= body["models"][1]["usage_month"]
    assert body["summary"]["total_models"] == 161
    no_workers = await get_json(
        stats, f"{STATS}/image_generation/deletion-risk", preset="no_workers"
    )
    assert no_workers["total_count"] == 161 - 40
    assert all(m["worker_count"] == 0 for m in no_workers["models"])
    hosts = await get_json(stats, f"{STATS}/image_generation/deletion-risk", preset="host_issues")
    assert all(m["has_warning"] for m in hosts["models"]) and hosts["total_count"] > 0


async def test_deletion_risk_errors(stats: TestClient) -> None:
    """Unknown presets and unsupported categories are 400s with the spec's messages."""
    bad = await get_json(stats, f"{STATS}/image_generation/deletion-risk", status=400, preset="x")
    assert bad["detail"].startswith("Invalid preset: Unknown preset: 'x'. Valid presets: ")
    other = await get_json(stats, f"{STATS}/blip/deletion-risk", status=400)
    assert "only supported for image_generation and text_generation" in other["detail"]


async def test_upstream_down_at_start_degrades_gracefully(
    make_stats: StatsFactory, real_data_dir: Path
) -> None:
    """With AI-Horde down from the start: popular is [], deletion risk and with-stats 502s
    naming the reason, statistics work."""
    client = await make_stats(real_data_dir, refused_url())
    assert await get_json(client, f"{V2}/image_generation/popular") == []
    body = await get_json(client, f"{STATS}/image_generation/deletion-risk", status=502)
    assert body["detail"].startswith("AI Horde API is currently unavailable")
    body = await get_json(client, f"{STATS}/text_generation/with-stats", status=502)
    assert body == {
        "detail": "AI Horde API is currently unavailable: connection failed: ClientConnectorError"
    }
    await get_json(client, f"{STATS}/image_generation")
    beat = await get_json(client, "/api/heartbeat")
    assert beat["status"] == "degraded"
    assert beat["ai_horde"]["degraded"] is True and beat["ai_horde"]["consecutive_failures"] >= 5
    assert 0 < beat["ai_horde"]["seconds_until_retry"] <= 120


async def test_upstream_going_down_keeps_serving_last_good(
    make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde, names: Any
) -> None:
    """When AI-Horde fails later, popular keeps answering from the last good data."""
    client = await make_stats(real_data_dir, horde.url, HMR_POLL_INTERVAL="0.1")
    before = await get_json(client, f"{V2}/image_generation/popular", limit=1)
    horde.status = 503
    await wait_for_json(client, "/api/heartbeat", lambda beat: beat["ai_horde"]["degraded"] is True)
    assert await get_json(client, f"{V2}/image_generation/popular", limit=1) == before


@pytest.mark.parametrize("switch", ["garbage", "slow"])
async def test_bad_upstream_answers_are_skipped(
    make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde, switch: str
) -> None:
    """Garbage bodies and answers slower than the timeout count as failures, never as data."""
    if switch == "garbage":
        horde.garbage = True
    else:
        horde.delay = 5.0
    client = await make_stats(real_data_dir, horde.url, HMR_STARTUP_POLL_WAIT="3")
    assert await get_json(client, f"{V2}/image_generation/popular") == []
    beat = await get_json(client, "/api/heartbeat")
    assert beat["ai_horde"]["consecutive_failures"] >= 1


async def test_rate_limited_upstream_is_retried(
    make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde
) -> None:
    """A 429 with Retry-After is retried (bounded) rather than counted as data."""
    horde.status, horde.retry_after = 429, "0"
    client = await make_stats(real_data_dir, horde.url)
    asked = [p for p in horde.paths if p.startswith("/api/v2/status/models?type=image")]
    assert len(asked) == 3  # three attempts, then the breaker counts one failure
    assert await get_json(client, f"{V2}/image_generation/popular") == []


async def test_client_agent_is_sent(stats: TestClient, horde: FakeHorde) -> None:
    """Every poll identifies itself with a Client-Agent header."""
    assert horde.received and all("Client-Agent" in h for h in horde.received)


async def test_new_snapshot_is_reflected(
    make_stats: StatsFactory, tmp_path: Path, legacy_dir: Path, horde: FakeHorde
) -> None:
    """A model published in a new snapshot appears in statistics and popular without a restart."""
    dataset = import_legacy_dir(legacy_dir, now=1_700_000_000)[0]
    store = SnapshotStore(tmp_path / "snapshots")
    publish_dataset(store, dataset)
    client = await make_stats(tmp_path, horde.url)
    assert (await get_json(client, f"{STATS}/image_generation"))["total_models"] == 161
    record = structure_record(
        Category.image_generation, {"name": "Fresh Stats", "baseline": "flux_1", "nsfw": True}
    )
    publish_dataset(store, upsert_record(dataset, Category.image_generation, record, 1_800_000_000))
    await wait_for_json(client, f"{STATS}/image_generation", lambda s: s["total_models"] == 162)
    popular = await get_json(
        client, f"{V2}/image_generation/popular", limit=100, sort_by="usage_day"
    )
    assert len(popular) == 100


# --- with-stats -----------------------------------------------------------------------------------

WITH_STATS_KEYS = [
    "queued_jobs",
    "performance",
    "eta",
    "queued",
    "usage_stats",
    "worker_summaries",
    "backend_variations",
    "worker_count",
]


async def test_with_stats_answers_every_model_with_nulls_included(
    stats: TestClient, names: Any
) -> None:
    """with-stats maps every model, in dataset order, to all eight fields, nulls included."""
    body = await get_json(stats, f"{STATS}/image_generation/with-stats")
    assert len(body) == 161
    assert list(body)[:40] == names[0]
    assert all(list(figures) == WITH_STATS_KEYS for figures in body.values())
    top = body[names[0][0]]
    assert top["worker_count"] == 40 and top["queued_jobs"] == 3.0
    assert top["usage_stats"] == {"day": 400, "month": 12000, "total": 4_000_000}
    assert top["worker_summaries"] is None and top["backend_variations"] is None
    unserved = body[list(body)[-1]]
    assert unserved == dict.fromkeys(WITH_STATS_KEYS) | {"worker_count": 0}


async def test_with_stats_min_worker_count_counts_status_workers(stats: TestClient) -> None:
    """min_worker_count filters on worker_count, so it works without include_workers."""
    body = await get_json(stats, f"{STATS}/image_generation/with-stats", min_worker_count="39")
    assert [figures["worker_count"] for figures in body.values()] == [40, 39]
    none = await get_json(stats, f"{STATS}/image_generation/with-stats", min_worker_count="1000")
    assert none == {}


async def test_with_stats_sorts_when_asked(stats: TestClient) -> None:
    """sort_by orders by usage, workers or case-blind name; sort_desc=false reverses it."""
    path = f"{STATS}/image_generation/with-stats"

    def months(body: dict[str, Any]) -> list[int]:
        return [(f["usage_stats"] or {}).get("month", 0) for f in body.values()]

    down = await get_json(stats, path, sort_by="usage_month")
    assert months(down) == sorted(months(down), reverse=True) and months(down)[0] == 12000
    up = await get_json(stats, path, sort_by="worker_count", sort_desc="false")
    counts = [f["worker_count"] for f in up.values()]
    assert counts == sorted(counts) and counts[-1] == 40
    by_name = list(await get_json(stats, path, sort_by="name", sort_desc="false"))
    assert by_name == sorted(by_name, key=str.lower)


async def test_with_stats_include_workers_counts_matched_workers(stats: TestClient) -> None:
    """include_workers attaches summaries (text workers' prefixed names match) and counts them."""
    body = await get_json(stats, f"{STATS}/text_generation/with-stats", include_workers="true")
    served = [f for f in body.values() if f["worker_summaries"]]
    assert len(served) >= 10
    assert all(f["worker_count"] == len(f["worker_summaries"]) for f in served)
    summary = next(iter(served[0]["worker_summaries"].values()))
    assert set(summary) == {"id", "name", "performance", "online", "trusted", "uptime"}


async def test_with_stats_backend_variations_split_text_figures(
    stats: TestClient, names: Any
) -> None:
    """include_backend_variations gives a text model's status and usage per backend."""
    first = names[1][0]
    body = await get_json(
        stats, f"{STATS}/text_generation/with-stats", include_backend_variations="true"
    )
    variations = body[first]["backend_variations"]
    assert list(variations) == ["canonical", "aphrodite", "koboldcpp"]
    canonical, aphrodite, koboldcpp = variations.values()
    # usage is reported under the canonical name (and a -Q4_K_M sibling): 21·300 + 300
    assert (canonical["worker_count"], canonical["usage_month"]) == (0, 6600)
    assert canonical["performance"] is None and canonical["variant_name"] == first
    assert (aphrodite["variant_name"], aphrodite["worker_count"]) == (f"aphrodite/{first}", 1)
    assert aphrodite["performance"] == 12.5 and aphrodite["usage_month"] == 0
    assert koboldcpp["variant_name"] == "koboldcpp/" + first.split("/", 1)[1]
    assert (koboldcpp["worker_count"], koboldcpp["performance"]) == (2, 10.0)
    assert sum(v["usage_month"] for v in variations.values()) == body[first]["usage_stats"]["month"]
    image = await get_json(
        stats, f"{STATS}/image_generation/with-stats", include_backend_variations="true"
    )
    assert all(f["backend_variations"] is None for f in image.values())


@pytest.mark.parametrize(
    "params",
    [
        {"sort_by": "fame"},
        {"min_worker_count": "-1"},
        {"min_worker_count": "many"},
        {"include_workers": "x"},
        {"sort_desc": "maybe"},
    ],
)
async def test_with_stats_rejects_bad_parameters(stats: TestClient, params: dict) -> None:
    """Unknown sort keys, negative or non-numeric counts and non-boolean flags are 422."""
    body = await get_json(stats, f"{STATS}/image_generation/with-stats", status=422, **params)
    assert body["detail"][0]["loc"] == ["query", next(iter(params))]


async def test_with_stats_other_categories_are_400(stats: TestClient) -> None:
    """A category without AI-Horde statistics is a 400 naming it; an unknown one a 422."""
    body = await get_json(stats, f"{STATS}/blip/with-stats", status=400)
    assert body == {
        "detail": "Category 'blip' does not support Horde statistics. "
        "Only image_generation and text_generation are supported."
    }
    await get_json(stats, f"{STATS}/banana/with-stats", status=422)


async def test_with_stats_empty_category_is_404(
    make_stats: StatsFactory, tmp_path: Path, legacy_dir: Path, horde: FakeHorde
) -> None:
    """A supported category without models is a 404."""
    dataset = import_legacy_dir(legacy_dir, now=1_700_000_000)[0]
    text = dataset.categories[Category.text_generation]
    empty = Dataset(
        categories={**dataset.categories, Category.text_generation: evolve(text, records={})}
    )
    publish_dataset(SnapshotStore(tmp_path / "snapshots"), empty)
    client = await make_stats(tmp_path, horde.url)
    body = await get_json(client, f"{STATS}/text_generation/with-stats", status=404)
    assert body == {"detail": "Category 'text_generation' not found"}


async def test_with_stats_without_polling_is_502(
    make_stats: StatsFactory, real_data_dir: Path
) -> None:
    """With polling switched off (HMR_HORDE_URL=off), with-stats says so in its 502."""
    client = await make_stats(real_data_dir, "off")
    body = await get_json(client, f"{STATS}/image_generation/with-stats", status=502)
    assert body == {
        "detail": "AI Horde API is currently unavailable: polling AI-Horde is switched off"
    }


async def test_with_stats_follows_new_polls(
    make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde, names: Any
) -> None:
    """The cached answer is replaced once a poll brings new figures."""
    client = await make_stats(real_data_dir, horde.url, HMR_POLL_INTERVAL="0.1")
    path = f"{STATS}/image_generation/with-stats"
    before = await get_json(client, path)
    assert before == await get_json(client, path)
    horde.payloads["usage_image"] = payloads.usage(names[0], scale=2)
    after = await wait_for_json(
        client, path, lambda body: body[names[0][0]]["usage_stats"]["month"] == 24000
    )
    assert (
        after[names[0][1]]["usage_stats"]["month"]
        == 2 * before[names[0][1]]["usage_stats"]["month"]
    )


async def test_with_stats_is_documented_and_answers_its_schema(stats: TestClient) -> None:
    """The OpenAPI document is valid, lists with-stats' parameters, and a real answer fits it."""
    doc = await get_json(stats, "/api/openapi.json")
    validate(doc)
    operation = doc["paths"][f"{STATS}/{{category}}/with-stats"]["get"]
    params = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert params == {
        "include_workers",
        "include_backend_variations",
        "min_worker_count",
        "sort_by",
        "sort_desc",
    }
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    # served models: every nested object present (an OAS 3.0 validator does not let `nullable`
    # reach through the allOf the bridge writes for an optional nested class, so a null
    # usage_stats would be refused by the validator, not by the document's intent)
    body = await get_json(
        stats,
        f"{STATS}/text_generation/with-stats",
        include_workers="true",
        include_backend_variations="true",
        min_worker_count="1",
    )
    assert len(body) == 20
    validator = OAS30Validator({**schema, "components": doc["components"]})
    assert [e.message[:200] for e in validator.iter_errors(body)] == []


# --- deletion risk: grouping and backend variations -----------------------------------------------


def _by_group(models: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for model in models:
        groups.setdefault(text_model_group(model["name"]), []).append(model)
    return groups


async def test_deletion_risk_groups_text_models_by_base_name(stats: TestClient) -> None:
    """group_text_models gives one entry per base(name) group (spec 07 §7.2): usage, shares and
    downloads summed, the most served member's workers, flags OR-ed, first-seen order of the
    most-used-first list; total_count keeps the number of models."""
    path = f"{STATS}/text_generation/deletion-risk"
    plain = await get_json(stats, path)
    grouped = await get_json(stats, path, group_text_models="true")
    members = _by_group(plain["models"])
    assert grouped["summary"]["total_models"] == len(grouped["models"]) == len(members) == 419
    assert grouped["total_count"] == plain["total_count"] == 719
    assert [g["name"] for g in grouped["models"]] == list(members)  # first-seen order
    assert any(sum(1 for m in ms if m["usage_month"]) > 1 for ms in members.values())
    for group in grouped["models"]:
        ms = members[group["name"]]
        for figure in ("usage_day", "usage_month", "usage_total", "download_count"):
            assert group[figure] == sum(m[figure] for m in ms)
        assert group["worker_count"] == max(m["worker_count"] for m in ms)
        for flag, value in group["deletion_risk_flags"].items():
            assert value == any(m["deletion_risk_flags"][flag] for m in ms), flag
        assert group["risk_score"] == sum(group["deletion_risk_flags"].values())
        assert group["at_risk"] == any(group["deletion_risk_flags"].values())
        assert group["baseline"] == ms[0]["baseline"] and group["nsfw"] == ms[0]["nsfw"]
        assert group["backend_variations"] is None
        if len(ms) == 1:
            assert group == {**ms[0], "name": group["name"]}
    assert grouped["category_total_month_usage"] == plain["category_total_month_usage"]


async def test_grouped_flags_are_any_members(
    make_stats: StatsFactory,
    real_data_dir: Path,
    horde: FakeHorde,
    legacy_dir: Path,
    names: Any,
) -> None:
    """A member AI-Horde reports with zero usage flags its whole group (flags are OR-ed), and the
    group's trend is the members' weighted by month usage."""
    rows = (legacy_dir / "text" / "models.csv").read_text().splitlines()[1:]
    every = [row.split(",", 1)[0] for row in rows]
    used, idle = next(
        (u, n) for u in names[1] for n in every if n not in names[1] and _same_group(n, u)
    )
    for period in ("day", "month", "total"):
        horde.payloads["usage_text"][period][idle] = 0
    client = await make_stats(real_data_dir, horde.url)
    path = f"{STATS}/text_generation/deletion-risk"
    plain = {m["name"]: m for m in (await get_json(client, path))["models"]}
    assert plain[idle]["deletion_risk_flags"]["zero_usage_month"] is True
    grouped = await get_json(client, path, group_text_models="true")
    group = next(g for g in grouped["models"] if g["name"] == text_model_group(used))
    assert group["usage_month"] >= plain[used]["usage_month"] > 0
    assert group["deletion_risk_flags"]["zero_usage_month"] is True
    assert group["at_risk"] is True


def _same_group(a: str, b: str) -> bool:
    return a != b and text_model_group(a) == text_model_group(b)


async def test_grouping_leaves_image_models_alone(stats: TestClient) -> None:
    """group_text_models does not change image deletion risk."""
    path = f"{STATS}/image_generation/deletion-risk"
    assert await get_json(stats, path, group_text_models="true") == await get_json(stats, path)


async def test_deletion_risk_backend_variations_for_ungrouped_text(
    stats: TestClient, names: Any
) -> None:
    """include_backend_variations lists a text model's figures per backend; it is null for
    models AI-Horde does not know, for groups and for image models."""
    path = f"{STATS}/text_generation/deletion-risk"
    plain = await get_json(stats, path)
    assert all(m["backend_variations"] is None for m in plain["models"])
    body = await get_json(stats, path, include_backend_variations="true")
    models = {m["name"]: m for m in body["models"]}
    first = models[names[1][0]]["backend_variations"]
    assert [v["backend"] for v in first] == ["canonical", "aphrodite", "koboldcpp"]
    koboldcpp = first[2]
    assert koboldcpp["variant_name"] == "koboldcpp/" + names[1][0].split("/", 1)[1]
    assert (koboldcpp["worker_count"], koboldcpp["performance"]) == (2, 10.0)
    assert set(koboldcpp) == {
        "backend",
        "variant_name",
        "worker_count",
        "performance",
        "usage_day",
        "usage_month",
        "usage_total",
    }
    assert sum(v["usage_month"] for v in first) == models[names[1][0]]["usage_month"]
    unknown = [m for m in body["models"] if m["worker_count"] == 0 and m["usage_total"] == 0]
    assert unknown and all(m["backend_variations"] is None for m in unknown)
    for category, extra in (
        ("text_generation", {"group_text_models": "true"}),
        ("image_generation", {}),
    ):
        other = await get_json(
            stats, f"{STATS}/{category}/deletion-risk", include_backend_variations="true", **extra
        )
        assert all(m["backend_variations"] is None for m in other["models"])


# --- heartbeat: a hanging AI-Horde -----------------------------------------------------------------

#: a 1 s request timeout; retries wait 0.5-1 s, so a hang exhausts three attempts after >= 4 s
HANG = {"HMR_POLL_INTERVAL": "0.1", "HMR_HORDE_TIMEOUT": "1", "HMR_HORDE_RETRY_BACKOFF": "0.5"}


async def _hang(client: TestClient, horde: FakeHorde) -> tuple[float, Any]:
    """Let AI-Horde accept requests and never answer; (seconds until the heartbeat says
    degraded, that heartbeat)."""
    await wait_for_json(client, "/api/heartbeat", lambda b: b["ai_horde"]["last_successful_poll"])
    assert (await get_json(client, "/api/heartbeat"))["status"] == "ok"
    horde.delay = 600.0  # released at teardown
    started = time.monotonic()
    beat = await wait_for_json(client, "/api/heartbeat", lambda b: b["status"] == "degraded")
    return time.monotonic() - started, beat


async def test_heartbeat_reports_a_hang_within_one_request_timeout(
    make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde
) -> None:
    """A hanging AI-Horde reads as degraded once a poll has waited past the request timeout,
    long before the poll's retries run out; the metric agrees."""
    client = await make_stats(real_data_dir, horde.url, **HANG)
    elapsed, beat = await _hang(client, horde)
    assert elapsed < 3.0  # timeout (1 s) + poll interval; the retries alone would take >= 4 s
    assert beat["ai_horde"]["degraded"] is True
    assert beat["ai_horde"]["poll_in_progress_seconds"] >= 1.0
    metrics = await (await client.get("/metrics")).text()
    assert "hmr_horde_degraded 1.0" in metrics


async def test_heartbeat_recovers_when_a_hang_ends(
    make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde
) -> None:
    """When AI-Horde answers again before the retries run out, the heartbeat is ok again."""
    client = await make_stats(real_data_dir, horde.url, **HANG)
    await _hang(client, horde)
    horde.delay = 0.0
    beat = await wait_for_json(client, "/api/heartbeat", lambda b: b["status"] == "ok")
    assert beat["ai_horde"]["degraded"] is False and beat["ai_horde"]["consecutive_failures"] == 0


async def test_heartbeat_keeps_a_slow_but_timely_upstream_ok(
    make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde
) -> None:
    """Answers slower than usual but within the timeout never read as degraded."""
    horde.delay = 0.3
    client = await make_stats(real_data_dir, horde.url, **{**HANG, "HMR_HORDE_TIMEOUT": "2"})
    seen, running = set(), []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        beat = await get_json(client, "/api/heartbeat")
        seen.add((beat["status"], beat["ai_horde"]["degraded"]))
        running.append(beat["ai_horde"]["poll_in_progress_seconds"])
        await asyncio.sleep(0.05)
    assert seen == {("ok", False)}
    assert any(r is not None and r > 0 for r in running)  # polls were under way meanwhile


async def test_heartbeat_without_polling_is_ok(
    make_stats: StatsFactory, real_data_dir: Path
) -> None:
    """With polling switched off the heartbeat says ok and polling false: nothing is failing."""
    client = await make_stats(real_data_dir, "off")
    beat = await get_json(client, "/api/heartbeat")
    assert beat["status"] == "ok"
    assert beat["ai_horde"]["polling"] is False and beat["ai_horde"]["degraded"] is False


async def test_polls_never_overlap_while_one_hangs(
    make_stats: StatsFactory, real_data_dir: Path, horde: FakeHorde
) -> None:
    """A hanging start-up poll is not joined by the loop's next poll: one request per resource."""
    horde.delay = 600.0
    slow = {**HANG, "HMR_HORDE_TIMEOUT": "3", "HMR_STARTUP_POLL_WAIT": "0.1"}
    client = await make_stats(real_data_dir, horde.url, **slow)
    await asyncio.sleep(0.8)  # eight poll intervals, well within the first attempts' timeout
    assert len(horde.paths) == 7
    beat = await get_json(client, "/api/heartbeat")
    assert beat["ai_horde"]["poll_in_progress_seconds"] >= 0.8
