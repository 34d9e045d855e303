"""The whole dataset in memory, its snapshot files, and importing a legacy directory into it."""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
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
from horde_model_records.convert import (
    generate_legacy,
    legacy_keys,
    merge_legacy,
    text_v1_view,
)
from horde_model_records.metadata import CategoryMetadata
from horde_model_records.records import TextGenerationRecord
from horde_model_records.serde import get_converter
from horde_model_records.served import read_fields, stored_fields
from horde_model_records.text import db_base_json, variant_names

from . import gzipped
from .catalogs import Catalogs, catalog_files, catalogs_from_snapshot
from .category_files import FileEncoder, ReadPrevious
from .json_members import json_members, loads_object
from .layered import Layered, MadeWhenAsked
from .read_index import index_path
from .snapshot import (
    LARGE_FILE,
    Snapshot,
    SnapshotError,
    SnapshotFiles,
    SnapshotStore,
    UnlinkableFile,
    sha256_hex,
    v1_path,
    v2_path,
)
from .text_toolkit import ToolkitStores

logger = logging.getLogger(__name__)

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


class TextView(MadeWhenAsked[Json]):
    """The db.json view of text records (`text_v1_view`), generated entry by entry when asked:
    the writer then holds the view's keys, not its entries."""

    def __init__(self, records: Mapping[str, ModelRecord]) -> None:
        #: v1 key -> the record it comes from; when two records share a key, the later one's
        #: entry is kept in the first one's place, as text_v1_view does
        names: dict[str, str] = {}
        for name in records:
            for variant in variant_names(name):
                names[variant] = name
        super().__init__(names)
        self._records = records

    def __getitem__(self, key: str) -> Json:
        record = self._records[self._names[key]]
        assert isinstance(record, TextGenerationRecord)
        return {**db_base_json(record), "name": key}


def _legacy_keys(view: Mapping[str, Json]) -> dict[str, str]:
    """`legacy_keys` of a v1 view; for one over stored rows, from the aliases the store found
    when it loaded, and the entries changed since (not by reading every entry)."""
    layered = Layered.of(view)
    known: dict[str, str] | None = getattr(layered.origin, "aliases", None)
    if known is None:
        return legacy_keys(view)
    keys = {n: k for n, k in known.items() if k in layered and k not in layered.changed}
    keys.update(legacy_keys({k: v for k, v in layered.changed.items() if k in layered}))
    return keys


def _with_records(
    dataset: Dataset,
    category: Category,
    records: Layered[ModelRecord],
    operation: str,
    name: str,
    now: int,
    legacy_record: Json | None = None,
) -> Dataset:
    data = dataset.categories[category]
    legacy: Mapping[str, Json] | None = data.legacy
    legacy_meta = data.legacy_metadata
    if legacy is not None:
        legacy = Layered.of(legacy)
        if category is Category.text_generation:
            legacy = _text_view_after(data.records.get(name), records.get(name), legacy, records)
        else:
            key = _legacy_keys(legacy).get(name, name)  # the v1 key may spell the name otherwise
            if operation == "delete":
                legacy = legacy.without(key) if key in legacy else legacy
            elif legacy_record is not None:
                # a legacy-canonical write: the submitted legacy record is the v1 entry, verbatim
                legacy = legacy.set(key, legacy_record)
            else:
                generated = generate_legacy(category, records[name])
                legacy = legacy.set(key, merge_legacy(category, legacy.get(key), generated))
        legacy_meta = legacy_meta.after_operation(operation, name, now, len(legacy))
    changed = CategoryData(
        records=records,
        legacy=legacy,
        metadata=data.metadata.after_operation(operation, name, now, len(records)),
        legacy_metadata=legacy_meta,
    )
    return evolve(dataset, categories={**dataset.categories, category: changed})


