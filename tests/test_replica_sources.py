"""Sources and queries: providers beside the canonical data, `source=` on reads, `mgr.query()`.

Offline on a disk copy of the real data; providers here serve records built in the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from horde_model_records import Category, ModelRecord, structure_record
from horde_model_replica import (
    ControlNetQuery,
    ImageGenerationQuery,
    ModelQuery,
    ModelReferenceManager,
    NoDataError,
    ReplicaConfig,
    ReplicaManager,
    TextModelQuery,
    normalize_source_selector,
)
from tests.replica_helpers import StaticProvider, offline_copy

IMAGE = Category.image_generation
TEXT = Category.text_generation
IMAGE_MODELS = 161


@pytest.fixture
def offline_config(tmp_path: Path, real_data_dir: Path) -> ReplicaConfig:
    return offline_copy(real_data_dir, tmp_path)


@pytest.fixture
def mgr(offline_config: ReplicaConfig) -> Iterator[ReplicaManager]:
    with ReplicaManager(offline_config) as manager:
        yield manager


def image(name: str, **fields: object) -> ModelRecord:
    return structure_record(IMAGE, {"name": name, "baseline": "flux_1", "nsfw": False, **fields})


@pytest.fixture
def extra(mgr: ReplicaManager) -> StaticProvider:
    """A registered provider `extra` with a new image model and its own `stable_diffusion`."""
    provider = StaticProvider(
        "extra",
        {
            IMAGE: {
                "Extra Model": image("Extra Model"),
                "stable_diffusion": image("stable_diffusion", description="from extra"),
            }
        },
    )
    mgr.register_provider(provider)
    return provider


# --- the registry --------------------------------------------------------------------------------


def test_registry_refuses_taken_reserved_and_empty_ids(mgr: ReplicaManager) -> None:
    """A taken id needs replace=True; `horde`, `any` and "" are never accepted."""
    first = StaticProvider("civitai", {})
    mgr.register_provider(first)
    with pytest.raises(ValueError, match="already registered"):
        mgr.register_provider(StaticProvider("civitai", {}))
    second = StaticProvider("civitai", {})
    mgr.register_provider(second, replace=True)
    assert mgr.get_provider("civitai") is second
    for reserved in ("horde", "any", ""):
        with pytest.raises(ValueError, match=r"reserved|empty"):
            mgr.register_provider(StaticProvider(reserved, {}))
    mgr.register_provider(StaticProvider("pending", {}))
    assert mgr.list_providers() == ["civitai", "pending"]
    assert mgr.provider_registry.source_ids() == ["civitai", "pending"]
    assert mgr.unregister_provider("civitai") and not mgr.unregister_provider("civitai")
    assert mgr.get_provider("civitai") is None


def test_selector_is_normalized_in_order() -> None:
    """A string is one id; a sequence keeps its order without repeats; empty means canonical."""
    assert normalize_source_selector("pending") == ["pending"]
    assert normalize_source_selector(["pending", "horde", "pending"]) == ["pending", "horde"]
    assert normalize_source_selector([]) == ["horde"]


# --- source= on reads ----------------------------------------------------------------------------


@pytest.mark.usefixtures("extra")
def test_the_first_source_in_the_selector_wins_a_name(mgr: ReplicaManager) -> None:
    """`["extra", "horde"]` takes extra's record of a shared name; `["horde", "extra"]` ours."""
    theirs = mgr.get_model_reference(IMAGE, source=["extra", "horde"])
    ours = mgr.get_model_reference(IMAGE, source=["horde", "extra"])
    assert theirs["stable_diffusion"].description == "from extra"
    assert ours["stable_diffusion"] == mgr.get_model(IMAGE, "stable_diffusion")
    assert "Extra Model" in theirs and "Extra Model" in ours
    assert len(theirs) == len(ours) == IMAGE_MODELS + 1
    assert mgr.get_model(IMAGE, "stable_diffusion", source="any") == ours["stable_diffusion"]


