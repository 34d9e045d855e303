"""The snapshot store: atomic publish, hard-linked unchanged files, verified reads, retention."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from horde_model_records import Category, structure_record
from shared.dataset import (
    Dataset,
    delete_record,
    publish_dataset,
    snapshot_files,
    upsert_record,
)
from shared.snapshot import SnapshotError, SnapshotStore


def new_image(name: str = "Zeta Test") -> object:
    return structure_record(
        Category.image_generation,
        {
            "name": name,
            "baseline": "SDXL",
            "nsfw": False,
            "config": {
                "download": [{"file_name": "z.safetensors", "file_url": "https://e.test/z"}]
            },
        },
    )


def test_publish_switches_current_and_ids_grow(tmp_path: Path, dataset: Dataset) -> None:
    """Each publish gets a larger id and CURRENT names the newest snapshot."""
    store = SnapshotStore(tmp_path)
    first = publish_dataset(store, dataset)
    second = publish_dataset(
        store, upsert_record(dataset, Category.image_generation, new_image(), 1)
    )
    assert second.id == first.id + 1
    assert store.current_name() == second.name
    assert second.manifest["parent"] == first.name


def test_unchanged_files_are_hard_linked(tmp_path: Path, dataset: Dataset) -> None:
    """A publish re-uses unchanged category files by hard link and writes changed ones anew."""
    store = SnapshotStore(tmp_path)
    first = publish_dataset(store, dataset)
    second = publish_dataset(
        store, upsert_record(dataset, Category.image_generation, new_image(), 1)
    )
    same = os.stat(tmp_path / first.name / "v2/text_generation.json")
    linked = os.stat(tmp_path / second.name / "v2/text_generation.json")
    assert same.st_ino == linked.st_ino
    old = os.stat(tmp_path / first.name / "v2/image_generation.json")
    new = os.stat(tmp_path / second.name / "v2/image_generation.json")
    assert old.st_ino != new.st_ino


def test_read_verifies_every_file(tmp_path: Path, dataset: Dataset) -> None:
    """A snapshot reads back with the exact bytes that were published."""
    store = SnapshotStore(tmp_path)
    published = publish_dataset(store, dataset)
    loaded = store.read(published.name)
    assert dict(loaded.files) == dict(published.files)


@pytest.mark.parametrize("damage", ["missing", "flipped", "truncated", "manifest"])
def test_damaged_snapshot_is_refused(tmp_path: Path, dataset: Dataset, damage: str) -> None:
    """A missing file, changed bytes, a truncated file or a broken manifest raise SnapshotError."""
    store = SnapshotStore(tmp_path)
    name = publish_dataset(store, dataset).name
    target = tmp_path / name / "v2" / "blip.json"
    if damage == "missing":
        target.unlink()
    elif damage == "flipped":
        data = bytearray(target.read_bytes())
        data[5] ^= 1
        target.write_bytes(bytes(data))
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:-3])
    else:
        (tmp_path / name / "manifest.json").write_text("{")
    with pytest.raises(SnapshotError):
        store.read(name)


def test_interrupted_publish_leaves_old_snapshot_live(tmp_path: Path, dataset: Dataset) -> None:
    """What a crash mid-publish leaves behind (a build dir, an unswitched snapshot) changes nothing."""
    store = SnapshotStore(tmp_path)
    live = publish_dataset(store, dataset).name
    (tmp_path / ".build-crashed").mkdir()
    (tmp_path / ".build-crashed" / "v2").mkdir()
    (tmp_path / ".build-crashed" / "v2" / "blip.json").write_bytes(b'{"half')
    assert store.current_name() == live
    assert store.read_current() is not None
    nxt = publish_dataset(store, upsert_record(dataset, Category.image_generation, new_image(), 1))
    assert store.current_name() == nxt.name and nxt.id == 2


def test_prune_keeps_newest_and_live(tmp_path: Path, dataset: Dataset) -> None:
    """prune(keep=2) deletes older snapshots but never the live one."""
    store = SnapshotStore(tmp_path)
    names = []
    current = dataset
    for i in range(4):
        current = upsert_record(current, Category.image_generation, new_image(f"M{i}"), i)
        names.append(publish_dataset(store, current).name)
    removed = store.prune(keep=2)
    assert removed == names[:2]
    assert store.names() == names[2:]


def test_upsert_regenerates_v1_and_bumps_metadata(dataset: Dataset) -> None:
    """A created image record appears in the v1 view in legacy form; metadata counts it."""
    after = upsert_record(dataset, Category.image_generation, new_image(), 1_800_000_000)
    data = after.categories[Category.image_generation]
    assert data.legacy is not None
    legacy = data.legacy["Zeta Test"]
    assert list(data.legacy)[-1] == "Zeta Test"
    assert legacy["baseline"] == "SDXL" and legacy["type"] == "ckpt"
    assert legacy["config"]["download"][0]["file_url"] == "https://e.test/z"
    assert data.metadata.total_creates == 1 and data.metadata.last_updated == 1_800_000_000
    assert data.metadata.total_models == 162
    assert data.legacy_metadata.last_operation_model == "Zeta Test"
    untouched = after.categories[Category.text_generation].metadata
    assert untouched.last_updated == 1_700_000_000


def test_delete_removes_text_variants(dataset: Dataset) -> None:
    """Deleting a text model removes its three v1 entries and counts a delete."""
    after = delete_record(dataset, Category.text_generation, "acrastt/Marx-3B-V3", 1_800_000_000)
    data = after.categories[Category.text_generation]
    assert data.legacy is not None
    assert "koboldcpp/Marx-3B-V3" not in data.legacy and len(data.legacy) == 2154
    assert data.metadata.total_deletes == 1


def test_manifest_records_metadata_and_counts(tmp_path: Path, dataset: Dataset) -> None:
    """The manifest carries each category's counts and both metadata blocks."""
    published = publish_dataset(SnapshotStore(tmp_path), dataset)
    manifest = json.loads((tmp_path / published.name / "manifest.json").read_bytes())
    block = manifest["categories"]["image_generation"]
    assert block["count"] == 161 and block["legacy_count"] == 161
    assert block["metadata"]["total_models"] == 161
    assert block["legacy_metadata"]["category"] == "image_generation"


def test_snapshot_directories_are_readable_by_other_users(tmp_path: Path, dataset: Dataset) -> None:
    """Published snapshot directories are 0755, so readers may run as another user."""
    published = publish_dataset(SnapshotStore(tmp_path), dataset)
    assert (tmp_path / published.name).stat().st_mode & 0o777 == 0o755
    assert (tmp_path / published.name / "v2").stat().st_mode & 0o777 == 0o755


def test_a_change_re_encodes_only_the_categories_it_touched(dataset: Dataset) -> None:
    """After one image model changes, every other category's files are the very bytes encoded
    before (reused, not rebuilt), and the image files are new and hold the change."""
    before, _ = snapshot_files(dataset)
    record = structure_record(
        Category.image_generation, {"name": "Reencoded", "baseline": "flux_1", "nsfw": False}
    )
    after, _ = snapshot_files(upsert_record(dataset, Category.image_generation, record, 1))
    for path, data in after.items():
        if "image_generation" in path or "stable_diffusion" in path:
            assert data is not before[path]
        elif "text_generation" in path:
            # a category with a large file keeps no bytes between publishes (a publish links
            # the file); snapshot_files, which returns every byte, encodes it again, the same
            assert data == before[path], path
        else:
            assert data is before[path], path
    assert b"Reencoded" in after["v2/image_generation.json"]
