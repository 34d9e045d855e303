"""Search answers from indexes built once per snapshot: the same pages and totals as checking
every record against every filter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from horde_model_records import Category, has_backend_prefix, is_quantized
from services.read_api.search import search_all, search_category
from services.read_api.view import CategoryView, ReadModel, dumps
from services.read_api.wire import SearchAllQuery, SearchQuery
from shared.dataset import Dataset, publish_dataset
from shared.snapshot import SnapshotStore
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


def test_a_view_grown_by_appended_records_is_the_view_built_afresh(
    tmp_path: Path, dataset: Dataset
) -> None:
    """After a create (records appended at the end of the file) the view built from the previous
    one has the same candidates, indexes and answers as one built from nothing."""
    store = SnapshotStore(tmp_path / "snapshots")
    first = publish_dataset(store, dataset)
    before = CategoryView.build(first, Category.image_generation)
    changed = with_model(with_model(dataset, "Appended One"), "Appended Two")
    second = publish_dataset(store, changed)
    grown = CategoryView.build(second, Category.image_generation, before)
    fresh = CategoryView.build(second, Category.image_generation)
    assert [c.name for c in grown.candidates] == [c.name for c in fresh.candidates]
    assert grown.candidates[0] is before.candidates[0]  # taken over, not read again
    assert "Appended Two" in grown.models
    for name in ("by_value", "by_tag", "tagged", "by_backend", "prefixed", "names_text"):
        assert getattr(grown, name) == getattr(fresh, name), name
    assert grown.line_starts == fresh.line_starts
    assert grown.name_positions("appended") == fresh.name_positions("appended") != []
