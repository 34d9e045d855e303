"""Search answers from indexes built once per snapshot: the same pages and totals as checking
every record against every filter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve

from horde_model_records import ALL_CATEGORIES, Category, has_backend_prefix, is_quantized
from horde_model_records.convert import structure_record
from services.read_api.search import search_all, search_category
from services.read_api.view import CategoryView, ReadModel, dumps
from services.read_api.wire import SearchAllQuery, SearchQuery
from shared.dataset import Dataset, delete_record, publish_dataset, upsert_record
from shared.errors import BadRequest
from shared.read_index import index_path
from shared.snapshot import Snapshot, SnapshotStore
from tests.helpers import with_model


@pytest.fixture(scope="module")
def model(real_data_dir: Path) -> ReadModel:
    snapshot = SnapshotStore(real_data_dir / "snapshots").read_current()
    assert snapshot is not None
    return ReadModel.build(snapshot)


def _keeps(q: Any, name: str, record: dict[str, Any], aliases: list[str]) -> bool:
    """Every filter, checked on one record the slow, obvious way."""
    tags = set(record.get("tags") or ())
    checks = [
        q.nsfw is None or record.get("nsfw", object()) == q.nsfw,
        not q.tags_any or bool(tags & set(q.tags_any)),
        not q.tags_all or (bool(tags) and tags >= set(q.tags_all)),
        not (tags & set(q.tags_none)),
        q.name_contains is None
        or any(q.name_contains.lower() in s.lower() for s in [name, *aliases]),
    ]
    if isinstance(q, SearchQuery):
        checks += [
            q.baseline is None or record.get("baseline", object()) == q.baseline,
            q.inpainting is None or record.get("inpainting", object()) == q.inpainting,
            q.backend is None or name.startswith(q.backend + "/"),
            not q.exclude_backend_variations or not has_backend_prefix(name),
            q.quantized is None or is_quantized(name) == q.quantized,
        ]
    return all(checks)


def _expected(model: ReadModel, category: Category, q: Any) -> list[str]:
    view = model.categories[category]
    aliases: dict[str, list[str]] = {}
    names = {c.data: c.name for c in view.candidates}
    for key, body in view.models.items():  # other spellings answer their record's body
        if names[body.data] != key:
            aliases.setdefault(names[body.data], []).append(key)
    return [c.name for c in view.candidates if _keeps(q, c.name, c.record, aliases.get(c.name, []))]


IMAGE_QUERIES = [
    {},
    {"nsfw": True},
    {"baseline": "stable_diffusion_xl"},
    {"baseline": "stable_diffusion_xl", "nsfw": False, "inpainting": False},
    {"tags_any": ("anime", "retro")},
    {"tags_all": ("anime", "character")},
    {"tags_none": ("anime",)},
    {"tags_none": ("anime",), "nsfw": False},
    {"name_contains": "DIFF"},
    {"name_contains": "mix", "tags_any": ("anime",)},
    {"name_contains": ""},
    {"name_contains": "no such model at all"},
]
TEXT_QUERIES = [
    {"name_contains": "llama"},
    {"backend": "koboldcpp"},
    {"exclude_backend_variations": True},
    {"quantized": True},
    {"quantized": False, "name_contains": "7b"},
    {"nsfw": True, "quantized": False},
]


@pytest.mark.parametrize(
    ("category", "params"),
    [(Category.image_generation, p) for p in IMAGE_QUERIES]
    + [(Category.text_generation, p) for p in TEXT_QUERIES]
    + [(Category.controlnet, {"name_contains": "control"})],
)
@pytest.mark.parametrize(("offset", "limit"), [(0, 50), (7, 5), (0, 500), (10_000, 5)])
def test_category_search_matches_checking_every_record(
    model: ReadModel, category: Category, params: dict[str, Any], offset: int, limit: int
) -> None:
    """Each filter (and combinations) gives the page and total a record-by-record check gives."""
    q = SearchQuery(**params, offset=offset, limit=limit)
    answer = json.loads(search_category(model, category, q))
    expected = _expected(model, category, q)
    assert answer["total"] == len(expected)
    assert [r["name"] for r in answer["results"]] == expected[offset : offset + limit]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"nsfw": False},
        {"name_contains": "mix"},
        {"name_contains": ""},
        {"tags_any": ("anime",)},
    ],
)
@pytest.mark.parametrize(("offset", "limit"), [(0, 50), (300, 40), (0, 500)])
def test_search_all_matches_checking_every_record(
    model: ReadModel, params: dict[str, Any], offset: int, limit: int
) -> None:
    """Across categories: a name counts once, where it comes first; totals and pages agree."""
    q = SearchAllQuery(**params, offset=offset, limit=limit)
    answer = json.loads(search_all(model, q))
    expected: list[str] = []
    for category in model.categories:
        if category not in (Category.lora, Category.ti):
            expected += _expected(model, category, q)
    expected = list(dict.fromkeys(expected))
    assert answer["total"] == len(expected)
    assert [r["name"] for r in answer["results"]] == expected[offset : offset + limit]


def _sorted_expected(
    records: dict[str, dict[str, Any]], q: SearchQuery | SearchAllQuery, names: list[str]
) -> list[str]:
    """`names` (in search order) sorted by the records' values the way spec 02 says: stable,
    nulls last ascending and first descending."""
    path = (q.sort_by or "").split("__")

    def value(name: str) -> Any:
        found: Any = records[name]
        for part in path:
            found = found.get(part) if isinstance(found, dict) else None
        return found

    nulls = [n for n in names if value(n) is None]
    present = sorted((n for n in names if value(n) is not None), key=value, reverse=q.sort_desc)
    return nulls + present if q.sort_desc else present + nulls


SORTED_QUERIES = [
    (Category.image_generation, {"sort_by": "name", "nsfw": False}),
    (Category.image_generation, {"sort_by": "name", "sort_desc": True, "tags_any": ("anime",)}),
    # booru is the one tag with a record outside anime: both exclusions must apply
    (Category.image_generation, {"sort_by": "baseline", "tags_none": ("anime", "booru")}),
    (Category.image_generation, {"sort_by": "name"}),
    (Category.image_generation, {"sort_by": "metadata__created_at", "name_contains": "mix"}),
    (Category.text_generation, {"sort_by": "name", "quantized": False, "sort_desc": True}),
]


@pytest.mark.parametrize(("category", "params"), SORTED_QUERIES)
@pytest.mark.parametrize(("offset", "limit"), [(0, 50), (7, 5), (10_000, 5)])
def test_sorted_search_matches_sorting_every_kept_record(
    model: ReadModel, category: Category, params: dict[str, Any], offset: int, limit: int
) -> None:
    """With sort_by and filters together, the page and total are those of filtering every
    record, then sorting what is kept."""
    q = SearchQuery(**params, offset=offset, limit=limit)
    answer = json.loads(search_category(model, category, q))
    records = {c.name: c.record for c in model.categories[category].candidates}
    expected = _sorted_expected(records, q, _expected(model, category, q))
    assert answer["total"] == len(expected)
    assert [r["name"] for r in answer["results"]] == expected[offset : offset + limit]


def _mixed_model(tmp_path: Path, dataset: Dataset) -> ReadModel:
    """The real data plus what it lacks: a name found in two categories (an image model's
    name on a controlnet record) and backend-prefixed text names."""
    image_name = next(iter(dataset.categories[Category.image_generation].records))
    text = dataset.categories[Category.text_generation].records
    changed = upsert_record(
        dataset,
        Category.controlnet,
        structure_record(Category.controlnet, {"name": image_name, "config": {"download": []}}),
        now=1_700_000_100,
    )
    for backend, original in zip(("koboldcpp", "aphrodite"), list(text)[:2], strict=True):
        renamed = evolve(text[original], name=f"{backend}/{original.split('/')[-1]}")
        changed = upsert_record(changed, Category.text_generation, renamed, now=1_700_000_200)
    return ReadModel.build(publish_dataset(SnapshotStore(tmp_path / "snapshots"), changed))


@pytest.mark.parametrize(("offset", "limit"), [(0, 500), (3, 4), (400, 500)])
def test_a_name_in_two_categories_counts_once_where_it_comes_first(
    tmp_path: Path, dataset: Dataset, offset: int, limit: int
) -> None:
    """The all-category search drops a name an earlier category already matched, in the total
    and in every page, and a sorted all-category search does the same."""
    model = _mixed_model(tmp_path, dataset)
    for params in ({"name_contains": ""}, {"sort_by": "name", "name_contains": ""}):
        q = SearchAllQuery(**params, offset=offset, limit=limit)
        expected: list[str] = []
        for category in model.categories:
            if category not in (Category.lora, Category.ti):
                expected += _expected(model, category, q)
        assert len(expected) > len(set(expected))  # the repeated name is there to be dropped
        expected = list(dict.fromkeys(expected))
        if q.sort_by is not None:
            first: dict[str, dict[str, Any]] = {}  # a repeated name shows its first record
            for view in model.categories.values():
                for c in view.candidates:
                    first.setdefault(c.name, c.record)
            expected = _sorted_expected(first, q, expected)
        answer = json.loads(search_all(model, q))
        assert answer["total"] == len(expected)
        assert [r["name"] for r in answer["results"]] == expected[offset : offset + limit]


ALL_SORTED_QUERIES = [
    {"sort_by": "name", "sort_desc": True},
    {"sort_by": "size_on_disk_bytes", "nsfw": False},
    {"sort_by": "size_on_disk_bytes", "sort_desc": True, "tags_none": ("anime",)},
    {"sort_by": "description", "name_contains": "a"},
    {"sort_by": "version", "sort_desc": True},
    {"sort_by": "metadata__created_at"},
    {"sort_by": "finetune_series", "name_contains": "x"},
    {"sort_by": "config"},  # records hold objects there: they cannot be compared
]


@pytest.mark.parametrize("params", ALL_SORTED_QUERIES)
@pytest.mark.parametrize(("offset", "limit"), [(0, 50), (190, 20), (880, 500)])
def test_sorted_search_across_categories_matches_sorting_every_kept_record(
    tmp_path: Path, dataset: Dataset, params: dict[str, Any], offset: int, limit: int
) -> None:
    """Across categories (one name in two of them), a sorted page and total are those of
    filtering every record, dropping repeated names, then sorting what is left: nulls last
    ascending and first descending, ties in category then dataset order; values that cannot
    be compared are a 400."""
    model = _mixed_model(tmp_path, dataset)
    q = SearchAllQuery(**params, offset=offset, limit=limit)
    names: list[str] = []
    first: dict[str, dict[str, Any]] = {}
    for category, view in model.categories.items():
        if category not in (Category.lora, Category.ti):
            names += _expected(model, category, q)
            for c in view.candidates:
                first.setdefault(c.name, c.record)
    names = list(dict.fromkeys(names))
    try:
        expected = _sorted_expected(first, q, names)
    except TypeError:
        with pytest.raises(BadRequest, match="Invalid sort_by field"):
            search_all(model, q)
        return
    answer = json.loads(search_all(model, q))
    assert answer["total"] == len(expected)
    assert [r["name"] for r in answer["results"]] == expected[offset : offset + limit]


@pytest.mark.parametrize(
    "params",
    [
        {"backend": "koboldcpp"},
        {"exclude_backend_variations": True},
        {"exclude_backend_variations": True, "quantized": False, "name_contains": "b"},
        {"backend": "aphrodite", "nsfw": False},
    ],
)
def test_backend_filters_match_checking_every_record(
    tmp_path: Path, dataset: Dataset, params: dict[str, Any]
) -> None:
    """backend and exclude_backend_variations, on data that has prefixed names, give what a
    record-by-record check gives."""
    model = _mixed_model(tmp_path, dataset)
    q = SearchQuery(**params, limit=500)
    answer = json.loads(search_category(model, Category.text_generation, q))
    expected = _expected(model, Category.text_generation, q)
    assert answer["total"] == len(expected)
    assert [r["name"] for r in answer["results"]] == expected[:500]


def test_an_unchanged_category_keeps_its_view_across_snapshots(real_data_dir: Path) -> None:
    """Building the model of the same snapshot again reuses every category's prepared view."""
    snapshot = SnapshotStore(real_data_dir / "snapshots").read_current()
    assert snapshot is not None
    first, second = ReadModel.build(snapshot), ReadModel.build(snapshot)
    for category, view in first.categories.items():
        assert second.categories[category] is view


