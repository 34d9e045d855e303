"""A loaded snapshot, prepared for reading: response bodies, per-record bytes, search indexes.

Everything here is computed once per snapshot, off the event loop; requests only look things up.
A category's view is made from its file and the record index the writer published beside it
(shared.read_index): positions, spans and filter postings are loaded, not computed, and a record
is cut from the file when a request needs it. A category whose files did not change since the
previous snapshot keeps its prepared view.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import mmap
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, overload

from attrs import define, field, frozen

from horde_model_records import (
    ALL_CATEGORIES,
    RECORD_TYPES,
    Category,
    has_backend_prefix,
    is_quantized,
)
from horde_model_records.records import wire_field_names
from shared.read_index import (
    GUIDANCE_INSIDE,
    GUIDANCE_LAST,
    NO_GUIDANCE,
    RecordIndex,
    index_path,
)
from shared.snapshot import (
    LARGE_FILE,
    Snapshot,
    SnapshotError,
    static_etag,
    v1_path,
    v2_path,
)

from .postings import Postings
from .wire import BACKENDS

if TYPE_CHECKING:
    from .catalog_view import CatalogView
    from .sorting import SortOrder, Unsortable
    from .text_toolkit import ToolkitSlot

logger = logging.getLogger(__name__)

Json = dict[str, Any]

_NEEDLE_MEMO = 256  # name_contains answers remembered per category and snapshot


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@frozen
class Body:
    """A response body prepared once: its bytes, an optional gzip copy and a strong ETag."""

    data: bytes
    gz: bytes | None
    etag: str
    gz_tag: str | None = None  # the gzip copy's own ETag, when it has one

    @property
    def gz_etag(self) -> str:
        # a different content-coding is a different representation: a different strong ETag
        return self.gz_tag or self.etag[:-1] + '-gzip"'

    @classmethod
    def of(cls, data: bytes, gz: bytes | None = None) -> Body:
        return cls(data=data, gz=gz, etag=etag_of(data))

    @classmethod
    def of_file(cls, snapshot: Snapshot, path: str) -> Body | FileBody:
        """A snapshot file's body with the ETags a static file server gives the same bytes
        (shared.snapshot.static_etag), so nginx serving the file answers like the service.
        A large file on disk is sent from there (FileBody), not held."""
        listing = snapshot.manifest["files"]
        meta, gz_meta = listing[path], listing.get(path + ".gz")
        etag = static_etag(meta["sha256"], meta["size"])
        gz_tag = None if gz_meta is None else static_etag(gz_meta["sha256"], gz_meta["size"])
        on_disk = snapshot.path(path)
        if on_disk is not None and meta["size"] > LARGE_FILE:
            gz_path = snapshot.path(path + ".gz")
            return FileBody(
                file=SnapshotFile.open(on_disk, meta["size"]),
                gz=None if gz_path is None else SnapshotFile.open(gz_path, gz_meta["size"]),
                etag=etag,
                gz_tag=gz_tag,
            )
        return cls(
            data=snapshot.files[path],
            gz=None if gz_meta is None else snapshot.files[path + ".gz"],
            etag=etag,
            gz_tag=gz_tag,
        )


@frozen
class SnapshotFile:
    """A verified snapshot file kept open: it can be sent (sendfile) while its snapshot lives,
    and after the directory is pruned too, and mapped for reading parts of it."""

    handle: BinaryIO
    size: int

    @classmethod
    def open(cls, path: Path, size: int) -> SnapshotFile:
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot open a verified file: {exc}") from exc
        file = cls(handle=handle, size=size)
        # closed when the last view (or response) using it is dropped: which one is last is
        # not known where a view is replaced, as requests may still be sending the file
        weakref.finalize(file, handle.close)
        return file

    def mapped(self) -> mmap.mmap:
        """The file mapped read-only: slices are read from the page cache, shared by every
        process serving the snapshot; only the pages read count in this one's memory."""
        return mmap.mmap(self.handle.fileno(), 0, access=mmap.ACCESS_READ)


@frozen
class FileBody:
    """A large category file (and its gzip copy) answered from disk, with Body's ETags."""

    file: SnapshotFile
    gz: SnapshotFile | None
    etag: str
    gz_tag: str | None = None

    @property
    def gz_etag(self) -> str:
        return self.gz_tag or self.etag[:-1] + '-gzip"'


@frozen
class Candidate:
    """One record as search sees it (no parsed record is kept: `record` parses its bytes)."""

    category: Category
    name: str
    data: bytes  # the record's JSON bytes as a single-model read shows them
    #: search shows text records without their guidance status (as upstream): where `data` has
    #: it (read_index.GUIDANCE_LAST: its last member, where reads add it, cut off there)
    guidance: int = NO_GUIDANCE

    @property
    def record(self) -> Json:
        value: Json = json.loads(self.data)
        return value

    @property
    def listed(self) -> bytes:
        """The record's bytes in a search envelope."""
        return _listed(self.data, self.guidance)


