"""gzip made of independently compressed pieces, so an edit recompresses only what it touched.

A category file is a JSON object of one entry per model. Its gzip copy is one gzip member whose
deflate stream is a run of sub-streams, each compressed on its own from a fresh compressor and
ended with a sync flush (the technique of pigz): any gzip reader reads it as one ordinary member.
Pieces are cut at entry boundaries chosen by the entries' own bytes, so an edit to one entry
moves at most its neighbours' boundaries, and every other piece's compressed bytes are reused
from the previous encoding. The deflate window is 32 KiB, so pieces of ~64 KiB lose almost
nothing in ratio.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

LEVEL = 6  # as small as 9 on this JSON within 1%, and 2-3x faster
_PIECE_BYTES = 64 * 1024  # a piece ends at the first entry boundary past this size
_BOUNDARY_MASK = 0x3F  # ... or at an entry whose crc has these bits clear, past a quarter of it
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, mtime 0, OS unknown
_FINAL = b"\x03\x00"  # an empty final block: closes the run of sync-flushed sub-streams
_PARALLEL_BYTES = 1 << 20  # below this, threads cost more than they save

#: zlib releases the GIL while it compresses: two threads use both cores of a small machine
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gzip")


def _new_pool_after_fork() -> None:
    # a forked copy has none of the parent's threads: a pool that had started some would wait
    # for them forever (the seed forks to use both cores)
    global _pool
    _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gzip")


os.register_at_fork(after_in_child=_new_pool_after_fork)


def pool_map(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """`fn` over `items` on two threads (for work that releases the GIL: zlib, hashlib)."""
    if len(items) < 2:
        return [fn(x) for x in items]
    return list(_pool.map(fn, items))


def _digest(piece: bytes) -> bytes:
    return hashlib.sha1(piece, usedforsecurity=False).digest()


def _deflate(piece: bytes) -> bytes:
    c = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    return c.compress(piece) + c.flush(zlib.Z_SYNC_FLUSH)


def pieces_of(entries: Sequence[bytes | memoryview]) -> list[bytes]:
    """Group consecutive entries (whose concatenation is the file) into pieces; the cut points
    depend only on the entries' bytes, so they survive edits elsewhere in the file."""
    pieces: list[bytes] = []
    group: list[bytes | memoryview] = []
    size = 0
    for entry in entries:
        group.append(entry)
        size += len(entry)
        if size >= _PIECE_BYTES or (
            size >= _PIECE_BYTES // 4 and not zlib.crc32(entry[-64:]) & _BOUNDARY_MASK
        ):
            pieces.append(b"".join(group))
            group, size = [], 0
    if group:
        pieces.append(b"".join(group))
    return pieces


class PieceCache:
    """Compressed pieces of the previous encoding of one file, by the digest of their bytes."""

    def __init__(self) -> None:
        self.deflated: dict[bytes, bytes] = {}

    def gzip(self, entries: Sequence[bytes | memoryview]) -> bytes:
        """The gzip of b"".join(entries), reusing every piece compressed last time (entries may
        be views into another file's bytes)."""
        pieces = pieces_of(entries)
        keys = [_digest(p) for p in pieces]
        todo = {k: p for k, p in zip(keys, pieces, strict=True) if k not in self.deflated}
        if sum(map(len, todo.values())) >= _PARALLEL_BYTES:
            fresh = dict(zip(todo, _pool.map(_deflate, todo.values()), strict=True))
        else:
            fresh = {k: _deflate(p) for k, p in todo.items()}
        # only what this encoding uses: memory stays one compressed file's worth
        self.deflated = {k: self.deflated.get(k) or fresh[k] for k in keys}
        crc = 0
        total = 0
        for p in pieces:
            crc = zlib.crc32(p, crc)
            total += len(p)
        return b"".join(
            [
                _HEADER,
                *(self.deflated[k] for k in keys),
                _FINAL,
                struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF),
            ]
        )