@pytest.mark.usefixtures("extra")
def test_the_default_source_is_the_canonical_reference(mgr: ReplicaManager) -> None:
    """Without `source`, a provider's records never show."""
    assert "Extra Model" not in mgr.get_model_reference(IMAGE)
    assert mgr.get_model_or_none(IMAGE, "Extra Model") is None
    assert mgr.get_model_or_none(IMAGE, "Extra Model", source="extra") is not None


def test_an_unregistered_source_is_a_value_error(mgr: ReplicaManager) -> None:
    """Naming a provider nobody registered raises ValueError (a typo must not read nothing)."""
    with pytest.raises(ValueError, match="no provider registered as 'pending'"):
        mgr.get_model_reference_or_none(IMAGE, source=["pending", "horde"])


async def test_async_reads_take_a_source_too(mgr: ReplicaManager, extra: StaticProvider) -> None:
    """The `_async` twins merge sources like the sync methods, calling the async provider path."""
    merged = await mgr.get_model_reference_async(IMAGE, source=["extra", "horde"])
    assert merged == mgr.get_model_reference(IMAGE, source=["extra", "horde"])
    found = await mgr.get_model_async(IMAGE, "Extra Model", source="extra")
    assert found.name == "Extra Model"
    assert await mgr.get_model_or_none_async(IMAGE, "nope", source="any") is None
    assert extra.calls[0] == (IMAGE, False)


def test_none_only_when_no_selected_source_has_records(mgr: ReplicaManager) -> None:
    """lora has no canonical data; a provider serving it makes the read succeed."""
    lora = structure_record(Category.lora, {"name": "Some LoRA"})
    mgr.register_provider(StaticProvider("civitai", {Category.lora: {"Some LoRA": lora}}))
    assert mgr.get_model_reference_or_none(Category.lora) is None
    assert mgr.get_model_reference(Category.lora, source="any") == {"Some LoRA": lora}
    with pytest.raises(NoDataError):
        mgr.get_model_reference(Category.ti, source="any")


def test_a_failing_provider_costs_its_records_not_the_read(mgr: ReplicaManager) -> None:
    """A provider that raises is marked `error`; the other sources are still served."""

    def fail() -> None:
        raise ConnectionError("provider down")

    mgr.register_provider(StaticProvider("broken", {IMAGE: {}}, fail=fail))
    records = mgr.get_model_reference(IMAGE, source=["broken", "horde"])
    assert len(records) == IMAGE_MODELS
    query = mgr.query(IMAGE, source=["broken", "horde"])
    assert query.source_status() == {"broken": "error", "horde": "ok"}
    assert query.failed_sources() == ["broken"]


def test_a_provider_without_the_category_is_empty_and_not_asked(mgr: ReplicaManager) -> None:
    """A provider that does not serve a category is `empty` for it and never called."""
    elsewhere = StaticProvider("text-only", {TEXT: {}})
    mgr.register_provider(elsewhere)
    query = mgr.query(IMAGE, source="any")
    assert query.source_status() == {"horde": "ok", "text-only": "empty"}
    assert elsewhere.calls == []


def test_force_refresh_reaches_the_providers(mgr: ReplicaManager, extra: StaticProvider) -> None:
    """`overwrite_existing=True` asks providers to bypass their own cache."""
    mgr.get_model_reference(IMAGE, True, source=["extra", "horde"])
    assert extra.calls == [(IMAGE, True)]


def test_a_reset_manager_forgets_its_providers(offline_config: ReplicaConfig) -> None:
    """`reset()` drops the process-wide manager with its providers; the next one has none."""
    ModelReferenceManager.reset()
    try:
        first = ModelReferenceManager(offline_config)
        first.register_provider(StaticProvider("extra", {}))
        ModelReferenceManager.reset()
        assert ModelReferenceManager(offline_config).list_providers() == []
    finally:
        ModelReferenceManager.reset()