def _listed(data: bytes, guidance: int) -> bytes:
    """A record's bytes as a search shows them: without its guidance status (see Candidate)."""
    if guidance == GUIDANCE_LAST:
        return data[: data.rfind(b',"guidance":')] + b"}"
    if guidance == GUIDANCE_INSIDE:
        record: Json = json.loads(data)
        return dumps({k: v for k, v in record.items() if k != "guidance"})
    return data


class Candidates(Sequence[Candidate]):
    """A category's records in file order, each made from its span of the file when asked for:
    a view holds the file and the index, not a second copy of every record."""

    def __init__(self, category: Category, data: bytes | mmap.mmap, index: RecordIndex) -> None:
        self._category = category
        self._data = data
        self._index = index
        self._range = range(len(index.names))

    def __len__(self) -> int:
        return len(self._range)

    @property
    def names(self) -> list[str]:
        """Every record's name, in file order (no candidate is made)."""
        return self._index.names

    @overload
    def __getitem__(self, pos: int) -> Candidate: ...

    @overload
    def __getitem__(self, pos: slice) -> Sequence[Candidate]: ...

    def __getitem__(self, pos: int | slice) -> Candidate | Sequence[Candidate]:
        if isinstance(pos, slice):
            return [self[p] for p in self._range[pos]]
        if pos < 0:
            pos += len(self._range)  # a negative position counts from the end
        if not 0 <= pos < len(self._range):
            raise IndexError("record position out of range")
        name = self._index.names[pos]
        return Candidate(self._category, name, self._bytes(pos), self._guidance(pos))

    def listed(self, pos: int) -> bytes:
        """`self[pos].listed`, without making the Candidate (a search page joins these)."""
        return _listed(self._bytes(pos), self._guidance(pos))

    def _bytes(self, pos: int) -> bytes:
        return self._data[self._index.spans[2 * pos] : self._index.spans[2 * pos + 1]]

    def _guidance(self, pos: int) -> int:
        index = self._index
        if pos in index.guidance_last:
            return GUIDANCE_LAST
        if index.guidance_inside and pos in index.guidance_inside:
            return GUIDANCE_INSIDE
        return NO_GUIDANCE


class Records(Mapping[str, Json]):
    """A category's records by name, each parsed from its bytes when asked for."""

    def __init__(self, candidates: Candidates, positions: Mapping[str, int]) -> None:
        self._candidates = candidates
        self.positions = positions  # name -> position

    def __getitem__(self, name: str) -> Json:
        return self._candidates[self.positions[name]].record

    def __iter__(self) -> Iterator[str]:
        return iter(self.positions)

    def __len__(self) -> int:
        return len(self.positions)


class ModelBodies(Mapping[str, Body]):
    """Single-model bodies by name (or another spelling of it), each prepared on first read."""

    def __init__(self, candidates: Candidates, positions: dict[str, int]) -> None:
        self._candidates = candidates
        self._positions = positions
        self._bodies: dict[int, Body] = {}

    def __getitem__(self, name: str) -> Body:
        pos = self._positions[name]
        body = self._bodies.get(pos)
        if body is None:
            body = self._bodies[pos] = Body.of(self._candidates[pos].data)
        return body

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._positions)


def _postings(index: dict[Any, list[int]]) -> dict[Any, Postings]:
    return {k: Postings.of(v) for k, v in index.items()}