def _text_view_after(
    old: ModelRecord | None,
    new: ModelRecord | None,
    view: Layered[Json],
    records: Mapping[str, ModelRecord],
) -> Mapping[str, Json]:
    """The db.json view after one record changed from `old` to `new` (either may be None): the
    changed record's entries are generated, every other entry is kept as is, in the order
    `text_v1_view` gives. Generating all of them costs the whole category on every apply."""
    old_keys = [] if old is None else list(text_v1_view([old]))
    new_entries = {} if new is None else text_v1_view([new])
    # an update's entries have the same keys (they follow from the name), so it keeps its place
    same_keys = old is None or new is None or new_entries.keys() == set(old_keys)
    meets = any(k in view and k not in old_keys for k in new_entries)
    if meets or not same_keys or not all(k in view for k in old_keys):
        return text_v1_view(records.values())  # names of two records meet: the slow, sure way
    for key in old_keys if new is None else ():
        view = view.without(key)
    for key, entry in new_entries.items():
        view = view.set(key, entry)  # a new record's entries go last, as the record does
    return view


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
    before = Layered.of(dataset.categories[category].records)
    operation = "update" if record.name in before else "create"
    records = before.set(record.name, record)
    return _with_records(dataset, category, records, operation, record.name, now, legacy_record)


def delete_record(dataset: Dataset, category: Category, name: str, now: int) -> Dataset:
    """The dataset without one record; raises KeyError when it is not there."""
    records = Layered.of(dataset.categories[category].records).without(name)
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
    return json.dumps(dict(view), ensure_ascii=False, indent=4).encode()


#: per category and version: the encoder of its file, which keeps the layout of its last publish
_encoders: dict[tuple[Category, str], FileEncoder] = {}


def _encoder(category: Category, version: str) -> FileEncoder:
    key = (category, version)
    if key not in _encoders:
        indexed = index_path(category) if version == "v2" else None
        _encoders[key] = FileEncoder(indent=version == "v1", index_path=indexed)
    return _encoders[key]


@frozen
class _Encoding:
    """A category's published files: the bytes of the small ones (a large one is None: the
    snapshot keeps it, and the next publish links it), every file's sha256 and size, the
    manifest block, and the guidance assignments its text reads showed."""

    files: dict[str, bytes | None]
    hashes: dict[str, str]
    sizes: dict[str, int]
    block: Json
    shown: Json | None

    @classmethod
    def of(
        cls, files: Mapping[str, bytes], hashes: dict[str, str], block: Json, shown: Json | None
    ) -> _Encoding:
        return cls(
            files={p: None if len(d) > LARGE_FILE else d for p, d in files.items()},
            hashes=hashes,
            sizes={p: len(d) for p, d in files.items()},
            block=block,
            shown=shown,
        )


#: id(CategoryData) -> (a weak reference to it, its encoding): a dataset after an apply shares
#: every untouched CategoryData with the one before, so publishing re-encodes (and re-gzips)
#: only the categories a change touched, and links the others' large files from the snapshot
_encoded: dict[int, tuple[weakref.ref[CategoryData], _Encoding]] = {}


def _category_files(
    category: Category,
    data: CategoryData,
    assignments: Json,
    previous: ReadPrevious,
    fresh: bool = False,
) -> tuple[Mapping[str, bytes | None], _Encoding]:
    """`assignments`: the guidance catalog's, which text reads show (other categories ignore it).
    `previous`: reads a file of the live snapshot, for the entries a change did not touch.
    `fresh`: every file's bytes, encoded again where the last encoding did not keep them."""
    shown = assignments if category is Category.text_generation else None
    cached = _encoded.get(id(data))
    if cached is not None and cached[0]() is data and cached[1].shown == shown:
        if not fresh or None not in cached[1].files.values():
            return cached[1].files, cached[1]

    v2 = _encoder(category, "v2")
    v2_entry = _v2_entry(category, shown)
    files, index = v2.encode(v2_path(category), data.records, v2_entry, shown, previous)
    assert index is not None
    files[index_path(category)] = index.encode()
    v1 = _encoder(category, "v1") if data.legacy is not None else None
    if v1 is not None and data.legacy is not None:
        files.update(v1.encode(v1_path(category), data.legacy, _same, None, previous)[0])
    hashes = dict(zip(files, gzipped.pool_map(sha256_hex, list(files.values())), strict=True))
    for version, encoder in (("v2", v2), ("v1", v1)):
        if encoder is not None:
            path = v2_path(category) if version == "v2" else v1_path(category)
            small = len(files[path]) <= LARGE_FILE
            encoder.published(
                hashes[path], files[path], small, hashes.get(index_path(category), "")
            )
    encoding = _Encoding.of(files, hashes, category_block(category, data), shown)
    _remember_encoding(data, encoding)
    return files, encoding


