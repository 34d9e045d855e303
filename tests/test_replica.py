"""The replica library against the real read service and a fake GitHub, both on loopback.

Every step of the fetch chain, conditional requests (304), refusal of corrupt bodies, the last good
copy on disk, single flight, TTL and upgrades to a newly published snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import Category, structure_record, unstructure_record
from horde_model_replica import (
    REPLICATED_CATEGORIES,
    ModelNotFoundError,
    NoDataError,
    Outcome,
    ReplicaConfig,
    ReplicaManager,
    Source,
)
from horde_model_replica._retry import RetryPolicy, retrying
from services.read_api.app import create_app
from shared.dataset import Dataset, delete_record, publish_dataset, upsert_record
from shared.snapshot import SnapshotStore
from tests.conftest import read_config, serve
from tests.fakes.github import FakeGitHub, Faults, start_fake_github
from tests.fakes.horde import refused_url
from tests.helpers import wait_for_status

IMAGE = Category.image_generation
TEXT = Category.text_generation
IMAGE_MODELS = 161  # stable_diffusion.json in the reference data
TEXT_MODELS = 719  # distinct names in models.csv


@attrs.define
class Primary:
    """The real read service on loopback, behind fault switches."""

    url: str  # the PRIMARY API base URL, ending with /api
    faults: Faults
    client: TestClient


async def start_primary(aiohttp_client: Any, data_dir: Path) -> Primary:
    faults = Faults()
    app = create_app(read_config(data_dir))
    app.middlewares.insert(0, faults.middleware())
    server = await serve(app)
    client = await aiohttp_client(server)
    return Primary(url=str(server.make_url("/api")), faults=faults, client=client)


@pytest.fixture
async def primary(aiohttp_client: Any, real_data_dir: Path) -> Primary:
    """The real read service on the real data."""
    return await start_primary(aiohttp_client, real_data_dir)


@pytest.fixture
async def github(aiohttp_server: Any, legacy_dir: Path) -> FakeGitHub:
    return await start_fake_github(aiohttp_server, legacy_dir)


def replica_config(
    cache_home: Path,
    primary: Primary | str | None = None,
    github: FakeGitHub | None = None,
    **env: str,
) -> ReplicaConfig:
    """A config built the way workers build it: from environment variables."""
    primary_url = primary.url if isinstance(primary, Primary) else (primary or "")
    return ReplicaConfig.from_environ(
        {
            "AIWORKER_CACHE_HOME": str(cache_home),
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": primary_url,
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "true" if github else "false",
            "HORDE_MODEL_REFERENCE_GITHUB_RAW_BASE": github.url if github else "http://127.0.0.1:9",
            "HORDE_MODEL_REFERENCE_PRIMARY_API_RETRY_BACKOFF_SECONDS": "0.01",
            "HORDE_MODEL_REFERENCE_LEGACY_DOWNLOAD_RETRY_BACKOFF_SECONDS": "0.01",
            **env,
        }
    )


ManagerFactory = Callable[..., ReplicaManager]


@pytest.fixture
async def make_manager() -> AsyncIterator[ManagerFactory]:
    """Build managers that are closed at teardown."""
    made: list[ReplicaManager] = []

    def factory(config: ReplicaConfig, **kwargs: Any) -> ReplicaManager:
        manager = ReplicaManager(config, **kwargs)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await manager.aclose()


def without_metadata(records: dict[str, Any]) -> dict[str, Any]:
    """Records as JSON minus `metadata` (the v1 view carries no timestamps)."""
    return {
        name: {k: v for k, v in unstructure_record(r).items() if k != "metadata"}
        for name, r in records.items()
    }


def cache_dir(home: Path) -> Path:
    return home / "horde_model_reference"


# --- the chain -----------------------------------------------------------------------------------


async def test_primary_v2_serves_every_category(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """With the PRIMARY up, every category comes from its v2 API and is persisted on disk."""
    mgr = make_manager(replica_config(tmp_path, primary))
    everything = await mgr.get_all_model_references_async()
    assert list(everything) == list(REPLICATED_CATEGORIES)
    assert len(everything[IMAGE]) == IMAGE_MODELS and len(everything[TEXT]) == TEXT_MODELS
    assert all(mgr.fetch_report(c).source is Source.primary_v2 for c in REPLICATED_CATEGORIES)
    saved = json.loads((cache_dir(tmp_path) / "stable_diffusion.json").read_bytes())
    assert len(saved) == IMAGE_MODELS


async def test_primary_v1_is_converted_when_v2_fails(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """When v2 answers 404, the PRIMARY's v1 view is converted into the same v2 records."""
    expected = await make_manager(
        replica_config(tmp_path / "a", primary)
    ).get_all_model_references_async()
    primary.faults.only, primary.faults.status = "/v2/", 404
    mgr = make_manager(replica_config(tmp_path / "b", primary))
    for category in (IMAGE, Category.controlnet, Category.clip):
        got = await mgr.get_model_reference_async(category)
        assert mgr.fetch_report(category).source is Source.primary_v1
        assert without_metadata(got) == without_metadata(expected[category])
    # text: db.json drops the backend-prefixed duplicates; the models are the same ones
    text = await mgr.get_model_reference_async(TEXT)
    assert mgr.fetch_report(TEXT).source is Source.primary_v1
    assert list(text) == list(expected[TEXT])
    assert [r.parameters_count for r in text.values()] == [
        r.parameters_count for r in expected[TEXT].values()
    ]