@define
class CategoryView:
    category: Category
    v2: Body | FileBody
    v1: Body | FileBody | None  # None: no legacy view (no legacy format)
    models: Mapping[str, Body]  # single-model bodies by name
    candidates: Candidates  # dataset order
    records: Records  # by name, parsed when asked for
    fields: frozenset[str]  # wire fields of the category's record type
    #: (field, value) -> postings (positions and their mask) for nsfw, baseline, inpainting and
    #: the licensing filters (license_id, commercial_use, redistribution)
    by_value: dict[tuple[str, Any], Postings]
    by_tag: dict[str, Postings]  # tag -> positions
    #: text_generation: positions by backend prefix, of prefixed names, of quantized names
    by_backend: dict[str, Postings]
    prefixed: Postings
    #: every lowercased spelling of every name, one line per record: name_contains is a
    #: substring search in C over one string, not a loop over the records
    names_text: str
    line_starts: list[int]
    metadata: Json
    legacy_metadata: Json
    metadata_bodies: dict[str, Body]  # "v2", "v1", "v2/last_updated", "v1/last_updated"
    sort_cache: dict[tuple[str, bool], SortOrder | Unsortable]  # (sort_by, desc): sorting.py
    needle_cache: dict[str, Postings] = field(factory=dict)
    quantized_cache: list[Postings] = field(factory=list)
    aliases: Mapping[str, str] = field(factory=dict)  # v1 key -> record name (manifest)

    @property
    def quantized(self) -> Postings:
        """Positions of quantized text names: parsing every name is the dearest index, and only
        the `quantized` filter needs it, so it is built on that filter's first use (in a thread:
        search.aprepare)."""
        if not self.quantized_cache:
            found = [p for p, name in enumerate(self.candidates.names) if is_quantized(name)]
            self.quantized_cache.append(Postings(found))
        return self.quantized_cache[0]

    def name_positions(self, needle: str) -> list[int]:
        """Positions of the records one of whose spellings contains `needle` (lowercase)."""
        return self.name_index(needle).positions

    def name_index(self, needle: str) -> Postings:
        """name_positions as Postings, remembered per needle."""
        hit = self.needle_cache.get(needle)
        if hit is not None:
            return hit
        found: list[int] = []
        if not needle:
            found = list(range(len(self.candidates)))
        elif "\n" not in needle and "\0" not in needle:
            text, starts = self.names_text, self.line_starts
            at = text.find(needle)
            while at >= 0:
                line = bisect.bisect_right(starts, at) - 1
                found.append(line)
                if line + 1 >= len(starts):
                    break
                # the rest of this record's spellings cannot add it twice: skip to its next line
                at = text.find(needle, starts[line + 1])
        if len(self.needle_cache) >= _NEEDLE_MEMO:
            self.needle_cache.clear()
        postings = self.needle_cache[needle] = Postings(found)
        return postings

    @classmethod
    def build(cls, snapshot: Snapshot, category: Category) -> CategoryView:
        """The view of one category, from the record index the writer published beside its
        file (a snapshot without one is indexed by decoding the file)."""
        block = snapshot.manifest["categories"][category.value]
        v2 = Body.of_file(snapshot, v2_path(category))
        has_v1 = v1_path(category) in snapshot.manifest["files"]
        # records are cut from the file: a large one mapped, not read into this process
        v2_bytes = v2.file.mapped() if isinstance(v2, FileBody) else v2.data
        index = _record_index(snapshot, category)
        aliases: dict[str, str] = block.get("aliases", {})  # v1 key -> record name
        by_name = {name: pos for pos, name in enumerate(index.names)}
        positions = dict(by_name)
        for alias, name in aliases.items():
            if name in by_name:
                positions.setdefault(alias, by_name[name])  # the other spelling, same body
        candidates = Candidates(category, v2_bytes, index)
        names_text, line_starts = _names_text(index.names, aliases)
        by_backend: dict[str, list[int]] = {}
        prefixed: list[int] = []
        if category is Category.text_generation:
            for pos, name in enumerate(index.names):
                backend = name.partition("/")[0]
                if backend in BACKENDS and "/" in name:
                    by_backend.setdefault(backend, []).append(pos)
                if has_backend_prefix(name):
                    prefixed.append(pos)
        meta, legacy_meta = block["metadata"], block["legacy_metadata"]
        metadata_bodies = {
            "v2": Body.of(dumps(meta)),
            "v1": Body.of(dumps(legacy_meta)),
            "v2/last_updated": Body.of(
                dumps({"category": category.value, "last_updated": meta["last_updated"]})
            ),
            "v1/last_updated": Body.of(
                dumps({"category": category.value, "last_updated": legacy_meta["last_updated"]})
            ),
        }
        return cls(
            category=category,
            v2=v2,
            v1=Body.of_file(snapshot, v1_path(category)) if has_v1 else None,
            models=ModelBodies(candidates, positions),
            candidates=candidates,
            records=Records(candidates, by_name),
            fields=frozenset(wire_field_names(RECORD_TYPES[category])),
            by_value=_postings(index.by_value),
            by_tag=_postings(index.by_tag),
            by_backend=_postings(by_backend),
            prefixed=Postings.of(prefixed),
            names_text=names_text,
            line_starts=line_starts,
            metadata=meta,
            legacy_metadata=legacy_meta,
            metadata_bodies=metadata_bodies,
            sort_cache={},
            aliases=aliases,
        )


def _record_index(snapshot: Snapshot, category: Category) -> RecordIndex:
    """The category's published record index, else (an older snapshot) one found by decoding."""
    stored = snapshot.files.get(index_path(category))
    if stored is not None:
        try:
            return RecordIndex.decode(stored)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "snapshot %s: %s: %s; indexing by decoding",
                snapshot.name,
                index_path(category),
                exc,
            )
    return RecordIndex.by_decoding(snapshot.files[v2_path(category)])