# --- query() ---------------------------------------------------------------------------------------


def test_query_types_follow_the_category(mgr: ReplicaManager) -> None:
    """image, text and controlnet have their own query types; other categories the generic one."""
    assert type(mgr.query(IMAGE)) is ImageGenerationQuery
    assert type(mgr.query("text_generation")) is TextModelQuery
    assert type(mgr.query(Category.controlnet)) is ControlNetQuery
    assert type(mgr.query(Category.esrgan)) is ModelQuery


def test_where_tests_equality_membership_and_operators(mgr: ReplicaManager) -> None:
    """Keyword tests: equality, a list means `in`, and the comparison suffixes."""
    records = mgr.get_model_reference(IMAGE).values()
    sdxl = mgr.query(IMAGE).where(baseline="stable_diffusion_xl", nsfw=False).to_list()
    assert sdxl and sdxl == [
        r for r in records if r.baseline == "stable_diffusion_xl" and not r.nsfw
    ]
    both = mgr.query(IMAGE).where(baseline=["stable_diffusion_xl", "flux_1"]).count()
    assert both == sum(r.baseline in ("stable_diffusion_xl", "flux_1") for r in records)
    big = mgr.query(IMAGE).where(size_on_disk_bytes__gt=5_000_000_000).to_list()
    assert big and all((r.size_on_disk_bytes or 0) > 5_000_000_000 for r in big)
    not_sd1 = mgr.query(IMAGE).where(baseline__ne="stable_diffusion_1").count()
    assert not_sd1 == sum(r.baseline != "stable_diffusion_1" for r in records)
    tagged = mgr.query(IMAGE).where(tags__contains="anime").to_list()
    assert tagged and all("anime" in r.tags for r in tagged)
    named = mgr.query(IMAGE).where(name="stable_diffusion").first()
    assert named is not None and named.name == "stable_diffusion"
    assert mgr.query(IMAGE).where(name="no such model").first() is None


def test_where_refuses_unknown_fields(mgr: ReplicaManager) -> None:
    """A field the category's records do not have is a ValueError, raised at once."""
    with pytest.raises(ValueError, match="no field 'parameters_count'"):
        mgr.query(IMAGE).where(parameters_count=7)
    with pytest.raises(ValueError, match="no field 'tags'"):
        mgr.query(Category.controlnet).tags_any(["x"])
    with pytest.raises(ValueError, match="__in needs a list"):
        mgr.query(IMAGE).where(baseline__in="flux_1")


def test_nested_fields_and_predicates(mgr: ReplicaManager) -> None:
    """`a__b` reaches a nested field; plain callables filter too."""
    query = mgr.query(IMAGE).where(model_classification__domain="image")
    assert query.count() == IMAGE_MODELS
    inpainting = mgr.query(IMAGE).where(lambda r: r.inpainting).to_list()
    assert inpainting == mgr.query(IMAGE).only_inpainting().to_list()
    assert mgr.query(IMAGE).where_classification(purpose="generation").count() == IMAGE_MODELS


def test_order_limit_and_offset(mgr: ReplicaManager) -> None:
    """Sorting puts records without the value last; offset and limit slice the result."""
    ordered = mgr.query(IMAGE).order_by("size_on_disk_bytes", descending=True).to_list()
    sizes = [r.size_on_disk_bytes for r in ordered]
    present = [s for s in sizes if s is not None]
    assert present == sorted(present, reverse=True) and sizes[: len(present)] == present
    page = mgr.query(IMAGE).order_by("name").offset(10).limit(5).to_list()
    assert [r.name for r in page] == sorted(r.name for r in ordered)[10:15]