async def test_github_legacy_files_are_converted_when_primary_is_down(
    github: FakeGitHub, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """With the PRIMARY unreachable, GitHub's legacy files (text: models.csv) are converted."""
    mgr = make_manager(replica_config(tmp_path, refused_url(), github))
    assert len(await mgr.get_model_reference_async(IMAGE)) == IMAGE_MODELS
    assert len(await mgr.get_model_reference_async(TEXT)) == TEXT_MODELS
    assert mgr.fetch_report(TEXT).source is Source.github
    assert (cache_dir(tmp_path) / "legacy" / "models.csv").read_bytes() == github.content(
        "models.csv", ("Haidra-Org", "AI-Horde-text-model-reference", "main")
    )
    assert (
        len(json.loads((cache_dir(tmp_path) / "text_generation.json").read_bytes())) == TEXT_MODELS
    )
    assert set(github.faults.calls) == {
        "/Haidra-Org/AI-Horde-image-model-reference/refs/heads/main/stable_diffusion.json",
        "/Haidra-Org/AI-Horde-text-model-reference/refs/heads/main/models.csv",
    }


async def test_categories_without_github_source_have_no_data_when_primary_is_down(
    github: FakeGitHub, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """controlnet_annotator has no legacy file: with the PRIMARY down nothing is requested for it."""
    mgr = make_manager(replica_config(tmp_path, refused_url(), github))
    assert await mgr.get_model_reference_or_none_async(Category.controlnet_annotator) is None
    assert github.faults.total == 0


async def test_last_good_copy_is_served_when_every_source_fails(
    primary: Primary, github: FakeGitHub, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A forced refresh with the PRIMARY and GitHub both down keeps serving the data held."""
    mgr = make_manager(replica_config(tmp_path, primary, github))
    await mgr.get_model_reference_async(IMAGE)
    primary.faults.down = github.faults.down = True
    assert len(await mgr.get_model_reference_async(IMAGE, overwrite_existing=True)) == IMAGE_MODELS
    report = mgr.fetch_report(IMAGE)
    assert report.outcome is Outcome.last_good and len(report.errors) == 2


async def test_worker_starts_from_disk_with_the_network_down(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A new process with every source unreachable serves the copy an earlier process persisted."""
    first = make_manager(replica_config(tmp_path, primary))
    await first.get_all_model_references_async()
    await first.aclose()
    restarted = make_manager(replica_config(tmp_path, refused_url()))
    model = await restarted.get_model_async(IMAGE, "stable_diffusion")
    assert model.name == "stable_diffusion"
    assert restarted.fetch_report(IMAGE).outcome is Outcome.last_good


async def test_nothing_anywhere_means_no_data(make_manager: ManagerFactory, tmp_path: Path) -> None:
    """With no source and no disk copy, strict reads raise and the `_or_none` reads give None."""
    mgr = make_manager(replica_config(tmp_path, refused_url()))
    with pytest.raises(NoDataError):
        await mgr.get_model_reference_async(IMAGE)
    assert await mgr.get_model_reference_or_none_async(IMAGE) is None
    assert (await mgr.get_all_model_references_async())[IMAGE] == {}
    assert mgr.fetch_report(IMAGE).outcome is Outcome.no_data


# --- another spelling of a name ------------------------------------------------------------------

CONTROLNET = Category.controlnet
QR_KEY, QR_NAME = "control_qr_sdxl", "control_qr_xl"  # the legacy key and the record's name


async def test_a_legacy_key_reads_its_record_from_a_v2_primary(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A v2 document has no other spellings: the PRIMARY's single-model read resolves the key,
    once per name and category version, and an unknown name costs one request, not one per read."""
    mgr = make_manager(replica_config(tmp_path, primary))
    assert QR_KEY not in await mgr.get_model_reference_async(CONTROLNET)
    assert (await mgr.get_model_async(CONTROLNET, QR_KEY)).name == QR_NAME
    # the sync twin (the PRIMARY runs on this test's loop: only what is already known is sync)
    assert mgr.get_model(CONTROLNET, QR_KEY).name == QR_NAME
    found = await mgr.get_model_or_none_async(CONTROLNET, QR_KEY)
    assert found is not None and found.name == QR_NAME
    assert primary.faults.count(f"/model/{QR_KEY}") == 1
    for _ in range(3):
        assert await mgr.get_model_or_none_async(CONTROLNET, "no_such_model") is None
    with pytest.raises(ModelNotFoundError):
        await mgr.get_model_async(CONTROLNET, "no_such_model")
    assert primary.faults.count("/model/no_such_model") == 1
    assert primary.faults.count(f"/model/{QR_NAME}") == 0  # a name held needs no request


async def test_a_legacy_key_resolves_from_converted_data_and_after_a_restart_offline(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """Converted legacy data knows its keys: no request is made, and the copy on disk keeps
    them for a process that starts with every source down."""
    primary.faults.only, primary.faults.status = "/v2/", 404  # v1 is converted
    mgr = make_manager(replica_config(tmp_path, primary))
    assert (await mgr.get_model_async(CONTROLNET, QR_KEY)).name == QR_NAME
    assert mgr.fetch_report(CONTROLNET).source is Source.primary_v1
    assert primary.faults.count("/model/") == 0
    await mgr.aclose()
    restarted = make_manager(replica_config(tmp_path, refused_url()))
    assert (await restarted.get_model_async(CONTROLNET, QR_KEY)).name == QR_NAME
    assert restarted.get_model_or_none(CONTROLNET, "no_such_model") is None


# --- refusing bad bodies ----------------------------------------------------------------------


def disk_state(home: Path) -> tuple[bytes, bytes]:
    base = cache_dir(home)
    return (base / "stable_diffusion.json").read_bytes(), (
        base / ".replica" / "image_generation.json"
    ).read_bytes()


@pytest.mark.parametrize("fault", ["garbage", "truncated"])
async def test_corrupt_answers_never_replace_the_disk_copy(
    fault: str,
    primary: Primary,
    github: FakeGitHub,
    make_manager: ManagerFactory,
    tmp_path: Path,
) -> None:
    """An HTML error page or a truncated body from every source is refused; the old copy stays."""
    mgr = make_manager(replica_config(tmp_path, primary, github))
    await mgr.get_model_reference_async(IMAGE)
    before = disk_state(tmp_path)
    setattr(primary.faults, fault, True)
    setattr(github.faults, fault, True)
    assert len(await mgr.get_model_reference_async(IMAGE, overwrite_existing=True)) == IMAGE_MODELS
    report = mgr.fetch_report(IMAGE)
    assert report.outcome is Outcome.last_good
    assert all("JSON" in error for error in report.errors)
    assert disk_state(tmp_path) == before


async def test_truncated_models_csv_is_refused(
    github: FakeGitHub, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A models.csv cut short (it still parses as CSV) is refused after its retries."""
    github.faults.truncated = True
    mgr = make_manager(replica_config(tmp_path, refused_url(), github))
    assert await mgr.get_model_reference_or_none_async(TEXT) is None
    assert "line break" in mgr.fetch_report(TEXT).errors[-1]
    assert github.faults.count("models.csv") == 3  # GitHub retries an invalid body
    assert not (cache_dir(tmp_path) / "text_generation.json").exists()


async def test_corrupt_primary_answer_falls_through_to_github(
    primary: Primary, github: FakeGitHub, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A 200 error page from the PRIMARY is not data: GitHub's file is used instead."""
    primary.faults.garbage = True
    mgr = make_manager(replica_config(tmp_path, primary, github))
    assert len(await mgr.get_model_reference_async(IMAGE)) == IMAGE_MODELS
    assert mgr.fetch_report(IMAGE).source is Source.github


async def test_one_bad_record_is_skipped_not_the_category(
    github: FakeGitHub, make_manager: ManagerFactory, tmp_path: Path, legacy_dir: Path
) -> None:
    """A record that fails validation is left out with a warning; the others are served."""
    legacy = json.loads((legacy_dir / "image" / "stable_diffusion.json").read_bytes())
    legacy["stable_diffusion"]["nsfw"] = "sometimes"
    github.files["stable_diffusion.json"] = json.dumps(legacy).encode()
    mgr = make_manager(replica_config(tmp_path, refused_url(), github))
    models = await mgr.get_model_reference_async(IMAGE)
    assert len(models) == IMAGE_MODELS - 1 and "stable_diffusion" not in models


# --- conditional requests ----------------------------------------------------------------------


async def test_unchanged_categories_cost_a_304_and_no_body(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A forced refresh of unchanged data sends the stored ETags and receives no body at all."""
    mgr = make_manager(replica_config(tmp_path, primary))
    await mgr.get_all_model_references_async()
    cold = sum(mgr.fetch_report(c).wire_bytes for c in REPLICATED_CATEGORIES)
    reports = await mgr.arefresh()
    assert cold > 0
    assert {r.outcome for r in reports.values()} == {Outcome.not_modified}
    assert sum(r.wire_bytes for r in reports.values()) == 0
    last = primary.faults.received[-len(REPLICATED_CATEGORIES) :]
    assert all("If-None-Match" in headers for _, headers in last)


async def test_stored_etag_survives_a_restart(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A new process revalidates its disk copy with the persisted ETag: a 304, not a download."""
    first = make_manager(replica_config(tmp_path, primary))
    await first.get_model_reference_async(IMAGE)
    await first.aclose()
    second = make_manager(replica_config(tmp_path, primary))
    assert len(await second.get_model_reference_async(IMAGE)) == IMAGE_MODELS
    report = second.fetch_report(IMAGE)
    assert report.outcome is Outcome.not_modified and report.wire_bytes == 0


async def test_gzip_is_requested_and_decoded(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """Bodies travel gzip-compressed and are stored decompressed."""
    mgr = make_manager(replica_config(tmp_path, primary))
    await mgr.get_model_reference_async(TEXT)
    stored = (cache_dir(tmp_path) / "text_generation.json").stat().st_size
    assert 0 < mgr.fetch_report(TEXT).wire_bytes < stored / 3
    assert primary.faults.received[-1][1]["Accept-Encoding"] == "gzip"


async def test_github_copy_is_revalidated_with_its_etag(
    github: FakeGitHub, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """Data converted from GitHub is revalidated against GitHub's ETag: 304, nothing converted."""
    mgr = make_manager(replica_config(tmp_path, refused_url(), github))
    await mgr.get_model_reference_async(TEXT)
    await mgr.arefresh([TEXT])
    report = mgr.fetch_report(TEXT)
    assert (report.outcome, report.source, report.wire_bytes) == (
        Outcome.not_modified,
        Source.github,
        0,
    )


# --- retries -------------------------------------------------------------------------------------


async def test_primary_5xx_is_retried(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """Two 503s in a row are retried and the third attempt's data is used."""
    primary.faults.fail_next = 2
    mgr = make_manager(replica_config(tmp_path, primary))
    assert len(await mgr.get_model_reference_async(IMAGE)) == IMAGE_MODELS
    assert primary.faults.count("/v2/image_generation") == 3
    assert mgr.fetch_report(IMAGE).source is Source.primary_v2


async def test_primary_404_is_not_retried(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A 404 moves on to the next step at once."""
    primary.faults.only, primary.faults.status = "/v2/", 404
    mgr = make_manager(replica_config(tmp_path, primary))
    await mgr.get_model_reference_async(IMAGE)
    assert primary.faults.count("/v2/image_generation") == 1


async def test_retries_stop_after_the_configured_attempts(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """A PRIMARY that keeps failing is asked exactly PRIMARY_API_RETRY_MAX_ATTEMPTS times per step."""
    primary.faults.status = 500
    config = replica_config(
        tmp_path, primary, HORDE_MODEL_REFERENCE_PRIMARY_API_RETRY_MAX_ATTEMPTS="2"
    )
    mgr = make_manager(config)
    assert await mgr.get_model_reference_or_none_async(IMAGE) is None
    assert primary.faults.count("/v2/image_generation") == 2
    assert primary.faults.count("/v1/image_generation") == 2


async def test_retry_log_names_an_exception_without_a_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A retried exception whose message is empty is logged by its type name."""
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TimeoutError
        return "ok"

    policy = RetryPolicy(attempts=2, backoff_min=0.0, backoff_max=0.0, retry_on=(TimeoutError,))
    with caplog.at_level(logging.INFO, logger="horde_model_replica"):
        assert await retrying(call, policy, "primary") == "ok"
    assert any(m.startswith("primary: TimeoutError; retry 1/1") for m in caplog.messages)


# --- freshness, single flight, upgrades --------------------------------------------------------


async def test_fresh_reads_do_not_touch_the_network(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """Within the TTL, reads are answered from memory."""
    mgr = make_manager(replica_config(tmp_path, primary))
    for _ in range(50):
        await mgr.get_model_async(IMAGE, "stable_diffusion")
    await asyncio.to_thread(lambda: [mgr.get_model(IMAGE, "stable_diffusion") for _ in range(50)])
    assert primary.faults.total == 1


async def test_stale_category_is_revalidated_after_the_ttl(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """Once the TTL has passed, the next read revalidates (a 304 here)."""
    mgr = make_manager(
        replica_config(tmp_path, primary, HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS="0.2")
    )
    await mgr.get_model_reference_async(IMAGE)
    await asyncio.sleep(0.25)
    await mgr.get_model_reference_async(IMAGE)
    assert primary.faults.count("/v2/image_generation") == 2
    assert mgr.fetch_report(IMAGE).outcome is Outcome.not_modified


async def test_concurrent_callers_share_one_fetch(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """Many async callers and sync callers in threads at once cause a single request."""
    primary.faults.delay = 0.2
    mgr = make_manager(replica_config(tmp_path, primary))
    async_calls = [mgr.get_model_reference_async(IMAGE) for _ in range(40)]
    sync_calls = [asyncio.to_thread(mgr.get_model_reference, IMAGE) for _ in range(8)]
    results = await asyncio.gather(*async_calls, *sync_calls)
    assert all(len(r) == IMAGE_MODELS for r in results)
    assert primary.faults.count("/v2/image_generation") == 1


async def test_async_prefetch_and_its_handle_share_one_warm_up(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """ASYNC starts the warm-up at once; awaiting the handle joins it: one GET per category."""
    primary.faults.delay = 0.1
    mgr = make_manager(replica_config(tmp_path, primary), prefetch_strategy="async")
    handle = mgr.deferred_prefetch_handle
    assert handle is not None and not mgr.prefetch_pending
    await handle
    await handle  # again: everything is fresh, nothing is fetched
    assert mgr.is_warm
    v2 = [path for path in primary.faults.calls if "/v2/" in path]
    assert len(v2) == len(REPLICATED_CATEGORIES)
    assert all(primary.faults.calls[path] == 1 for path in v2)
    assert primary.faults.total == len(REPLICATED_CATEGORIES)


async def test_invalidated_category_is_revalidated_on_the_next_read(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """`invalidate_category_cache` makes the next read ask again (a 304), other categories not."""
    mgr = make_manager(replica_config(tmp_path, primary))
    await mgr.get_model_reference_async(IMAGE)
    await mgr.get_model_reference_async(TEXT)
    mgr.invalidate_category_cache("image_generation")
    await mgr.get_model_reference_async(IMAGE)
    await mgr.get_model_reference_async(TEXT)
    assert primary.faults.count("/v2/image_generation") == 2
    assert primary.faults.count("/v2/text_generation") == 1
    assert mgr.fetch_report(IMAGE).outcome is Outcome.not_modified


def with_new_model(dataset: Dataset, name: str) -> Dataset:
    record = structure_record(
        IMAGE, {"name": name, "baseline": "flux_1", "nsfw": False, "config": {"download": []}}
    )
    return upsert_record(dataset, IMAGE, record, int(time.time()))


async def wait_until_served(primary: Primary, name: str) -> None:
    """Until the PRIMARY's read service serves the image model `name` (at most 2 s)."""
    path = f"/api/model_references/v2/image_generation/model/{name}"
    await wait_for_status(primary.client, path, within=2.0)


async def test_refresh_picks_up_a_new_snapshot(
    aiohttp_client: Any, make_manager: ManagerFactory, tmp_path: Path, dataset: Dataset
) -> None:
    """After the PRIMARY publishes, `refresh()` downloads only the changed category."""
    store = SnapshotStore(tmp_path / "data" / "snapshots")
    publish_dataset(store, dataset)
    primary = await start_primary(aiohttp_client, tmp_path / "data")
    mgr = make_manager(replica_config(tmp_path / "home", primary))
    assert await mgr.get_model_or_none_async(IMAGE, "Fresh") is None
    await mgr.get_all_model_references_async()
    publish_dataset(store, with_new_model(dataset, "Fresh"))
    await wait_until_served(primary, "Fresh")
    reports = await mgr.arefresh()
    assert (await mgr.get_model_async(IMAGE, "Fresh")).name == "Fresh"
    assert reports.pop(IMAGE).outcome is Outcome.updated
    assert {r.outcome for r in reports.values()} == {Outcome.not_modified}
    assert json.loads((cache_dir(tmp_path / "home") / "stable_diffusion.json").read_bytes())[
        "Fresh"
    ]


async def test_ttl_expiry_picks_up_a_new_snapshot(
    aiohttp_client: Any, make_manager: ManagerFactory, tmp_path: Path, dataset: Dataset
) -> None:
    """Without an explicit refresh, a read after the TTL sees the newly published model."""
    store = SnapshotStore(tmp_path / "data" / "snapshots")
    publish_dataset(store, dataset)
    primary = await start_primary(aiohttp_client, tmp_path / "data")
    mgr = make_manager(
        replica_config(tmp_path / "home", primary, HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS="0.2")
    )
    await mgr.get_model_reference_async(IMAGE)
    publish_dataset(
        store, delete_record(with_new_model(dataset, "Fresh"), IMAGE, "stable_diffusion", 1)
    )
    await wait_until_served(primary, "Fresh")
    await asyncio.sleep(0.2)
    models = await mgr.get_model_reference_async(IMAGE)
    assert "Fresh" in models and "stable_diffusion" not in models


# --- offline -------------------------------------------------------------------------------------


async def test_offline_mode_reads_only_the_disk_copy(
    primary: Primary, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """HORDE_MODEL_REFERENCE_OFFLINE=true serves what an online process wrote, with no request."""
    online = make_manager(replica_config(tmp_path, primary))
    expected = await online.get_all_model_references_async()
    calls = primary.faults.total
    offline = make_manager(replica_config(tmp_path, primary, HORDE_MODEL_REFERENCE_OFFLINE="true"))
    assert await offline.get_all_model_references_async() == expected
    assert primary.faults.total == calls
    assert offline.fetch_report(IMAGE).outcome is Outcome.from_disk


async def test_offline_mode_without_a_disk_copy_has_no_data(
    make_manager: ManagerFactory, tmp_path: Path
) -> None:
    """Offline with nothing on disk: None from `_or_none`, NoDataError from the strict read."""
    mgr = make_manager(replica_config(tmp_path, HORDE_MODEL_REFERENCE_OFFLINE="true"))
    assert await mgr.get_model_reference_or_none_async(IMAGE) is None
    with pytest.raises(RuntimeError):
        await mgr.get_model_async(IMAGE, "stable_diffusion")


async def test_offline_reader_follows_the_file_an_online_process_replaces(
    aiohttp_client: Any, make_manager: ManagerFactory, tmp_path: Path, dataset: Dataset
) -> None:
    """A worker subprocess in offline mode sees its parent's refresh at once (the file's mtime)."""
    store = SnapshotStore(tmp_path / "data" / "snapshots")
    publish_dataset(store, dataset)
    primary = await start_primary(aiohttp_client, tmp_path / "data")
    parent = make_manager(replica_config(tmp_path / "home", primary))
    await parent.get_model_reference_async(IMAGE)
    child = make_manager(replica_config(tmp_path / "home", HORDE_MODEL_REFERENCE_OFFLINE="true"))
    assert await child.get_model_or_none_async(IMAGE, "Fresh") is None
    publish_dataset(store, with_new_model(dataset, "Fresh"))
    await wait_until_served(primary, "Fresh")
    await parent.arefresh([IMAGE])
    assert (await child.get_model_async(IMAGE, "Fresh")).name == "Fresh"


async def test_a_record_with_an_unknown_baseline_is_kept(
    github: FakeGitHub, make_manager: ManagerFactory, tmp_path: Path, legacy_dir: Path
) -> None:
    """A baseline this library does not know (a newer architecture) keeps its model, as sent."""
    legacy = json.loads((legacy_dir / "image" / "stable_diffusion.json").read_bytes())
    legacy["stable_diffusion"]["baseline"] = "krea2_turbo"
    github.files["stable_diffusion.json"] = json.dumps(legacy).encode()
    mgr = make_manager(replica_config(tmp_path, refused_url(), github))
    models = await mgr.get_model_reference_async(IMAGE)
    assert len(models) == IMAGE_MODELS
    assert models["stable_diffusion"].baseline == "krea2_turbo"