def _v2_entry(category: Category, shown: Json | None) -> Callable[[str, ModelRecord], Json]:
    """A record as its v2 read shows it (text: with the guidance assignment `shown` gives)."""

    def entry(name: str, record: ModelRecord) -> Json:
        return read_fields(category, unstructure_record(record), (shown or {}).get(name))

    return entry


def fresh_category_files(
    category: Category, data: CategoryData, assignments: Json, versions: str = "v2 v1"
) -> tuple[dict[str, bytes], dict[str, str]]:
    """A category's files (of `versions`) and their sha256, encoded afresh by encoders of their
    own: what `publish_dataset` writes for a new dataset, without the writer's layouts."""
    files: dict[str, bytes] = {}
    if "v2" in versions:
        shown = assignments if category is Category.text_generation else None
        encoder = FileEncoder(indent=False, index_path=index_path(category))
        v2, index = encoder.encode(
            v2_path(category), data.records, _v2_entry(category, shown), shown, _nothing_previous
        )
        assert index is not None
        files.update(v2)
        files[index_path(category)] = index.encode()
    if "v1" in versions and data.legacy is not None:
        encoder = FileEncoder(indent=True)
        files.update(
            encoder.encode(v1_path(category), data.legacy, _same, None, _nothing_previous)[0]
        )
    return files, dict(zip(files, gzipped.pool_map(sha256_hex, list(files.values())), strict=True))


def category_block(category: Category, data: CategoryData) -> Json:
    """A category's block of the snapshot manifest: counts, v1 aliases, metadata."""
    aliases = {}
    if data.legacy is not None and category is not Category.text_generation:
        # v1 keys that spell a record's name otherwise: reads resolve both
        aliases = {key: name for name, key in sorted(_legacy_keys(data.legacy).items())}
    return {
        "count": len(data.records),
        "legacy_count": None if data.legacy is None else len(data.legacy),
        "aliases": aliases,
        "metadata": get_converter().unstructure(data.metadata),
        "legacy_metadata": get_converter().unstructure(data.legacy_metadata),
    }


def _same(_key: str, value: Json) -> Json:
    return value


def snapshot_files(dataset: Dataset) -> tuple[dict[str, bytes], Json]:
    """Every file of a snapshot of this dataset, plus the manifest's per-category block."""
    files, _hashes, _sizes, extra = _snapshot_files(dataset, _nothing_previous, fresh=True)
    return {p: d for p, d in files.items() if d is not None}, extra


def _nothing_previous(_path: str, _sha256: str) -> bytes | None:
    return None


def _snapshot_files(
    dataset: Dataset, previous: ReadPrevious, fresh: bool = False
) -> tuple[dict[str, bytes | None], dict[str, str], dict[str, int], Json]:
    files: dict[str, bytes | None] = {}
    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    categories: Json = {}
    for category in ALL_CATEGORIES:
        category_files, encoding = _category_files(
            category, dataset.categories[category], dataset.catalogs.assignments, previous, fresh
        )
        files.update(category_files)
        hashes.update(encoding.hashes)
        sizes.update(encoding.sizes)
        categories[category.value] = encoding.block
    if not dataset.text_toolkit.empty:
        # only once there is something to keep: a dataset without toolkit data publishes the
        # same files as before the toolkit existed
        files.update(dataset.text_toolkit.snapshot_files())
    files.update(catalog_files(dataset.catalogs))
    return files, hashes, sizes, {"categories": categories}


