"""The whole dataset in memory, its snapshot files, and importing a legacy directory into it."""

from __future__ import annotations

import gzip
import json
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import Factory, evolve, field, frozen

from horde_model_records import (
    ALL_CATEGORIES,
    CATEGORY_INFO,
    Category,
    ModelRecord,
    Problem,
    convert_db_json,
    convert_legacy_json,
    convert_models_csv,
    legacy_view,
    structure_record,
    unstructure_record,
)
from horde_model_records.convert import legacy_keys
from horde_model_records.metadata import CategoryMetadata
from horde_model_records.serde import converter
from horde_model_records.served import read_fields, stored_fields

from .catalogs import Catalogs, catalog_files, catalogs_from_snapshot
from .snapshot import Snapshot, SnapshotStore, v1_path, v2_path
from .text_toolkit import ToolkitStores

Json = dict[str, Any]


@frozen
class CategoryData:
    records: Mapping[str, ModelRecord]  # dataset order
    legacy: Mapping[str, Json] | None  # the v1 view; None for categories with no legacy format
    metadata: CategoryMetadata
    legacy_metadata: CategoryMetadata


@frozen
class Dataset:
    categories: Mapping[Category, CategoryData]
    #: the text toolkit's group schemas, aliases and families (spec 07 §6)
    text_toolkit: ToolkitStores = Factory(ToolkitStores)
    #: licensing, image baselines, text guidance (the bundled ones until a store has its own)
    catalogs: Catalogs = field(factory=Catalogs.bundled)


def _with_records(
    dataset: Dataset,
    category: Category,
    records: dict[str, ModelRecord],
    operation: str,
    name: str,
    now: int,
    legacy_record: Json | None = None,
) -> Dataset:
    data = dataset.categories[category]
    legacy = data.legacy
    legacy_meta = data.legacy_metadata
    if legacy is not None:
        key = legacy_keys(legacy).get(name, name)  # the v1 key may spell the name otherwise
        if operation == "delete" and category is not Category.text_generation:
            legacy = {k: v for k, v in legacy.items() if k != key}
        elif legacy_record is not None and category is not Category.text_generation:
            # a legacy-canonical write: the submitted legacy record is the v1 entry, verbatim
            legacy = {**legacy, key: legacy_record}
        else:
            legacy = legacy_view(category, records, legacy, changed={name})
        legacy_meta = legacy_meta.after_operation(operation, name, now, len(legacy))
    changed = CategoryData(
        records=records,
        legacy=legacy,
        metadata=data.metadata.after_operation(operation, name, now, len(records)),
        legacy_metadata=legacy_meta,
    )
    return evolve(dataset, categories={**dataset.categories, category: changed})


def upsert_record(
    dataset: Dataset,
    category: Category,
    record: ModelRecord,
    now: int,
    legacy_record: Json | None = None,
) -> Dataset:
    """The dataset with one record created or replaced; its v1 view and metadata follow.

    `legacy_record` (legacy-canonical writes) becomes the record's v1 entry as submitted.
    """
    records = dict(dataset.categories[category].records)
    operation = "update" if record.name in records else "create"
    records[record.name] = record
    return _with_records(dataset, category, records, operation, record.name, now, legacy_record)


def delete_record(dataset: Dataset, category: Category, name: str, now: int) -> Dataset:
    """The dataset without one record; raises KeyError when it is not there."""
    records = dict(dataset.categories[category].records)
    del records[name]
    return _with_records(dataset, category, records, "delete", name, now)