def test_a_record_body_is_its_span_of_the_category_file(model: ReadModel) -> None:
    """Each record's bytes, cut from the category file while decoding it, are what encoding the
    record alone gives, so single-model reads and search pages are unchanged."""
    for view in model.categories.values():
        records = json.loads(view.v2.data)
        assert [c.name for c in view.candidates] == list(records)
        for c in view.candidates:
            assert c.data == dumps(records[c.name])


def _without_indexes(snapshot: Snapshot) -> Snapshot:
    """The snapshot as a writer from before record indexes published it."""
    keep = {p: d for p, d in snapshot.files.items() if not p.startswith("index/")}
    listing = {p: m for p, m in snapshot.manifest["files"].items() if p in keep}
    manifest = {**snapshot.manifest, "files": listing}
    return Snapshot(name=snapshot.name, manifest=manifest, files=keep)


def _same_view(a: CategoryView, b: CategoryView) -> None:
    assert len(a.candidates) == len(b.candidates)
    for x, y in zip(a.candidates, b.candidates, strict=True):
        assert (x.name, x.data, x.guidance, x.listed) == (y.name, y.data, y.guidance, y.listed)
    for pos in range(len(a.candidates)):  # a search page: the record without its guidance
        record = json.loads(a.candidates[pos].data)
        record.pop("guidance", None)
        assert json.loads(a.candidates.listed(pos)) == record
    for name in ("by_value", "by_tag", "by_backend", "prefixed", "names_text"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.line_starts == b.line_starts
    assert dict(a.models.items()) == dict(b.models.items())


def test_the_published_record_index_is_what_decoding_the_file_finds(
    tmp_path: Path, dataset: Dataset
) -> None:
    """A view loaded from the writer's record index equals one indexed by decoding the file,
    in every category, after a create, an update, a delete and a guidance change (the writer's
    cached entries and the ones it encodes again)."""
    store = SnapshotStore(tmp_path / "snapshots")
    text = dataset.categories[Category.text_generation].records
    first_text, last_text = next(iter(text)), list(text)[-1]
    changed = upsert_record(
        with_model(dataset, "Appended One"),
        Category.text_generation,
        evolve(text[first_text], description="changed in place"),
        now=1_700_000_100,
    )
    changed = delete_record(changed, Category.text_generation, last_text, now=1_700_000_200)
    assignments = {first_text: {"primary_profile_id": "chatml"}}
    guidance = {**changed.catalogs.guidance, "assignments": assignments}
    guided = evolve(changed, catalogs=changed.catalogs.replace(guidance=guidance))
    for version in (dataset, changed, guided):
        snapshot = publish_dataset(store, version)
        old_style = _without_indexes(snapshot)
        for category in ALL_CATEGORIES:
            assert index_path(category) in snapshot.files
            _same_view(
                CategoryView.build(snapshot, category), CategoryView.build(old_style, category)
            )
    view = CategoryView.build(snapshot, Category.text_generation)
    assert view.candidates[0].name == first_text
    record = json.loads(view.candidates[0].data)
    assert record["description"] == "changed in place"
    assert record["guidance"]["primary_profile_id"] == "chatml"
    assert last_text not in view.models
    assert "Appended One" in CategoryView.build(snapshot, Category.image_generation).models


def test_a_damaged_or_unknown_record_index_falls_back_to_decoding(
    tmp_path: Path, dataset: Dataset
) -> None:
    """An index of a format this reader does not know (a newer writer) is not trusted: the
    category is indexed by decoding its file, with the same answers."""
    snapshot = publish_dataset(SnapshotStore(tmp_path / "snapshots"), dataset)
    path = index_path(Category.image_generation)
    files = {**snapshot.files, path: b'{"format": 99}'}
    odd = Snapshot(name=snapshot.name, manifest=snapshot.manifest, files=files)
    _same_view(
        CategoryView.build(odd, Category.image_generation),
        CategoryView.build(snapshot, Category.image_generation),
    )
