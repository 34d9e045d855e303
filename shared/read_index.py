"""The record index of a v2 category file, published beside it in every snapshot.

A read replica answers single-model reads and searches by position in the category file: each
record's byte span, and the positions each filter keeps. Finding them means decoding every
record, seconds at 100x the real data, on every start and every publish. The writer holds each
record's JSON as it encodes it, so it writes them down once per publish of the category, in
`index/v2/<category>.json`, and a replica loads them in milliseconds. A snapshot without the file
(published before it existed) is indexed by decoding its category file with the same `facts_of`,
so both ways give the same index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from attrs import frozen

from horde_model_records import Category
from horde_model_records.licensing import UNKNOWN_LICENSING_JSON

Json = dict[str, Any]

INDEX_FORMAT = 1

#: where a record's `guidance` (what text reads add) is: search lists records without it
NO_GUIDANCE, GUIDANCE_LAST, GUIDANCE_INSIDE = 0, 1, 2

#: the (field, value) filters the index lists positions for
VALUE_FIELDS = ("nsfw", "baseline", "inpainting")
LICENSING_FIELDS = ("commercial_use", "redistribution")


def index_path(category: Category) -> str:
    """Where a category's record index lives inside a snapshot (not a served path)."""
    return f"index/v2/{category.value}.json"


@frozen(cache_hash=True)
class Facts:
    """What the index keeps of one record: its filter values, its tags, where its guidance is."""

    values: tuple[tuple[str, Any], ...]
    tags: tuple[str, ...]  # distinct
    guidance: int


NO_FACTS = Facts((), (), NO_GUIDANCE)  # what an entry of an unindexed file (v1) keeps


def facts_of(record: Json, data: bytes) -> Facts:
    """The facts of a record from its read JSON and its encoded bytes."""
    values = [(f, record[f]) for f in VALUE_FIELDS if f in record]
    # a snapshot published before schema 2.1.0 has records without it: they are unreviewed
    licensing = record.get("licensing") or UNKNOWN_LICENSING_JSON
    values += [(f, licensing.get(f)) for f in LICENSING_FIELDS]
    values += [("license_id", i) for i in dict.fromkeys(licensing.get("license_ids") or ())]
    guidance = NO_GUIDANCE
    if "guidance" in record:
        last = len(record) > 1 and next(reversed(record)) == "guidance"
        guidance = GUIDANCE_LAST if last and b',"guidance":' in data else GUIDANCE_INSIDE
    tags = record.get("tags")
    facts = Facts(tuple(values), tuple(dict.fromkeys(tags)) if tags else (), guidance)
    # one object per distinct facts (records share few): grouping by them is then by identity
    return _interned.setdefault(facts, facts)


