"""A loaded snapshot, prepared for reading: response bodies, per-record bytes, search indexes.

Everything here is computed once per snapshot, off the event loop; requests only look things up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from attrs import define, frozen

from horde_model_records import ALL_CATEGORIES, RECORD_TYPES, Category, is_quantized
from horde_model_records.records import wire_field_names
from shared.snapshot import Snapshot, v1_path, v2_path

if TYPE_CHECKING:
    from .catalog_view import CatalogView
    from .text_toolkit import ToolkitSlot

Json = dict[str, Any]


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

    @property
    def gz_etag(self) -> str:
        # a different content-coding is a different representation: a different strong ETag
        return self.etag[:-1] + '-gzip"'

    @classmethod
    def of(cls, data: bytes, gz: bytes | None = None) -> Body:
        return cls(data=data, gz=gz, etag=etag_of(data))


@frozen
class Candidate:
    """One record as search sees it."""

    category: Category
    name: str
    name_lower: str
    record: Json
    data: bytes  # the record's JSON bytes, reused in every envelope
    tags: frozenset[str] | None  # None: the record has no tags field at all
    quantized: bool  # text names with a quant marker (the search filter), parsed once at load
    aliases_lower: tuple[str, ...] = ()  # other spellings of the name (a v1 key), lowercased

    def name_contains(self, needle: str) -> bool:
        return needle in self.name_lower or any(needle in a for a in self.aliases_lower)


@define
class CategoryView:
    category: Category
    v2: Body
    v1: Body | None  # None: no legacy view (no legacy format)
    models: dict[str, Body]  # single-model bodies by name
    candidates: list[Candidate]  # dataset order
    fields: frozenset[str]  # wire fields of the category's record type
    by_value: dict[tuple[str, Any], frozenset[int]]  # (field, value) -> positions
    metadata: Json
    legacy_metadata: Json
    metadata_bodies: dict[str, Body]  # "v2", "v1", "v2/last_updated", "v1/last_updated"
    sort_cache: dict[tuple[str, bool], list[int]]

    @classmethod
    def build(cls, snapshot: Snapshot, category: Category) -> CategoryView:
        files = snapshot.files
        block = snapshot.manifest["categories"][category.value]
        v2_bytes = files[v2_path(category)]
        v1_bytes = files.get(v1_path(category))
        records: dict[str, Json] = json.loads(v2_bytes)
        aliases: dict[str, str] = block.get("aliases", {})  # v1 key -> record name
        spellings: dict[str, list[str]] = {}
        for alias, name in aliases.items():
            spellings.setdefault(name, []).append(alias.lower())
        models: dict[str, Body] = {}
        candidates: list[Candidate] = []
        by_value: dict[tuple[str, Any], set[int]] = {}
        for pos, (name, record) in enumerate(records.items()):
            data = dumps(record)
            models[name] = Body.of(data)
            tags = record.get("tags")
            candidates.append(
                Candidate(
                    category=category,
                    name=name,
                    name_lower=name.lower(),
                    record=record,
                    # search shows text records without the guidance status (as upstream)
                    data=dumps({k: v for k, v in record.items() if k != "guidance"})
                    if "guidance" in record
                    else data,
                    tags=None if tags is None else frozenset(tags),
                    quantized=category is Category.text_generation and is_quantized(name),
                    aliases_lower=tuple(spellings.get(name, ())),
                )
            )
            for field in ("nsfw", "baseline", "inpainting"):
                if field in record:
                    by_value.setdefault((field, record[field]), set()).add(pos)
        for alias, name in aliases.items():
            if name in models:
                models.setdefault(alias, models[name])  # the other spelling reads the same body
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
            v2=Body.of(v2_bytes, files.get(v2_path(category) + ".gz")),
            v1=None
            if v1_bytes is None
            else Body.of(v1_bytes, files.get(v1_path(category) + ".gz")),
            models=models,
            candidates=candidates,
            fields=frozenset(wire_field_names(RECORD_TYPES[category])),
            by_value={k: frozenset(v) for k, v in by_value.items()},
            metadata=meta,
            legacy_metadata=legacy_meta,
            metadata_bodies=metadata_bodies,
            sort_cache={},
        )


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
    text_toolkit: ToolkitSlot  # the text toolkit's answers, built on first use
    snapshot: Snapshot  # the catalogs are prepared from it on first use
    _catalogs: list[CatalogView] = attrs.field(factory=list)  # [] until the first catalog read

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

        categories = {c: CategoryView.build(snapshot, c) for c in ALL_CATEGORIES}

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
            text_toolkit=ToolkitSlot.of(
                snapshot,
                {c.name: c.record for c in categories[Category.text_generation].candidates},
            ),
            snapshot=snapshot,
        )