def _live_files(store: SnapshotStore) -> ReadPrevious:
    """Reads a file of the live snapshot when it still has the given digest, else None (also
    when the snapshot does not verify: then nothing is copied from it)."""
    live: list[Snapshot | None] = []

    def read(path: str, sha256: str) -> bytes | None:
        try:
            if not live:
                live.append(None)  # until it verifies, and for good when it does not
                live[0] = store.read_current()
            snapshot = live[0]
            listed = None if snapshot is None else snapshot.manifest["files"].get(path)
            if snapshot is None or listed is None or listed["sha256"] != sha256:
                return None
            files = snapshot.files
            # read, not kept: a publish (or the preparing of one) reads each large file once
            return files.read(path, keep=False) if isinstance(files, SnapshotFiles) else files[path]
        except (SnapshotError, OSError) as exc:
            logger.warning("encoding %s afresh: the live copy does not verify: %s", path, exc)
            return None

    return read


def adopt_snapshot(dataset: Dataset, snapshot: Snapshot) -> None:
    """Take `snapshot`'s files as the encoding of `dataset`, the dataset it was published from
    (the writer at start, when the live snapshot holds its store's version): the next publish
    then encodes only the categories and entries a change touches. Large files are not read:
    the next publish links them, or copies their untouched entries."""
    listing = snapshot.manifest["files"]
    blocks = snapshot.manifest.get("categories", {})
    for category, data in dataset.categories.items():
        paths = [v2_path(category)]
        if data.legacy is not None:
            paths.append(v1_path(category))
        paths += [p + ".gz" for p in paths]
        paths.append(index_path(category))  # a snapshot without it: encoded at the next publish
        block = blocks.get(category.value)
        if block is None or any(p not in listing for p in paths):
            continue
        shown = dataset.catalogs.assignments if category is Category.text_generation else None

        def small(path: str) -> bytes | None:
            return None if listing[path]["size"] > LARGE_FILE else snapshot.files[path]

        encoding = _Encoding(
            files={p: small(p) for p in paths},
            hashes={p: str(listing[p]["sha256"]) for p in paths},
            sizes={p: int(listing[p]["size"]) for p in paths},
            block=dict(block),
            shown=shown,
        )
        _remember_encoding(data, encoding)
        records = Layered.of(data.records)
        data_v2 = v2_path(category)
        _encoder(category, "v2").adopt(
            records.origin,
            shown,
            encoding.hashes[data_v2],
            small(data_v2),
            encoding.hashes[index_path(category)],
        )
        if data.legacy is not None:
            legacy, data_v1 = Layered.of(data.legacy), v1_path(category)
            _encoder(category, "v1").adopt(
                legacy.origin, None, encoding.hashes[data_v1], small(data_v1)
            )


def prepare_publish(dataset: Dataset, store: SnapshotStore) -> None:
    """After `adopt_snapshot`: find what the next publish copies from the live snapshot now, and
    compress its pieces, so that the first apply after a start costs what later ones do."""
    previous = _live_files(store)
    for category, data in dataset.categories.items():
        _encoder(category, "v2").prime(v2_path(category), previous)
        if data.legacy is not None:
            _encoder(category, "v1").prime(v1_path(category), previous)


def _remember_encoding(data: CategoryData, encoding: _Encoding) -> None:
    key = id(data)
    _encoded[key] = (weakref.ref(data, lambda _ref: _encoded.pop(key, None)), encoding)


