"""The bundled sample dataset (shared/sample_data/legacy) that `hmr seed` uses without --seed-dir."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from horde_model_records import CATEGORY_INFO, LEGACY_CATEGORIES, Category, is_quantized
from services.cli import SAMPLE_DIR
from shared.dataset import Dataset, import_legacy_dir, publish_dataset, v1_path
from shared.snapshot import SnapshotStore

JSON_CATEGORIES = [c for c in LEGACY_CATEGORIES if c is not Category.text_generation]


def _ordered(value: Any) -> Any:
    """A JSON value with every object turned into its list of items, so key order is compared too."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def _sample_file(category: Category) -> Path:
    return SAMPLE_DIR / "image" / str(CATEGORY_INFO[category].legacy_file)


def _csv_rows() -> list[dict[str, str]]:
    with open(SAMPLE_DIR / "text" / "models.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sample() -> tuple[Dataset, list[Any]]:
    """The sample imported once: (dataset, problems)."""
    return import_legacy_dir(SAMPLE_DIR, now=1_700_000_000)


def test_sample_dir_is_where_the_cli_looks() -> None:
    """The CLI's default seed directory exists and holds a file for every legacy category."""
    assert SAMPLE_DIR.is_dir()
    for category in JSON_CATEGORIES:
        assert _sample_file(category).is_file(), category
    assert (SAMPLE_DIR / "text" / "models.csv").is_file()


def test_sample_imports_without_problems(sample: tuple[Dataset, list[Any]]) -> None:
    """Importing the sample reports no problem at all."""
    _, problems = sample
    assert problems == []


def test_sample_seeds_every_legacy_category(sample: tuple[Dataset, list[Any]]) -> None:
    """Every category with a legacy format gets at least one record from the sample."""
    dataset, _ = sample
    empty = [c.value for c in LEGACY_CATEGORIES if not dataset.categories[c].records]
    assert empty == []


def test_sample_keeps_every_record_of_its_files(sample: tuple[Dataset, list[Any]]) -> None:
    """No record of a sample file is dropped: record names equal the file keys, in file order."""
    dataset, _ = sample
    for category in JSON_CATEGORIES:
        raw = json.loads(_sample_file(category).read_bytes())
        assert list(dataset.categories[category].records) == list(raw), category
    names = [row["name"] for row in _csv_rows()]
    assert list(dataset.categories[Category.text_generation].records) == names


def test_sample_v1_views_equal_the_files(sample: tuple[Dataset, list[Any]]) -> None:
    """The v1 view of each JSON category equals its sample file, key order included."""
    dataset, _ = sample
    for category in JSON_CATEGORIES:
        raw = json.loads(_sample_file(category).read_bytes())
        view = dataset.categories[category].legacy
        assert view is not None
        assert _ordered(view) == _ordered(raw), category


def test_published_sample_serves_the_files_as_v1(
    sample: tuple[Dataset, list[Any]], tmp_path: Path
) -> None:
    """A snapshot published from the sample holds v1 files equal to the sample files, key order included."""
    dataset, _ = sample
    snapshot = publish_dataset(SnapshotStore(tmp_path / "snapshots"), dataset)
    for category in JSON_CATEGORIES:
        raw = json.loads(_sample_file(category).read_bytes())
        served = json.loads(snapshot.files[v1_path(category)])
        assert _ordered(served) == _ordered(raw), category


def test_sample_text_view_has_three_entries_per_csv_row(sample: tuple[Dataset, list[Any]]) -> None:
    """The text v1 view lists each CSV model as base, aphrodite/ and koboldcpp/ entries, in CSV order."""
    dataset, _ = sample
    view = dataset.categories[Category.text_generation].legacy
    assert view is not None
    expected: list[str] = []
    for row in _csv_rows():
        name = row["name"]
        expected += [name, f"aphrodite/{name}", f"koboldcpp/{name.split('/', 1)[-1]}"]
    assert list(view) == expected


def test_sample_text_settings_and_tags_survive(sample: tuple[Dataset, list[Any]]) -> None:
    """CSV settings and tags of the sample reach the text v1 view unchanged."""
    dataset, _ = sample
    view = dataset.categories[Category.text_generation].legacy
    assert view is not None
    rows = _csv_rows()
    with_settings = [r for r in rows if r["settings"]]
    with_tags = [r for r in rows if r["tags"]]
    assert with_settings and with_tags
    for row in with_settings:
        assert view[row["name"]]["settings"] == json.loads(row["settings"])
    for row in with_tags:
        for tag in row["tags"].split(","):
            assert tag.strip() in view[row["name"]]["tags"]


def test_sample_image_models_cover_the_documented_variety(
    sample: tuple[Dataset, list[Any]],
) -> None:
    """The sample image models span several baselines, both nsfw values, inpainting and the optional fields."""
    dataset, _ = sample
    raw = json.loads(_sample_file(Category.image_generation).read_bytes())
    baselines = {r["baseline"] for r in raw.values()}
    assert {
        "stable diffusion 1",
        "stable_diffusion_xl",
        "stable diffusion 2",
        "flux_1",
    } <= baselines
    assert {r["nsfw"] for r in raw.values()} == {True, False}
    assert any(r["inpainting"] for r in raw.values())
    for key in ("tags", "showcases", "trigger", "requirements"):
        assert any(key in r for r in raw.values()), key
    assert len(dataset.categories[Category.image_generation].records) == len(raw)


def test_sample_text_models_cover_the_documented_variety() -> None:
    """The sample text models include a quantised name and several different sizes."""
    rows = _csv_rows()
    assert any(is_quantized(r["name"]) for r in rows)
    assert len({float(r["parameters_bn"]) for r in rows}) >= 4
