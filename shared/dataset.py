"""The whole dataset in memory, its snapshot files, and importing a legacy directory into it."""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Mapping
from itertools import accumulate
from json.encoder import encode_basestring
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
from horde_model_records.convert import legacy_keys, text_v1_view
from horde_model_records.metadata import CategoryMetadata
from horde_model_records.serde import converter
from horde_model_records.served import read_fields, stored_fields

from . import gzipped
from .catalogs import Catalogs, catalog_files, catalogs_from_snapshot
from .json_indent import Indent4, dumps_compact
from .json_members import json_members, loads_object
from .read_index import NO_FACTS, Facts, RecordIndex, facts_of, index_path
from .snapshot import (
    LARGE_FILE,
    Snapshot,
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
        elif category is Category.text_generation:
            legacy = _text_view_after(data.records.get(name), records.get(name), legacy, records)
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


def _text_view_after(
    old: ModelRecord | None,
    new: ModelRecord | None,
    view: Mapping[str, Json],
    records: Mapping[str, ModelRecord],
) -> dict[str, Json]:
    """The db.json view after one record changed from `old` to `new` (either may be None): the
    changed record's entries are generated, every other entry is kept as is, in the order
    `text_v1_view` gives. Generating all of them costs the whole category on every apply."""
    old_entries = [] if old is None else list(text_v1_view([old]))
    new_entries = {} if new is None else text_v1_view([new])
    others = view.keys() - set(old_entries)
    if others & new_entries.keys() or not all(k in view for k in old_entries):
        return text_v1_view(records.values())  # names of two records meet: the slow, sure way
    out: dict[str, Json] = {}
    first = old_entries[0] if old_entries else None
    for key, entry in view.items():
        if key == first:
            out.update(new_entries)  # an update keeps the record's place
        elif key not in old_entries:
            out[key] = entry
    if first is None:
        out.update(new_entries)  # a new record goes last, as it does in the records
    return out


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


_compact = dumps_compact
_NL_PAD = "\n    "


def _gzip(data: bytes) -> bytes:
    return gzipped.gzip_bytes(data)


class _Entries:
    """The encoded entries of one category file, kept between publishes: an entry is encoded
    again only when its value is another object than last time (records and v1 entries are
    never mutated, so the same object means the same bytes). The file is the entries joined;
    it is byte-identical to `encode_v2` / `encode_v1` of the whole mapping. An `indexed` file
    (v2) also keeps each entry's index facts, for the record index published beside it."""

    def __init__(self, indent: bool, indexed: bool = False) -> None:
        self.indent = indent
        self.indexed = indexed
        self.context: object = None  # what else the bytes depend on (text: guidance assignments)
        # `json.dumps(obj, indent=4)` writes an object as "{" NL+pad item ("," NL+pad item)* NL "}"
        self.sep = b",\n    " if indent else b","
        self.open, self.close = (b"{\n    ", b"\n}") if indent else (b"{", b"}")
        #: key -> (value, the entry's part of the file, bytes before its JSON value, its facts)
        self.cache: dict[str, tuple[object, bytes, int, Facts]] = {}
        self.gz = gzipped.PieceCache()
        self.indent4 = Indent4(_NL_PAD)  # reuses the text a v1 text entry shares with the last

    def _encode(self, key: str, value: Any) -> tuple[bytes, int, Facts]:
        # one encoder for every entry (json.dumps builds one per call) and the C string encoder
        # for the key; the v1 entries' indentation without the pure-Python indent encoder
        k = encode_basestring(key).encode()
        if self.indent:
            part = self.sep + k + b": " + self.indent4.encode(value).encode()
            return part, len(self.sep) + len(k) + 2, NO_FACTS
        encoded = _compact(value).encode()
        facts = facts_of(value, encoded) if self.indexed else NO_FACTS
        return self.sep + k + b":" + encoded, len(self.sep) + len(k) + 1, facts

    def parts(self, items: Mapping[str, Any], plain: Any, context: object = None) -> list[bytes]:
        """The file as a list of parts, one per entry (`plain(key, value)` turns an entry into
        JSON data); a change of `context` encodes every entry again."""
        cache: dict[str, tuple[object, bytes, int, Facts]] = {}
        out: list[bytes] = []
        old = self.cache if context == self.context else {}
        self.context = context
        for key, value in items.items():
            hit = old.get(key)
            if hit is None or hit[0] is not value:
                hit = (value, *self._encode(key, plain(key, value)))
            cache[key] = hit
            out.append(hit[1])
        self.cache = cache
        if not out:
            return [b"{}"]
        out[0] = self.open + out[0][len(self.sep) :]
        out.append(self.close)
        return out

    def index(self) -> RecordIndex:
        """The record index of the file the last `parts` call made (the opening part is as long
        as the separator it replaces, in the compact layout an indexed file has)."""
        entries = self.cache.values()
        ends = list(accumulate(len(part) for _value, part, _head, _facts in entries))
        starts = [end - len(e[1]) + e[2] for end, e in zip(ends, entries, strict=True)]
        return RecordIndex.of(list(self.cache), starts, ends, [e[3] for e in entries])

    def files(
        self, path: str, items: Mapping[str, Any], plain: Any, context: object = None
    ) -> dict[str, bytes]:
        parts = self.parts(items, plain, context)
        return {path: b"".join(parts), path + ".gz": self.gz.gzip(parts)}


#: per category: the encoded v2 and v1 entries of its last publish (see _Entries)
_entries: dict[tuple[Category, str], _Entries] = {}


def _entries_of(category: Category, version: str) -> _Entries:
    key = (category, version)
    if key not in _entries:
        _entries[key] = _Entries(indent=version == "v1", indexed=version == "v2")
    return _entries[key]


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
    category: Category, data: CategoryData, assignments: Json, fresh: bool = False
) -> tuple[Mapping[str, bytes | None], _Encoding]:
    """`assignments`: the guidance catalog's, which text reads show (other categories ignore it).
    `fresh`: every file's bytes, encoded again where the last encoding did not keep them."""
    shown = assignments if category is Category.text_generation else None
    cached = _encoded.get(id(data))
    if cached is not None and cached[0]() is data and cached[1].shown == shown:
        if not fresh or None not in cached[1].files.values():
            return cached[1].files, cached[1]

    def v2_entry(name: str, record: ModelRecord) -> Json:
        return read_fields(category, unstructure_record(record), (shown or {}).get(name))

    v2 = _entries_of(category, "v2")
    files = v2.files(v2_path(category), data.records, v2_entry, shown)
    files[index_path(category)] = v2.index().encode()
    if data.legacy is not None:
        v1 = _entries_of(category, "v1").files(v1_path(category), data.legacy, _same)
        files.update(v1)
    hashes = dict(zip(files, gzipped.pool_map(sha256_hex, list(files.values())), strict=True))
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
    encoding = _Encoding.of(files, hashes, block, shown)
    _remember_encoding(data, encoding)
    return files, encoding


