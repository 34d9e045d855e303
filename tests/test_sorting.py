"""Merging per-category sort orders gives what one stable sort of all their records gives."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve

from horde_model_records import Category
from services.read_api.search import aprepare, search_all, search_category
from services.read_api.sorting import SortOrder, Unsortable, merged
from services.read_api.view import CategoryView, ReadModel
from services.read_api.wire import SearchAllQuery, SearchQuery
from shared.errors import BadRequest
from shared.snapshot import SnapshotStore


def _one_sort(streams: list[list[Any]], desc: bool) -> list[tuple[int, int]]:
    """(stream, position) of every value, by one stable sort of them all in stream order."""
    items = [(i, p) for i, values in enumerate(streams) for p in range(len(values))]
    nulls = [it for it in items if streams[it[0]][it[1]] is None]
    present = [it for it in items if streams[it[0]][it[1]] is not None]
    present.sort(key=lambda it: streams[it[0]][it[1]], reverse=desc)
    return nulls + present if desc else present + nulls


@pytest.mark.parametrize("desc", [False, True])
def test_merged_orders_are_one_stable_sort_of_every_stream(desc: bool) -> None:
    """Ties stay in stream then position order, nulls come last ascending and first
    descending, whatever values each stream holds."""
    rng = random.Random(int(desc))
    for _ in range(100):
        streams = [
            [rng.choice([None, *range(6)]) for _ in range(rng.randint(0, 30))]
            for _ in range(rng.randint(1, 4))
        ]
        orders = [SortOrder.of(values, "k", desc) for values in streams]
        found = merged([(o, iter(o.order)) for o in orders], desc)
        assert found is not None
        assert list(found) == _one_sort(streams, desc)


def test_values_that_may_not_compare_are_not_merged() -> None:
    """Text in one stream and numbers in another, or objects in two, are left to one sort of
    them all (which reports what cannot be compared); objects in one stream alone merge."""
    text, number = SortOrder.of(["a", None], "k", False), SortOrder.of([1, 2], "k", False)
    objects = SortOrder.of([[1], [2]], "k", False)
    nothing = SortOrder.of([None, None], "k", False)
    assert merged([(text, iter(text.order)), (number, iter(number.order))], False) is None
    assert merged([(objects, iter(objects.order)), (objects, iter(objects.order))], False) is None
    alone = merged([(objects, iter(objects.order)), (nothing, iter(nothing.order))], False)
    assert alone is not None
    assert list(alone) == [(0, 0), (0, 1), (1, 0), (1, 1)]


@pytest.fixture(scope="module")
def model(real_data_dir: Path) -> ReadModel:
    snapshot = SnapshotStore(real_data_dir / "snapshots").read_current()
    assert snapshot is not None
    return ReadModel.build(snapshot)


async def test_a_sorted_search_has_its_orders_made_off_the_event_loop(model: ReadModel) -> None:
    """Before a sorted search runs, the order of every category it reads is made (in a
    thread); a key the search will refuse makes none."""
    q = SearchAllQuery(sort_by="metadata__updated_at", sort_desc=True)
    await aprepare(model, None, q)
    for category, view in model.categories.items():
        made = ("metadata__updated_at", True) in view.sort_cache
        assert made == (category not in (Category.lora, Category.ti)), category
    await aprepare(model, Category.clip, SearchQuery(sort_by="description"))
    assert ("description", False) in model.categories[Category.clip].sort_cache
    await aprepare(model, None, SearchAllQuery(sort_by="baseline"))  # not common: a 400
    assert all(("baseline", False) not in v.sort_cache for v in model.categories.values())


def test_a_key_whose_values_do_not_compare_is_remembered_as_such(model: ReadModel) -> None:
    """Objects cannot be compared: a category search by one answers 400 from what the first
    search remembered, and the all-category search still sorts matches that do compare (a
    single one) and refuses those that do not."""
    image = model.categories[Category.image_generation]
    with pytest.raises(BadRequest, match="cannot be compared"):
        search_category(model, Category.image_generation, SearchQuery(sort_by="config"))
    remembered = image.sort_cache[("config", False)]
    assert isinstance(remembered, Unsortable)
    with pytest.raises(BadRequest, match="cannot be compared"):
        search_category(model, Category.image_generation, SearchQuery(sort_by="config"))
    assert image.sort_cache[("config", False)] is remembered
    names = [n.lower() for view in model.categories.values() for n in view.candidates.names]
    unique = next(n for n in names if sum(n in other for other in names) == 1)
    one = json.loads(search_all(model, SearchAllQuery(sort_by="config", name_contains=unique)))
    assert [r["name"].lower() for r in one["results"]] == [unique]
    with pytest.raises(BadRequest, match="cannot be compared"):
        search_all(model, SearchAllQuery(sort_by="config"))


async def test_a_quantized_search_has_its_names_parsed_off_the_event_loop(
    real_data_dir: Path, model: ReadModel
) -> None:
    """The quantized filter's index (every text name parsed) is made before the search runs,
    for a text search that uses the filter only."""
    snapshot = SnapshotStore(real_data_dir / "snapshots").read_current()
    assert snapshot is not None
    fresh = CategoryView.build(snapshot, Category.text_generation)  # nothing made on it yet
    text_model = evolve(model, categories={**model.categories, Category.text_generation: fresh})
    await aprepare(text_model, Category.text_generation, SearchQuery(nsfw=False))
    await aprepare(text_model, None, SearchAllQuery(nsfw=False))
    assert fresh.quantized_cache == []
    await aprepare(text_model, Category.text_generation, SearchQuery(quantized=False))
    assert len(fresh.quantized_cache) == 1  # read before `quantized`, which would make it
    assert len(fresh.quantized_cache[0]) > 0