def encode_v2(
    records: Mapping[str, ModelRecord], assignments: Mapping[str, Json] | None = None
) -> bytes:
    """The v2 category read: stored records plus what reads add (licensing default, text
    guidance from `assignments`, the guidance catalog's model -> assignment)."""
    assignments = assignments or {}
    body = {
        name: read_fields(rec.CATEGORY, unstructure_record(rec), assignments.get(name))
        for name, rec in records.items()
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def encode_v1(view: Mapping[str, Json]) -> bytes:
    # 4-space indent, like most of the GitHub files, so a generated file diffs well against them
    return json.dumps(view, ensure_ascii=False, indent=4).encode()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


#: id(CategoryData) -> (a weak reference to it, its files and manifest block): a dataset after
#: an apply shares every untouched CategoryData with the one before, so publishing re-encodes
#: (and re-gzips) only the categories a change touched
_encoded: dict[int, tuple[weakref.ref[CategoryData], dict[str, bytes], Json, Json]] = {}


def _category_files(
    category: Category, data: CategoryData, assignments: Json
) -> tuple[dict[str, bytes], Json]:
    """`assignments`: the guidance catalog's, which text reads show (other categories ignore it)."""
    cached = _encoded.get(id(data))
    if (
        cached is not None
        and cached[0]() is data
        and (category is not Category.text_generation or cached[3] == assignments)
    ):
        return cached[1], cached[2]
    files: dict[str, bytes] = {}
    v2 = encode_v2(data.records, assignments if category is Category.text_generation else None)
    files[v2_path(category)] = v2
    files[v2_path(category) + ".gz"] = _gzip(v2)
    if data.legacy is not None:
        v1 = encode_v1(data.legacy)
        files[v1_path(category)] = v1
        files[v1_path(category) + ".gz"] = _gzip(v1)
    aliases = {}
    if data.legacy is not None and category is not Category.text_generation:
        # v1 keys that spell a record's name otherwise: reads resolve both
        aliases = {key: name for name, key in legacy_keys(data.legacy).items()}
    block = {
        "count": len(data.records),
        "legacy_count": None if data.legacy is None else len(data.legacy),
        "aliases": aliases,
        "metadata": converter.unstructure(data.metadata),
        "legacy_metadata": converter.unstructure(data.legacy_metadata),
    }
    key = id(data)
    _encoded[key] = (
        weakref.ref(data, lambda _ref: _encoded.pop(key, None)),
        files,
        block,
        assignments,
    )
    return files, block


def snapshot_files(dataset: Dataset) -> tuple[dict[str, bytes], Json]:
    """Every file of a snapshot of this dataset, plus the manifest's per-category block."""
    files: dict[str, bytes] = {}
    categories: Json = {}
    for category in ALL_CATEGORIES:
        category_files, block = _category_files(
            category, dataset.categories[category], dataset.catalogs.assignments
        )
        files.update(category_files)
        categories[category.value] = block
    if not dataset.text_toolkit.empty:
        # only once there is something to keep: a dataset without toolkit data publishes the
        # same files as before the toolkit existed
        files.update(dataset.text_toolkit.snapshot_files())
    files.update(catalog_files(dataset.catalogs))
    return files, {"categories": categories}


def publish_dataset(
    store: SnapshotStore, dataset: Dataset, dataset_version: int | None = None
) -> Snapshot:
    """Publish the dataset; `dataset_version` lets the writer tell whether CURRENT is behind."""
    files, extra = snapshot_files(dataset)
    if dataset_version is not None:
        extra["dataset_version"] = dataset_version
    return store.publish(files, extra)


def dataset_from_snapshot(snapshot: Snapshot) -> Dataset:
    """Rebuild the dataset a snapshot was published from (v2 records, v1 views, metadata)."""
    categories: dict[Category, CategoryData] = {}
    blocks = snapshot.manifest["categories"]
    for category in ALL_CATEGORIES:
        raw = json.loads(snapshot.files[v2_path(category)])
        records = {
            name: structure_record(category, stored_fields(rec)) for name, rec in raw.items()
        }
        v1 = snapshot.files.get(v1_path(category))
        legacy = None if v1 is None else json.loads(v1)
        block = blocks[category.value]
        categories[category] = CategoryData(
            records=records,
            legacy=legacy,
            metadata=converter.structure(block["metadata"], CategoryMetadata),
            legacy_metadata=converter.structure(block["legacy_metadata"], CategoryMetadata),
        )
    return Dataset(
        categories=categories,
        text_toolkit=ToolkitStores.from_snapshot_files(snapshot.files),
        catalogs=catalogs_from_snapshot(snapshot),
    )


def _read_json(path: Path, problems: list[Problem]) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        problems.append(Problem(path.name, None, None, f"unreadable JSON: {exc}", fatal=True))
        return None


def _import_category(root: Path, category: Category, problems: list[Problem]) -> tuple[Any, Any]:
    """(v2 records, v1 view) of one category from a legacy directory; empty when absent."""
    info = CATEGORY_INFO[category]
    if category is Category.text_generation:
        csv_path, db_path = root / "text" / "models.csv", root / "text" / "db.json"
        if csv_path.is_file():
            records, found = convert_models_csv(
                csv_path.read_text(encoding="utf-8"), "text/models.csv"
            )
        elif db_path.is_file():
            records, found = convert_db_json(_read_json(db_path, problems), "text/db.json")
        else:
            records, found = {}, []
        problems.extend(found)
        return records, legacy_view(category, records)
    if not info.has_legacy:
        return {}, None
    path = root / "image" / str(info.legacy_file)
    if not path.is_file():
        return {}, {}
    raw = _read_json(path, problems)
    if raw is None:
        return {}, {}
    records, kept, found = convert_legacy_json(category, raw, f"image/{info.legacy_file}")
    problems.extend(found)
    return records, kept


def import_legacy_dir(root: Path, now: int | None = None) -> tuple[Dataset, list[Problem]]:
    """Read a directory laid out like the GitHub repos (image/*.json, text/models.csv or db.json)."""
    if not root.is_dir():
        raise FileNotFoundError(f"legacy directory not found: {root}")
    now = int(time.time()) if now is None else now
    problems: list[Problem] = []
    categories: dict[Category, CategoryData] = {}
    for category in ALL_CATEGORIES:
        records, view = _import_category(root, category, problems)
        categories[category] = CategoryData(
            records=records,
            legacy=view,
            metadata=CategoryMetadata.initial(category, now, len(records)),
            legacy_metadata=CategoryMetadata.initial(
                category, now, 0 if view is None else len(view)
            ),
        )
    return Dataset(categories=categories), problems