def _same(_key: str, value: Json) -> Json:
    return value


def snapshot_files(dataset: Dataset) -> tuple[dict[str, bytes], Json]:
    """Every file of a snapshot of this dataset, plus the manifest's per-category block."""
    files, _hashes, _sizes, extra = _snapshot_files(dataset, fresh=True)
    return {p: d for p, d in files.items() if d is not None}, extra


def _snapshot_files(
    dataset: Dataset, fresh: bool = False
) -> tuple[dict[str, bytes | None], dict[str, str], dict[str, int], Json]:
    files: dict[str, bytes | None] = {}
    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    categories: Json = {}
    for category in ALL_CATEGORIES:
        category_files, encoding = _category_files(
            category, dataset.categories[category], dataset.catalogs.assignments, fresh
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


def adopt_snapshot(dataset: Dataset, snapshot: Snapshot) -> None:
    """Take `snapshot`'s files as the encoding of `dataset`, the dataset it was published from
    (the writer at start, when the live snapshot holds its store's version): the next publish
    then encodes only the categories a change touches, not every category once more. Large
    files are not read: the next publish links them."""
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
        encoding = _Encoding(
            files={
                p: None if listing[p]["size"] > LARGE_FILE else snapshot.files[p] for p in paths
            },
            hashes={p: str(listing[p]["sha256"]) for p in paths},
            sizes={p: int(listing[p]["size"]) for p in paths},
            block=dict(block),
            shown=shown,
        )
        _remember_encoding(data, encoding)


def _remember_encoding(data: CategoryData, encoding: _Encoding) -> None:
    key = id(data)
    _encoded[key] = (weakref.ref(data, lambda _ref: _encoded.pop(key, None)), encoding)


def publish_dataset(
    store: SnapshotStore, dataset: Dataset, dataset_version: int | None = None
) -> Snapshot:
    """Publish the dataset; `dataset_version` lets the writer tell whether CURRENT is behind."""
    files, hashes, sizes, extra = _snapshot_files(dataset)
    if dataset_version is not None:
        extra["dataset_version"] = dataset_version
    try:
        return store.publish(files, extra, hashes=hashes, sizes=sizes)
    except UnlinkableFile as exc:
        # the live snapshot lost (or damaged) a file this dataset did not change: encode it again
        logger.warning("publishing every file again: %s", exc)
        files, hashes, sizes, _ = _snapshot_files(dataset, fresh=True)
        return store.publish(files, extra, hashes=hashes, sizes=sizes)


def dataset_from_snapshot(snapshot: Snapshot) -> Dataset:
    """Rebuild the dataset a snapshot was published from (v2 records, v1 views, metadata).

    The writer imports it on its first start while the server already answers: files are
    decoded member by member, so the event loop keeps its turns (see json_members)."""
    categories: dict[Category, CategoryData] = {}
    blocks = snapshot.manifest["categories"]
    for category in ALL_CATEGORIES:
        records = {
            name: structure_record(category, stored_fields(rec))
            for name, rec in json_members(snapshot.files[v2_path(category)])
        }
        v1 = snapshot.files.get(v1_path(category))
        legacy = None if v1 is None else loads_object(v1)
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