_interned: dict[Facts, Facts] = {}


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@frozen
class RecordIndex:
    """A category file's records in file order: names, byte spans, and positions by filter."""

    names: list[str]
    spans: list[int]  # start and end of every record's JSON in the file: s0, e0, s1, e1, ...
    by_value: dict[tuple[str, Any], list[int]]  # (field, value) -> positions
    by_tag: dict[str, list[int]]
    tagged: list[int]  # positions of records with at least one tag
    guidance_last: frozenset[int]
    guidance_inside: frozenset[int]

    @classmethod
    def of(
        cls, names: list[str], starts: Iterable[int], ends: Iterable[int], facts: Iterable[Facts]
    ) -> RecordIndex:
        """The index of records in file order: their names, spans and facts. Records share few
        distinct facts, so positions are grouped by facts first, and each group joins the
        postings of its facts at once (one step per record, not one per record and filter)."""
        groups: dict[Facts, list[int]] = {}
        for pos, fact in enumerate(facts):
            group = groups.get(fact)
            if group is None:
                groups[fact] = [pos]
            else:
                group.append(pos)
        by_value: dict[tuple[str, Any], list[int]] = {}
        by_tag: dict[str, list[int]] = {}
        tagged: list[int] = []
        guidance: tuple[list[int], list[int]] = ([], [])
        for fact, positions in groups.items():
            for key in fact.values:
                by_value.setdefault(key, []).extend(positions)
            if fact.tags:
                tagged += positions
                for tag in fact.tags:
                    by_tag.setdefault(tag, []).extend(positions)
            if fact.guidance:
                guidance[fact.guidance - 1].extend(positions)
        for postings in (*by_value.values(), *by_tag.values(), tagged):
            postings.sort()
        spans = [at for span in zip(starts, ends, strict=True) for at in span]
        return cls(
            names=names,
            spans=spans,
            by_value=by_value,
            by_tag=by_tag,
            tagged=tagged,
            guidance_last=frozenset(guidance[0]),
            guidance_inside=frozenset(guidance[1]),
        )

    def encode(self) -> bytes:
        # postings in a fixed order: an index made from the facts read back from another index
        # (the writer after a restart) is then byte for byte the one made by encoding
        values = sorted(self.by_value.items(), key=lambda kv: (kv[0][0], _sort_key(kv[0][1])))
        return json.dumps(
            {
                "format": INDEX_FORMAT,
                "names": self.names,
                "spans": self.spans,
                "values": [[f, v, p] for (f, v), p in values],
                "tags": [[t, self.by_tag[t]] for t in sorted(self.by_tag)],
                "tagged": self.tagged,
                "guidance_last": sorted(self.guidance_last),
                "guidance_inside": sorted(self.guidance_inside),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> RecordIndex:
        """An index file read back; ValueError when it is not one this code wrote."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != INDEX_FORMAT:
            raise ValueError("not a record index of a known format")
        return cls(
            names=raw["names"],
            spans=raw["spans"],
            by_value={(f, v): p for f, v, p in raw["values"]},
            by_tag={t: p for t, p in raw["tags"]},
            tagged=raw["tagged"],
            guidance_last=frozenset(raw["guidance_last"]),
            guidance_inside=frozenset(raw["guidance_inside"]),
        )

    def facts(self) -> list[Facts]:
        """Every record's facts, read back from the postings (in a fixed order: equal to what
        `facts_of` gave up to the order of values and tags, which `encode` does not keep)."""
        values: list[list[tuple[str, Any]]] = [[] for _ in self.names]
        tags: list[list[str]] = [[] for _ in self.names]
        for (field, value), positions in sorted(
            self.by_value.items(), key=lambda kv: (kv[0][0], _sort_key(kv[0][1]))
        ):
            for pos in positions:
                values[pos].append((field, value))
        for tag in sorted(self.by_tag):
            for pos in self.by_tag[tag]:
                tags[pos].append(tag)
        out: list[Facts] = []
        for pos, (vals, tgs) in enumerate(zip(values, tags, strict=True)):
            guidance = (
                GUIDANCE_LAST
                if pos in self.guidance_last
                else GUIDANCE_INSIDE
                if pos in self.guidance_inside
                else NO_GUIDANCE
            )
            facts = Facts(tuple(vals), tuple(tgs), guidance)
            out.append(_interned.setdefault(facts, facts))
        return out

    @classmethod
    def by_decoding(cls, data: bytes) -> RecordIndex:
        """The index of a category file found by decoding it (a snapshot without index files)."""
        names: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        facts: list[Facts] = []
        for name, record, start, end in records_with_spans(data):
            names.append(name)
            starts.append(start)
            ends.append(end)
            facts.append(facts_of(record, data[start:end]))
        return cls.of(names, starts, ends, facts)


def records_with_spans(data: bytes) -> Iterator[tuple[str, Json, int, int]]:
    """(name, record, start, end) of each member of a category file's top object, in file order;
    start and end are byte offsets of the record's JSON, found while decoding."""
    text = data.decode()
    ascii_only = len(text) == len(data)
    decode = _decoder.raw_decode
    end = _skip(text, 0)
    if text[end : end + 1] != "{":
        raise ValueError("a category file is a JSON object")
    end = _skip(text, end + 1)
    if text[end : end + 1] == "}":
        return
    # byte offsets of character offsets: the same number for ASCII, counted up otherwise
    seen_chars = seen_bytes = 0

    def byte_at(at: int) -> int:
        nonlocal seen_chars, seen_bytes
        if ascii_only:
            return at
        seen_bytes += len(text[seen_chars:at].encode())
        seen_chars = at
        return seen_bytes

    while True:
        if text[end : end + 1] != '"':
            raise ValueError(f"expected a name at {end}")
        name, end = _scanstring(text, end + 1)
        end = _skip(text, end)
        if text[end : end + 1] != ":":
            raise ValueError(f"expected ':' at {end}")
        start = _skip(text, end + 1)
        record, end = decode(text, start)
        yield name, record, byte_at(start), byte_at(end)
        end = _skip(text, end)
        if text[end : end + 1] == ",":
            end = _skip(text, end + 1)
            continue
        if text[end : end + 1] == "}":
            return
        raise ValueError(f"expected ',' or '}}' at {end}")


_decoder = json.JSONDecoder()
_scanstring: Callable[[str, int], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009 -- not in the stubs
_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace


def _skip(text: str, at: int) -> int:
    match = _WS.match(text, at)
    return at if match is None else match.end()
