"""Postings: the positions (dataset order) a filter keeps, and how a search combines them."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from functools import reduce
from operator import and_, or_

from attrs import frozen

#: the set bits of each byte value, lowest first
_BITS = tuple(tuple(bit for bit in range(8) if byte >> bit & 1) for byte in range(256))
_NONZERO = re.compile(rb"[^\x00]")
_SCAN_SKIP = 256  # a deeper skip starts at its byte instead of counting bytes up to it


class Postings:
    """Sorted positions, or the bitmask of them (a Python int, bit p set for position p): each
    is made from the other when first asked for, and kept as long as the snapshot's view.

    One filter alone pages by slicing its positions; several combine on whole masks (`&`, `|`,
    `~` run in C over size / 64 machine words) and count matches with the mask's bit count, so
    a search costs what its page shows, not what each filter keeps.
    """

    __slots__ = ("_bits", "_mask", "_positions")

    def __init__(self, positions: list[int] | None = None, *, mask: int | None = None) -> None:
        if (positions is None) == (mask is None):
            raise ValueError("postings are made from positions or from a mask, one of them")
        self._positions = positions
        self._mask = mask
        self._bits: bytes | None = None  # the mask as little-endian bytes, for bit tests

    @classmethod
    def of(cls, positions: list[int]) -> Postings:
        """Sorted positions and their mask, both made now (a view is built in a thread: the
        requests that combine filters then find the masks ready)."""
        postings = cls(positions)
        postings.mask  # noqa: B018 -- made and kept here, not on the event loop
        return postings

    @classmethod
    def union(cls, parts: Iterable[Postings]) -> Postings:
        return cls(mask=reduce(or_, (p.mask for p in parts), 0))

    @property
    def positions(self) -> list[int]:
        if self._positions is None:
            self._positions = list(self._scan(0))
        return self._positions

    @property
    def mask(self) -> int:
        if self._mask is None:
            positions = self.positions
            bits = bytearray(positions[-1] // 8 + 1 if positions else 0)
            for p in positions:
                bits[p >> 3] |= 1 << (p & 7)
            self._mask = int.from_bytes(bits, "little")
        return self._mask

    def __len__(self) -> int:
        if self._positions is not None:
            return len(self._positions)
        return self.mask.bit_count()

    def __contains__(self, pos: int) -> bool:
        if self._positions is not None:
            at = bisect.bisect_left(self._positions, pos)
            return at < len(self._positions) and self._positions[at] == pos
        bits = self._mask_bytes()
        return 0 <= pos < len(bits) * 8 and bool(bits[pos >> 3] >> (pos & 7) & 1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Postings):
            return NotImplemented
        return self.mask == other.mask

    __hash__ = None  # type: ignore[assignment]  # -- caches fill in place: compared, never hashed

    def __repr__(self) -> str:
        return f"Postings({self.positions!r})"

    def window(self, offset: int, limit: int) -> list[int]:
        """Positions offset .. offset+limit, reading no more of the mask than it must."""
        if limit <= 0:
            return []
        if self._positions is not None:
            return self._positions[offset : offset + limit]
        out: list[int] = []
        for pos in self._scan(offset):
            out.append(pos)
            if len(out) == limit:
                break
        return out

    def _mask_bytes(self) -> bytes:
        if self._bits is None:
            mask = self.mask
            self._bits = mask.to_bytes((mask.bit_length() + 7) // 8, "little")
        return self._bits

    def _scan(self, skip: int) -> Iterator[int]:
        """Set bits in ascending order after the first `skip`: the regex finds non-zero bytes
        in C, and a deep `skip` starts at its byte, found by counting bits in C."""
        bits = self._mask_bytes()
        start = 0
        if skip > _SCAN_SKIP:
            start, skip = self._byte_of(skip)
        for found in _NONZERO.finditer(bits, start):
            at = found.start()
            set_bits = _BITS[bits[at]]
            if skip >= len(set_bits):
                skip -= len(set_bits)
                continue
            base = at * 8
            for bit in set_bits[skip:]:
                yield base + bit
            skip = 0

    def _byte_of(self, skip: int) -> tuple[int, int]:
        """The byte holding set bit number `skip` (a binary search on the bit count below each
        candidate byte), and how many set bits of that byte come before it."""
        mask, low, high = self.mask, 0, len(self._mask_bytes()) + 1
        while high - low > 1:  # the bits below byte `low` number no more than `skip`
            middle = (low + high) // 2
            if (mask & ((1 << 8 * middle) - 1)).bit_count() <= skip:
                low = middle
            else:
                high = middle
        return low, skip - (mask & ((1 << 8 * low) - 1)).bit_count()


NOTHING = Postings([])


@frozen
class Matches:
    """The positions a search's filters keep among `size` records: `kept`, or (None) every one."""

    size: int
    kept: Postings | None

    @classmethod
    def of(cls, size: int, positive: list[Postings], excluded: list[Postings]) -> Matches:
        """Records in every one of `positive` (none given: every record) and in none of
        `excluded`. One positive filter alone is its own postings: no mask is made."""
        excluded = [e for e in excluded if len(e)]
        if not excluded and len(positive) <= 1:
            return cls(size, positive[0] if positive else None)
        if positive:
            mask = reduce(and_, (p.mask for p in positive))
        else:
            mask = (1 << size) - 1
        if excluded:
            mask &= ~reduce(or_, (e.mask for e in excluded))
        return cls(size, Postings(mask=mask))

    def __contains__(self, pos: object) -> bool:
        if not isinstance(pos, int) or not 0 <= pos < self.size:
            return False
        return self.kept is None or pos in self.kept

    def total(self) -> int:
        return self.size if self.kept is None else len(self.kept)

    def all(self) -> list[int]:
        """Every kept position, in order."""
        return list(range(self.size)) if self.kept is None else self.kept.positions

    def window(self, offset: int, limit: int) -> list[int]:
        """Positions offset .. offset+limit of the matches."""
        if limit <= 0:
            return []
        if self.kept is None:
            return list(range(self.size)[offset : offset + limit])
        return self.kept.window(offset, limit)
