"""Publishing costs what a change touched: entries, gzip pieces and rows are reused, and the
result is byte for byte what encoding the whole dataset gives."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from horde_model_records import ALL_CATEGORIES, Category, structure_record
from horde_model_records.convert import text_v1_view
from services.write_queue.store import Store
from shared import gzipped
from shared.dataset import (
    Dataset,
    adopt_snapshot,
    delete_record,
    encode_v1,
    encode_v2,
    import_legacy_dir,
    prepare_publish,
    publish_dataset,
    snapshot_files,
    upsert_record,
)
from shared.read_index import RecordIndex, index_path
from shared.snapshot import LARGE_FILE, Snapshot, SnapshotStore, v1_path, v2_path
from tests.conftest import LEGACY_DIR
from tests.helpers import with_model


def _changed(dataset: Dataset) -> Dataset:
    """The dataset after an update, a create and a delete in the image and text categories."""
    image = dataset.categories[Category.image_generation].records
    text = dataset.categories[Category.text_generation].records
    first_image, first_text = next(iter(image)), next(iter(text))
    updated = structure_record(
        Category.image_generation,
        {"name": first_image, "baseline": "flux_1", "nsfw": True, "description": "é ✓"},
    )
    dataset = upsert_record(dataset, Category.image_generation, updated, 5)
    created = structure_record(
        Category.text_generation,
        {"name": "org/Brand-New-7B", "parameters_count": 7_000_000_000, "nsfw": False},
    )
    dataset = upsert_record(dataset, Category.text_generation, created, 6)
    dataset = delete_record(dataset, Category.text_generation, first_text, 7)
    middle = list(text)[len(text) // 2]
    changed_text = structure_record(
        Category.text_generation,
        {"name": middle, "parameters_count": 13_000_000_000, "nsfw": True},
    )
    return upsert_record(dataset, Category.text_generation, changed_text, 8)


def test_category_files_are_the_whole_encoding_byte_for_byte(dataset: Dataset) -> None:
    """Files assembled from cached entries equal encoding each whole category, before and after
    changes, and each .gz decompresses to its file."""
    for ds in (dataset, _changed(dataset)):
        files, _ = snapshot_files(ds)
        for category in ALL_CATEGORIES:
            data = ds.categories[category]
            assert files[v2_path(category)] == encode_v2(data.records), category
            assert gzip.decompress(files[v2_path(category) + ".gz"]) == files[v2_path(category)]
            if data.legacy is not None:
                assert files[v1_path(category)] == encode_v1(data.legacy), category
                assert gzip.decompress(files[v1_path(category) + ".gz"]) == encode_v1(data.legacy)


def test_the_text_view_after_a_change_is_the_one_generated_afresh(dataset: Dataset) -> None:
    """After updates, a create and a delete, the db.json view is what generating it from every
    record gives, in the same order."""
    after = _changed(dataset).categories[Category.text_generation]
    assert after.legacy is not None
    expected = text_v1_view(after.records.values())
    assert list(after.legacy) == list(expected)
    assert after.legacy == expected


def test_gzip_reuses_the_pieces_an_edit_did_not_touch() -> None:
    """After one entry of a large file changes, all but a few pieces are the compressed bytes of
    the previous encoding, and the result still decompresses to the new file."""
    entries = [
        json.dumps({f"model {i}": {"n": i, "pad": "x" * (i % 300)}}).encode() for i in range(5000)
    ]
    cache = gzipped.PieceCache()
    cache.gzip(entries)
    before = set(cache.deflated.values())
    entries[2500] = b'{"changed": true}'
    out = cache.gzip(entries)
    assert gzip.decompress(out) == b"".join(entries)
    after = list(cache.deflated.values())
    assert len(after) > 10
    assert sum(1 for d in after if d not in before) <= 3


async def test_the_store_after_row_writes_reads_back_the_dataset(
    tmp_path: Path, dataset: Dataset
) -> None:
    """Writing only the changed rows leaves the store holding exactly the changed dataset, in
    dataset order."""
    changed = _changed(dataset)
    store = await Store.aopen(tmp_path / "store.sqlite")
    try:
        async with store.transaction():
            await store.write_dataset(dataset)
        async with store.transaction():
            for category in (Category.image_generation, Category.text_generation):
                await store.write_category_changes(
                    category, dataset.categories[category], changed.categories[category]
                )
        read = await store.read_dataset()
        for category in ALL_CATEGORIES:
            want, got = changed.categories[category], read.categories[category]
            assert list(got.records.items()) == list(want.records.items()), category
            assert (None if got.legacy is None else list(got.legacy.items())) == (
                None if want.legacy is None else list(want.legacy.items())
            ), category
            assert got.metadata == want.metadata
    finally:
        await store.aclose()


def test_a_writer_adopts_the_live_snapshot_as_its_encoding(
    tmp_path: Path, dataset: Dataset
) -> None:
    """After adopting the snapshot its dataset was published as, the next publish takes every
    untouched category's files from it (no category is encoded again: small files are the
    snapshot's bytes, large ones are not even read but linked) and they still verify."""
    store = SnapshotStore(tmp_path / "snapshots")
    published = publish_dataset(store, dataset)
    fresh = import_legacy_dir(LEGACY_DIR, now=1)[0]  # the same data, other objects (as at start)
    snapshot = SnapshotStore(tmp_path / "snapshots").read(published.name)
    adopt_snapshot(fresh, snapshot)
    files, _ = snapshot_files(fresh)  # every file's bytes: a large one is encoded for this
    large = [p for p, d in files.items() if len(d) > LARGE_FILE]
    assert large == [v1_path(Category.text_generation)]  # the real data's only large file
    text = Category.text_generation.value
    for path, data in files.items():
        # catalogs (a few kB) and the category of the large file are encoded again
        if path.startswith("catalogs/") or path.rsplit("/", 1)[-1].startswith(text + "."):
            assert data == snapshot.files[path], path
        else:
            assert data is snapshot.files[path], path
    changed = with_model(adopted(fresh, snapshot), "Adopted Then Changed")
    again = publish_dataset(store, changed)
    assert store.read(again.name).files["v2/blip.json"] == snapshot.files["v2/blip.json"]
    old, new = tmp_path / "snapshots" / published.name, tmp_path / "snapshots" / again.name
    for path in (*large, v2_path(Category.text_generation), "v2/blip.json"):
        assert (new / path).stat().st_ino == (old / path).stat().st_ino, path  # linked


