"""Search order by a field path: each category's records sorted once per snapshot and key."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from attrs import frozen

from shared.errors import BadRequest

from .postings import Matches
from .view import Candidate, Candidates, CategoryView

#: sort orders remembered per category and snapshot (any path under a known field is accepted,
#: so the memo is bounded like name_contains's)
SORT_MEMO = 8

_NUMBER = (int, float)


@frozen
class SortOrder:
    """One category's records sorted (stably) by the value at a field path, nulls last
    ascending and first descending; `rank[p]` is where position p falls in `order`."""

    order: list[int]
    values: list[Any]  # by position; None where the record has no value there
    rank: list[int]
    kind: str  # "number", "text", "none" (no values) or "mixed": what merging may compare

    @classmethod
    def of(cls, values: list[Any], sort_by: str, desc: bool) -> SortOrder:
        """The order of records whose values at `sort_by` are `values` (by position)."""
        order = sorted_positions(values, sort_by, desc)
        rank = [0] * len(order)
        for at, pos in enumerate(order):
            rank[pos] = at
        present = [v for v in values if v is not None]
        if not present:
            kind = "none"
        elif all(isinstance(v, str) for v in present):
            kind = "text"
        elif all(isinstance(v, _NUMBER) for v in present):
            kind = "number"
        else:
            kind = "mixed"
        return cls(order, values, rank, kind)

    def kept(self, matches: Matches) -> Iterator[int]:
        """The positions `matches` keeps, in this order: a few are sorted by rank, many are
        found by walking the order."""
        kept = matches.kept
        if kept is None:
            return iter(self.order)
        if len(kept) * 8 < len(self.order):
            return iter(sorted(kept.positions, key=self.rank.__getitem__))
        return (p for p in self.order if p in kept)


def sort_values(candidates: Sequence[Candidate], sort_by: str) -> list[Any]:
    """Each candidate's value at the `__`-separated path (names need no record parsed)."""
    path = sort_by.split("__")
    if path == ["name"]:
        if isinstance(candidates, Candidates):
            return list(candidates.names)  # from the record index: no record is cut out
        return [c.name for c in candidates]
    values = []
    for c in candidates:
        value: Any = c.record
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        values.append(value)
    return values


def sorted_positions(values: list[Any], sort_by: str, desc: bool) -> list[int]:
    """Positions in a stable order of `values`; nulls last ascending, first descending."""
    present = [i for i, v in enumerate(values) if v is not None]
    nulls = [i for i, v in enumerate(values) if v is None]
    try:
        present.sort(key=values.__getitem__, reverse=desc)
    except TypeError:
        raise BadRequest(
            f"Invalid sort_by field: '{sort_by}' holds values that cannot be compared"
        ) from None
    return nulls + present if desc else present + nulls


@frozen
class Unsortable:
    """A category whose values at a key do not compare with each other: the search of that
    category answers `error`; the all-category search may still sort the matches it has among
    `values` (by position)."""

    values: list[Any]
    error: str


def _made(view: CategoryView, sort_by: str, desc: bool) -> SortOrder | Unsortable:
    """The category's order for this key, or why there is none: made once per snapshot and
    remembered (a key that fails costs its parse once too)."""
    key = (sort_by, desc)
    found = view.sort_cache.get(key)
    if found is None:
        if len(view.sort_cache) >= SORT_MEMO:
            view.sort_cache.clear()
        values = sort_values(view.candidates, sort_by)
        try:
            found = SortOrder.of(values, sort_by, desc)
        except BadRequest as exc:
            found = Unsortable(values, str(exc.detail))
        view.sort_cache[key] = found
    return found


def sort_order(view: CategoryView, sort_by: str, desc: bool) -> SortOrder:
    """The category's order for this key; BadRequest where its values do not compare."""
    found = _made(view, sort_by, desc)
    if isinstance(found, Unsortable):
        raise BadRequest(found.error)
    return found


def values_at(view: CategoryView, sort_by: str, desc: bool) -> list[Any]:
    """Every record's value at the key, by position (kept with the category's order)."""
    return _made(view, sort_by, desc).values


def prepare_orders(views: Iterable[CategoryView], sort_by: str, desc: bool) -> None:
    """Make each view's order for this key (run in a thread: see search.aprepare)."""
    for view in views:
        _made(view, sort_by, desc)


def merged(
    streams: list[tuple[SortOrder, Iterator[int]]], desc: bool
) -> Iterator[tuple[int, int]] | None:
    """(stream index, position) of every stream's positions in one stable order, as one sort
    of them all would give (ties: the earlier stream first), or None where values of two
    streams might not compare (the caller then sorts them all, and reports what fails)."""
    kinds = {order.kind for order, _ in streams} - {"none"}
    with_values = sum(order.kind != "none" for order, _ in streams)
    if len(kinds) > 1 or (kinds == {"mixed"} and with_values > 1):
        return None
    split = [_split(i, order, positions, desc) for i, (order, positions) in enumerate(streams)]
    by_value = heapq.merge(
        *(present for present, _ in split),
        key=lambda item: streams[item[0]][0].values[item[1]],
        reverse=desc,
    )
    nulls = itertools.chain.from_iterable(null for _, null in split)
    return itertools.chain(nulls, by_value) if desc else itertools.chain(by_value, nulls)


def _split(
    index: int, order: SortOrder, positions: Iterator[int], desc: bool
) -> tuple[Iterator[tuple[int, int]], Iterator[tuple[int, int]]]:
    """A stream's (index, position) items with a value and without one. In a stream the nulls
    come last ascending and first descending: the stream is read once, and the item where the
    first part ends is handed to the second, which is read after it."""
    values = order.values
    items = ((index, p) for p in positions)
    boundary: list[tuple[int, int]] = []

    def first_part(nulls: bool) -> Iterator[tuple[int, int]]:
        for item in items:
            if (values[item[1]] is None) != nulls:
                boundary.append(item)
                return
            yield item

    def second_part() -> Iterator[tuple[int, int]]:
        yield from boundary
        yield from items

    if desc:
        return second_part(), first_part(nulls=True)
    return first_part(nulls=False), second_part()
