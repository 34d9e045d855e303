"""Encoding a category file by copying what the last publish of it already encoded.

A category file is a JSON object of one entry per model. A publish after one apply changes one
entry of one category, so the next file is the last one with that entry encoded again and every
other entry copied as bytes. The writer keeps, per file, only its layout: the entries' keys, where
each one ends, and what it was encoded from (a `Layered` origin and the entries changed from it).
The bytes themselves come back from the live snapshot, hash-checked, when the next publish needs
them; the writer holds none of them in between.

Both file layouts start every entry with a separator as long as the object's opening (compact:
`{` and `,`; indented v1: `{\\n    ` and `,\\n    `), so an entry's part of the file runs from
the previous entry's end to its own, and the file is the opening, the parts with their first
separator dropped, and the closing. The result is byte-identical to `json.dumps` of the whole
mapping (tests check it against `encode_v1` / `encode_v2`).
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable, Mapping
from itertools import accumulate, pairwise
from json.encoder import encode_basestring
from typing import Any

from attrs import define

from . import gzipped
from .json_indent import Indent4, dumps_compact
from .layered import Layered
from .read_index import NO_FACTS, Facts, RecordIndex, facts_of

#: (path, sha256) -> the file's bytes, or None when they cannot be had (gone, damaged)
ReadPrevious = Callable[[str, str], bytes | None]

_NL_PAD = "\n    "
#: where an entry of an indented (v1) file begins: no JSON string holds a raw newline, and nested
#: members are indented deeper, so this matches the top-level keys only (the first entry follows
#: the opening instead of a separator). A literal first: the regex engine then scans with memchr.
_V1_ENTRY = re.compile(rb',\n    ("(?:[^"\\]|\\.)*"): ')
_V1_FIRST = re.compile(rb'\{\n    ("(?:[^"\\]|\\.)*"): ')


@define
class Layout:
    """What one published file was made of. `keys`/`ends` are None for a file adopted from the
    live snapshot and not yet read: they are found in its bytes (v1) or its index (v2)."""

    origin: object  # the `Layered.origin` its unchanged entries came from
    changed: frozenset[str]  # its entries that were not the origin's
    context: object  # what else its bytes depend on (text v2: the guidance assignments shown)
    sha256: str
    data: bytes | None  # the file when it is small (the snapshot keeps the large ones)
    keys: list[str] | None = None
    ends: array[int] | None = None
    facts: list[Facts] | None = None
    index_sha256: str = ""  # its record index's (v2)


class FileEncoder:
    """Encodes successive versions of one category file (compact and indexed for v2, indented
    for v1), copying the entries its last layout says are unchanged."""

    def __init__(self, indent: bool, index_path: str | None = None) -> None:
        self.indent = indent
        self.index_path = index_path  # where a v2 file's record index is published
        self.indexed = index_path is not None
        # `json.dumps(obj, indent=4)` writes "{" NL+pad item ("," NL+pad item)* NL "}"
        self.sep = b",\n    " if indent else b","
        self.open, self.close = (b"{\n    ", b"\n}") if indent else (b"{", b"}")
        assert len(self.open) == len(self.sep)  # an entry's part runs from the last one's end
        self.layout: Layout | None = None
        self.gz = gzipped.PieceCache()
        self.indent4 = Indent4(_NL_PAD)  # reuses the text a v1 text entry shares with the last

    def adopt(
        self,
        origin: object,
        context: object,
        sha256: str,
        data: bytes | None,
        index_sha256: str = "",
    ) -> None:
        """The live snapshot's file, with this sha256 (and its index, with `index_sha256`), is
        the encoding of `origin` itself: the next `encode` copies from it."""
        self.layout = Layout(origin, frozenset(), context, sha256, data, index_sha256=index_sha256)
        self.gz = gzipped.PieceCache()

    def _encode(self, key: str, value: Any) -> tuple[bytes, Facts]:
        # one encoder for every entry and the C string encoder for the key; the v1 entries'
        # indentation without the pure-Python indent encoder
        k = encode_basestring(key).encode()
        if self.indent:
            return self.sep + k + b": " + self.indent4.encode(value).encode(), NO_FACTS
        encoded = dumps_compact(value).encode()
        facts = facts_of(value, encoded) if self.indexed else NO_FACTS
        return self.sep + k + b":" + encoded, facts

    def _source(self, path: str, previous: ReadPrevious) -> tuple[Layout, bytes] | None:
        """The last layout, complete, and its file's bytes; None when they cannot be had."""
        layout = self.layout
        if layout is None:
            return None
        data = layout.data if layout.data is not None else previous(path, layout.sha256)
        if data is None:
            return None
        if layout.keys is None:
            found = self._layout_of(data, layout.index_sha256, previous)
            if found is None:
                return None
            layout.keys, layout.ends, layout.facts = found
            if isinstance(layout.origin, Mapping):
                # the origin's own key objects: at 100x the text keys are 18 MB held twice
                own = {key: key for key in layout.origin}
                layout.keys = [own.get(key, key) for key in layout.keys]
        return layout, data

    def prime(self, path: str, previous: ReadPrevious) -> None:
        """Compress the adopted file's pieces now (a restarted writer, before it answers), so
        that the first publish after it gzips only the pieces a change touches."""
        found = self._source(path, previous)
        if found is None:
            return
        old, data = found
        assert old.ends is not None
        view = memoryview(data)
        bounds = [0, *old.ends, len(data)]  # the parts `encode` made it of, closing included
        self.gz.gzip([view[a:b] for a, b in pairwise(bounds)])

    def _layout_of(
        self, data: bytes, index_sha256: str, previous: ReadPrevious
    ) -> tuple[list[str], array[int], list[Facts] | None] | None:
        """(keys, entry ends, facts) of an adopted file: from its index (v2), else its bytes."""
        if self.index_path is not None:
            raw = previous(self.index_path, index_sha256)
            try:
                index = None if raw is None else RecordIndex.decode(raw)
            except (ValueError, KeyError, TypeError):
                index = None  # an index of another format: encode the file afresh
            if index is None:
                return None
            return index.names, array("q", index.spans[1::2]), index.facts()
        first = _V1_FIRST.match(data)
        if first is None:
            return None
        keys: list[str] = []
        starts: list[int] = []
        for match in (first, *_V1_ENTRY.finditer(data)):
            keys.append(_json_string(match.group(1)))
            starts.append(match.start())
        # an entry ends where the next one's separator begins; the last before the closing
        ends = array("q", [*starts[1:], len(data) - len(self.close)])
        return keys, ends, None

    def encode(
        self,
        path: str,
        items: Mapping[str, Any],
        plain: Callable[[str, Any], Any],
        context: object,
        previous: ReadPrevious,
    ) -> tuple[dict[str, bytes], RecordIndex | None]:
        """The file (and its .gz) of `items` (`plain(key, value)`: an entry as JSON data), and
        its record index when the file is indexed."""
        layered = Layered.of(items)
        last = self.layout
        reusable = None
        if last is not None and last.origin is layered.origin and last.context == context:
            reusable = self._source(path, previous)  # copy what the last file holds
        parts: list[bytes | memoryview] = []
        facts: list[Facts] = []
        if reusable is None:
            for key in layered:
                part, fact = self._encode(key, plain(key, layered[key]))
                parts.append(part)
                facts.append(fact)
        else:
            old, data = reusable
            assert old.keys is not None and old.ends is not None
            view = memoryview(data)
            where = {key: i for i, key in enumerate(old.keys)}
            stale = old.changed | layered.changed.keys()
            for key in layered:
                i = where.get(key)
                if i is None or key in stale:
                    part, fact = self._encode(key, plain(key, layered[key]))
                    parts.append(part)
                    facts.append(fact)
                    continue
                if i:
                    parts.append(view[old.ends[i - 1] : old.ends[i]])
                else:  # the file's first entry begins with the opening, not a separator
                    parts.append(self.sep + bytes(view[len(self.open) : old.ends[0]]))
                facts.append(old.facts[i] if old.facts is not None else NO_FACTS)
        if parts:
            first = bytes(parts[0])
            parts[0] = self.open + first[len(self.sep) :]
            parts.append(self.close)
        else:
            parts = [b"{}"]
        body = b"".join(parts)
        files = {path: body, path + ".gz": self.gz.gzip(parts)}
        keys = list(layered)
        ends = array("q", accumulate(len(p) for p in parts[: len(keys)]))
        self.layout = Layout(
            origin=layered.origin,
            changed=frozenset(layered.changed),
            context=context,
            sha256="",  # set by `published`
            data=None,
            keys=keys,
            ends=ends,
            facts=facts if self.indexed else None,
        )
        index = self._index(keys, ends) if self.indexed else None
        return files, index

    def _index(self, keys: list[str], ends: array[int]) -> RecordIndex:
        assert self.layout is not None and self.layout.facts is not None
        # a record's JSON starts after its part's separator, quoted key and colon
        starts = [
            (ends[i - 1] if i else 0) + len(self.sep) + len(encode_basestring(key).encode()) + 1
            for i, key in enumerate(keys)
        ]
        return RecordIndex.of(keys, starts, ends, self.layout.facts)

    def published(self, sha256: str, data: bytes, small: bool, index_sha256: str = "") -> None:
        """The file the last `encode` made is published with these digests."""
        if self.layout is not None:
            self.layout.sha256 = sha256
            self.layout.index_sha256 = index_sha256
            self.layout.data = data if small else None


def _json_string(quoted: bytes) -> str:
    inner = quoted[1:-1]
    return inner.decode() if b"\\" not in inner else str(json.loads(quoted))