def _names_text(names: list[str], aliases: Mapping[str, str]) -> tuple[str, list[int]]:
    """Every lowercased spelling of every name, one line per record, and where each line starts."""
    spellings: dict[str, list[str]] = {}
    for alias, name in aliases.items():
        spellings.setdefault(name, []).append(alias.lower())
    lines = [
        "\0".join([name.lower(), *spellings[name]]) if name in spellings else name.lower()
        for name in names
    ]
    starts: list[int] = []
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    return "\n".join(lines), starts


def _view_key(snapshot: Snapshot, category: Category) -> str:
    """What a category's view is made of: its files' digests and its manifest block."""
    listing = snapshot.manifest["files"]
    digests = [
        (path, listing.get(path, {}).get("sha256"))
        for path in (v2_path(category), v1_path(category))
        for path in (path, path + ".gz")
    ] + [(index_path(category), listing.get(index_path(category), {}).get("sha256"))]
    block = snapshot.manifest["categories"][category.value]
    return json.dumps([category.value, digests, block], sort_keys=True)


#: the views of the snapshot built last, by _view_key: the next snapshot reuses every view whose
#: files and block did not change, so loading a publish costs the categories it touched
_views: dict[str, CategoryView] = {}


@frozen
class ReadModel:
    """Everything the read service answers from, for one snapshot."""

    snapshot_id: int
    snapshot_name: str
    created_at: int
    categories: Mapping[Category, CategoryView]
    v2_metadata_all: Body
    v1_metadata_all: Body
    v2_last_updated: Body
    v1_last_updated: Body
    empty_object: Body
    #: per searchable category: position -> where the same name is in earlier categories (the
    #: all-category search counts a name once, where it comes first)
    repeated: Mapping[Category, dict[int, list[tuple[Category, int]]]]
    text_toolkit: ToolkitSlot  # the text toolkit's answers, built on first use
    snapshot: Snapshot  # the catalogs are prepared from it on first use
    _catalogs: list[CatalogView] = field(factory=list)  # [] until the first catalog read

    @property
    def catalogs(self) -> CatalogView:
        """Licensing, image baselines, text guidance, prepared on the first catalog read of
        this snapshot (not at load: a snapshot then goes live as fast as before catalogs)."""
        if not self._catalogs:
            from .catalog_view import CatalogView

            self._catalogs.append(CatalogView.build(self.snapshot, self.categories))
        return self._catalogs[0]

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Snapshot-Id": str(self.snapshot_id)}

    @classmethod
    def build(cls, snapshot: Snapshot) -> ReadModel:
        from .text_toolkit import ToolkitSlot  # it builds on this module's Body

        global _views
        keys = {c: _view_key(snapshot, c) for c in ALL_CATEGORIES}
        categories = {
            c: _views.get(key) or CategoryView.build(snapshot, c) for c, key in keys.items()
        }
        _views = {key: categories[c] for c, key in keys.items()}

        def last_updated(version: str) -> Body:
            stamps = [
                (view.metadata if version == "v2" else view.legacy_metadata).get("last_updated")
                for view in categories.values()
            ]
            known = [s for s in stamps if s is not None]
            return Body.of(dumps({"last_updated": max(known) if known else None}))

        return cls(
            snapshot_id=snapshot.id,
            snapshot_name=snapshot.name,
            created_at=int(snapshot.manifest.get("created_at", 0)),
            categories=categories,
            v2_metadata_all=Body.of(dumps({c.value: v.metadata for c, v in categories.items()})),
            v1_metadata_all=Body.of(
                dumps({c.value: v.legacy_metadata for c, v in categories.items()})
            ),
            v2_last_updated=last_updated("v2"),
            v1_last_updated=last_updated("v1"),
            empty_object=Body.of(b"{}"),
            repeated=_repeated(categories),
            text_toolkit=ToolkitSlot.of(snapshot, categories[Category.text_generation].records),
            snapshot=snapshot,
        )


def _repeated(
    views: Mapping[Category, CategoryView],
) -> dict[Category, dict[int, list[tuple[Category, int]]]]:
    """Names found in more than one category are few: each category's names are intersected
    (in C) with every earlier category's, not walked one by one."""
    out: dict[Category, dict[int, list[tuple[Category, int]]]] = {}
    earlier: list[tuple[Category, Mapping[str, int]]] = []
    for category, view in views.items():
        if category in (Category.lora, Category.ti):
            continue
        mine = view.records.positions
        for other, theirs in earlier:
            for name in mine.keys() & theirs.keys():
                out.setdefault(category, {}).setdefault(mine[name], []).append(
                    (other, theirs[name])
                )
        earlier.append((category, mine))
    return out