def publish_dataset(
    store: SnapshotStore, dataset: Dataset, dataset_version: int | None = None
) -> Snapshot:
    """Publish the dataset; `dataset_version` lets the writer tell whether CURRENT is behind."""
    previous = _live_files(store)
    files, hashes, sizes, extra = _snapshot_files(dataset, previous)
    if dataset_version is not None:
        extra["dataset_version"] = dataset_version
    try:
        return store.publish(files, extra, hashes=hashes, sizes=sizes)
    except UnlinkableFile as exc:
        # the live snapshot lost (or damaged) a file this dataset did not change: encode it again
        logger.warning("publishing every file again: %s", exc)
        files, hashes, sizes, _ = _snapshot_files(dataset, _live_files(store), fresh=True)
        return store.publish(files, extra, hashes=hashes, sizes=sizes)


def dataset_from_snapshot(snapshot: Snapshot) -> Dataset:
    """The dataset a snapshot was published from (v2 records, v1 views, metadata). Its
    categories are decoded when asked, each time, and not kept: the writer's first start
    imports them into its store one at a time, so it never holds the whole dataset."""
    return Dataset(
        categories=_SnapshotCategories(snapshot),
        text_toolkit=ToolkitStores.from_snapshot_files(snapshot.files),
        catalogs=catalogs_from_snapshot(snapshot),
    )


class _SnapshotCategories(Mapping[Category, CategoryData]):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def __getitem__(self, category: Category) -> CategoryData:
        """One category decoded; member by member, so that a thread doing it lets the event
        loop take its turns (see json_members)."""
        files = self._snapshot.files
        records = {
            name: structure_record(category, stored_fields(rec))
            for name, rec in json_members(files[v2_path(category)])
        }
        legacy: Mapping[str, Json] | None = None
        if category is Category.text_generation:
            legacy = TextView(records)  # what its v1 file was generated from
        elif v1_path(category) in files:
            legacy = loads_object(files[v1_path(category)])
        block = self._snapshot.manifest["categories"][category.value]
        return CategoryData(
            records=records,
            legacy=legacy,
            metadata=get_converter().structure(block["metadata"], CategoryMetadata),
            legacy_metadata=get_converter().structure(block["legacy_metadata"], CategoryMetadata),
        )

    def __iter__(self) -> Iterator[Category]:
        return iter(ALL_CATEGORIES)

    def __len__(self) -> int:
        return len(ALL_CATEGORIES)


def _read_json(path: Path, problems: list[Problem]) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        problems.append(Problem(path.name, None, None, f"unreadable JSON: {exc}", fatal=True))
        return None


def _import_category(
    root: Path, category: Category, problems: list[Problem], text_view: bool
) -> tuple[Any, Any]:
    """(v2 records, v1 view) of one category from a legacy directory; empty when absent.
    `text_view`: the text category's view built now (else generated when read: `TextView`)."""
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
        return records, legacy_view(category, records) if text_view else TextView(records)
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


def import_category(
    root: Path, category: Category, now: int, problems: list[Problem], text_view: bool = True
) -> CategoryData:
    """One category of a legacy directory (see import_legacy_dir); its problems are appended."""
    records, view = _import_category(root, category, problems, text_view)
    return CategoryData(
        records=records,
        legacy=view,
        metadata=CategoryMetadata.initial(category, now, len(records)),
        legacy_metadata=CategoryMetadata.initial(category, now, 0 if view is None else len(view)),
    )


def import_legacy_dir(root: Path, now: int | None = None) -> tuple[Dataset, list[Problem]]:
    """Read a directory laid out like the GitHub repos (image/*.json, text/models.csv or db.json)."""
    if not root.is_dir():
        raise FileNotFoundError(f"legacy directory not found: {root}")
    now = int(time.time()) if now is None else now
    problems: list[Problem] = []
    categories = {c: import_category(root, c, now, problems) for c in ALL_CATEGORIES}
    return Dataset(categories=categories), problems