def adopted(dataset: Dataset, snapshot: Snapshot) -> Dataset:
    """`dataset` adopting `snapshot` again (snapshot_files replaced its encoding by a full one)."""
    adopt_snapshot(dataset, snapshot)
    return dataset


def test_a_publish_encodes_again_a_large_file_the_live_snapshot_lost(
    tmp_path: Path, dataset: Dataset
) -> None:
    """An unchanged large file is linked from the live snapshot, not held: when the live copy
    is gone, the publish encodes it again instead of failing, with the same bytes."""
    store = SnapshotStore(tmp_path / "snapshots")
    first = publish_dataset(store, with_model(dataset, "Before The Loss"))
    path = v1_path(Category.text_generation)
    expected = (tmp_path / "snapshots" / first.name / path).read_bytes()
    assert len(expected) > LARGE_FILE
    (tmp_path / "snapshots" / first.name / path).unlink()
    again = publish_dataset(store, with_model(with_model(dataset, "Before The Loss"), "After"))
    assert (tmp_path / "snapshots" / again.name / path).read_bytes() == expected
    assert store.read(again.name).files[path] == expected


def _assert_encodes(snapshot: Snapshot, dataset: Dataset) -> None:
    """Every category file of `snapshot` is what encoding `dataset` afresh gives, its .gz
    holds the same bytes, and its record index is the one decoding the file gives."""
    for category in ALL_CATEGORIES:
        data = dataset.categories[category]
        v2 = snapshot.files[v2_path(category)]
        assert v2 == encode_v2(data.records, dataset.catalogs.assignments), category
        assert gzip.decompress(snapshot.files[v2_path(category) + ".gz"]) == v2, category
        index = snapshot.files[index_path(category)]
        assert index == RecordIndex.by_decoding(v2).encode(), category
        if data.legacy is not None:
            v1 = snapshot.files[v1_path(category)]
            assert v1 == encode_v1(data.legacy), category
            assert gzip.decompress(snapshot.files[v1_path(category) + ".gz"]) == v1, category


def test_the_first_publish_after_adopting_copies_from_the_live_files(
    tmp_path: Path, dataset: Dataset
) -> None:
    """A writer that adopted the live snapshot finds the untouched entries of a changed
    category in the live files (the v1 file's entries by their layout, the v2 file's by its
    record index) and publishes exactly what encoding the changed dataset afresh gives, with
    its pieces compressed at start or not."""
    for prepared in (False, True):
        store = SnapshotStore(tmp_path / f"snapshots-{prepared}")
        published = publish_dataset(store, dataset)
        fresh = import_legacy_dir(LEGACY_DIR, now=1)[0]  # the same data, other objects
        adopt_snapshot(fresh, store.read(published.name))
        if prepared:
            prepare_publish(fresh, store)
        _assert_changes_encode(store, fresh)


def _assert_changes_encode(store: SnapshotStore, fresh: Dataset) -> None:
    changed = _changed(fresh)
    _assert_encodes(store.read(publish_dataset(store, changed).name), changed)
    again = with_model(changed, "A Second Apply")
    _assert_encodes(store.read(publish_dataset(store, again).name), again)


def test_a_damaged_live_file_is_not_copied_into_the_next_snapshot(
    tmp_path: Path, dataset: Dataset
) -> None:
    """When the live copy of a file no longer has its recorded digest, the next publish of its
    category encodes every entry again: damage on disk never spreads into a new snapshot."""
    store = SnapshotStore(tmp_path / "snapshots")
    published = publish_dataset(store, dataset)
    fresh = import_legacy_dir(LEGACY_DIR, now=1)[0]
    adopt_snapshot(fresh, store.read(published.name))
    live = tmp_path / "snapshots" / published.name / v1_path(Category.text_generation)
    damaged = bytearray(live.read_bytes())
    damaged[len(damaged) // 4] ^= 0x20  # one flipped bit in an entry no change touches
    live.write_bytes(bytes(damaged))
    changed = _changed(fresh)
    _assert_encodes(store.read(publish_dataset(store, changed).name), changed)