def test_tags_filters(mgr: ReplicaManager) -> None:
    """tags_any, tags_all and tags_none split the records as set operations would."""
    records = list(mgr.get_model_reference(IMAGE).values())
    wanted = {"anime", "furry"}
    assert mgr.query(IMAGE).tags_any(wanted).to_list() == [
        r for r in records if wanted & set(r.tags)
    ]
    assert mgr.query(IMAGE).tags_all(wanted).to_list() == [
        r for r in records if wanted <= set(r.tags)
    ]
    assert mgr.query(IMAGE).tags_none(wanted).count() == sum(
        not wanted & set(r.tags) for r in records
    )


def test_distinct_and_group_by(mgr: ReplicaManager) -> None:
    """distinct lists each value once; group_by buckets the records by value."""
    baselines = mgr.query(IMAGE).distinct("baseline")
    assert len(baselines) == len(set(baselines)) and "stable_diffusion_xl" in baselines
    groups = mgr.query(IMAGE).group_by("baseline")
    assert sorted(groups) == sorted(baselines)
    assert sum(len(g) for g in groups.values()) == IMAGE_MODELS


def test_queries_are_immutable(mgr: ReplicaManager) -> None:
    """Each method returns a new query; the one it came from is unchanged."""
    everything = mgr.query(IMAGE)
    sfw = everything.exclude_nsfw()
    assert everything.count() == IMAGE_MODELS and sfw.count() < IMAGE_MODELS
    assert sfw.only_nsfw().count() == 0 and everything.only_nsfw().count() > 0


def test_text_and_controlnet_shortcuts(mgr: ReplicaManager) -> None:
    """Backend prefixes, quantized names and base models; a ControlNet's style."""
    text = mgr.query(TEXT)
    assert text.exclude_backend_variations().count() == text.count()
    assert text.for_backend("koboldcpp").count() == 0
    with pytest.raises(ValueError, match="unknown backend"):
        text.for_backend("vllm")
    quantized = text.only_quantized().count()
    assert 0 < quantized < text.count()
    assert quantized + text.exclude_quantized().count() == text.count()
    groups = text.group_by_base_model()
    assert sum(len(g) for g in groups.values()) == text.count() and "Marx" in groups
    styles = mgr.query(Category.controlnet).group_by_style()
    for style, records in styles.items():
        assert mgr.query(Category.controlnet).for_style(style).to_list() == records


@pytest.mark.usefixtures("extra")
def test_provenance_and_name_clashes(mgr: ReplicaManager) -> None:
    """Each record carries its source; a clash is listed with the winner first."""
    query = mgr.query(IMAGE, source=["extra", "horde"])
    by_name = {r.name: s for r, s in query.to_list_with_source()}
    assert by_name["stable_diffusion"] == "extra" and by_name["Extra Model"] == "extra"
    assert by_name["Deliberate"] == "horde"
    assert query.duplicate_names() == {"stable_diffusion": ["extra", "horde"]}
    assert query.has_duplicate_names() and query.count() == IMAGE_MODELS + 1
    assert [r.name for r in query.where_source("extra").to_list()] == [
        "Extra Model",
        "stable_diffusion",
    ]
    groups = query.group_by_source()
    assert len(groups["extra"]) == 2 and len(groups["horde"]) == IMAGE_MODELS - 1
    assert query.sources() == [s for _, s in query.to_list_with_source()]


def test_query_all_spans_every_category(mgr: ReplicaManager) -> None:
    """query_all covers every canonical record; only the fields all records share apply."""
    everything = mgr.get_all_model_references()
    assert mgr.query_all().count() == sum(len(m) for m in everything.values())
    with pytest.raises(ValueError, match="no field 'baseline'"):
        mgr.query_all().where(baseline="flux_1")


async def test_query_async_matches_query(mgr: ReplicaManager, extra: StaticProvider) -> None:
    """`query_async` gathers the same records without blocking the caller's loop."""
    query = await mgr.query_async(IMAGE, source=["extra", "horde"])
    assert query.to_list_with_source() == (
        mgr.query(IMAGE, source=["extra", "horde"]).to_list_with_source()
    )
    assert query.source_status() == {"extra": "ok", "horde": "ok"}
