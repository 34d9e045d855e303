"""`hmr seed` on two cores: forked copies import and encode parts of the dataset, and the
snapshot is byte for byte the one encoding the whole dataset in one process gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from horde_model_records import Category
from shared.dataset import import_legacy_dir, snapshot_files
from shared.seeding import forked, seed_files
from tests.conftest import LEGACY_DIR


def test_a_seed_is_the_whole_dataset_encoded_in_one_process() -> None:
    """Every file, digest, manifest block, count and problem (in order) of a seed equals what
    importing the real data and encoding all of it in this process gives."""
    seed = seed_files(LEGACY_DIR, now=1_700_000_000)
    dataset, problems = import_legacy_dir(LEGACY_DIR, now=1_700_000_000)
    files, extra = snapshot_files(dataset)
    assert list(seed.files) == list(files)
    for path, data in files.items():
        assert seed.files[path] == data, path
    assert seed.extra == extra
    assert seed.problems == problems
    assert seed.counts == {c: len(d.records) for c, d in dataset.categories.items()}
    assert seed.counts[Category.text_generation] > 0


def test_a_legacy_dir_with_unreadable_files_reports_them_in_category_order(
    tmp_path: Path,
) -> None:
    """Problems found in the forked copies come back with the others, in category order."""
    (tmp_path / "image").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "image" / "stable_diffusion.json").write_text("{not json")
    (tmp_path / "image" / "clip.json").write_text("[1, 2")
    seed = seed_files(tmp_path, now=1)
    assert [p.file for p in seed.problems] == ["clip.json", "stable_diffusion.json"]
    assert all(p.fatal for p in seed.problems)


def test_a_forked_result_comes_back_and_a_failure_says_what_it_was() -> None:
    assert forked(lambda: {"pid": os.getpid(), "data": b"x" * 300_000})()["data"] == b"x" * 300_000
    assert forked(os.getpid)() != os.getpid()  # the work ran in another process

    def failing() -> None:
        raise ValueError("no such category")

    with pytest.raises(RuntimeError, match="ValueError: no such category"):
        forked(failing)()
    with pytest.raises(RuntimeError, match="died"):
        forked(lambda: os._exit(3))()
