"""Search: filter on the indexes of the snapshot, dedupe, sort, page."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

from horde_model_records import RECORD_TYPES, Category
from shared.errors import BadRequest

from .postings import NOTHING, Matches, Postings
from .sorting import (
    SortOrder,
    merged,
    prepare_orders,
    sort_order,
    sorted_positions,
    values_at,
)
from .view import CategoryView, ReadModel
from .wire import BACKENDS, SearchAllQuery, SearchQuery

_ELSEWHERE = (Category.lora, Category.ti)  # managed elsewhere: searches answer an empty page

#: fields every record type has: the only sort keys of the all-category search
COMMON_FIELDS = (
    "config",
    "description",
    "finetune_series",
    "metadata",
    "model_classification",
    "name",
    "record_type",
    "size_on_disk_bytes",
    "version",
)


# --- filtering ------------------------------------------------------------------------------------


def _check_fields(q: SearchQuery, view: CategoryView) -> None:
    wanted = [
        ("nsfw", q.nsfw is not None),
        ("baseline", q.baseline is not None),
        ("inpainting", q.inpainting is not None),
        ("tags", bool(q.tags_any or q.tags_all or q.tags_none)),
    ]
    for field, used in wanted:
        if used and field not in view.fields:
            type_name = RECORD_TYPES[view.category].__name__
            raise BadRequest(
                f"Filter not supported for this category: Field '{field}' does not exist on "
                f"{type_name}. Valid fields: {sorted(view.fields)}"
            )
    text_only = [
        name
        for name, value in (
            ("backend", q.backend),
            ("exclude_backend_variations", q.exclude_backend_variations),
            ("quantized", q.quantized),
        )
        if value is not None
    ]
    if text_only and view.category is not Category.text_generation:
        raise BadRequest(
            f"Filter not supported for this category: {', '.join(text_only)} only apply to "
            "text_generation"
        )


def _matches(
    view: CategoryView,
    q: SearchAllQuery,
    extra: Iterable[Postings] = (),
    drop: Iterable[Postings] = (),
) -> Matches:
    """The filters every search has (nsfw, tags, name_contains, licensing), plus `extra`
    postings every match must be in and `drop` postings none may be in, as one Matches."""
    positive: list[Postings] = list(extra)
    excluded: list[Postings] = list(drop)
    if q.nsfw is not None:
        positive.append(view.by_value.get(("nsfw", q.nsfw), NOTHING))
    wanted = list(dict.fromkeys(q.tags_any))
    if len(wanted) == 1:
        positive.append(view.by_tag.get(wanted[0], NOTHING))  # the postings themselves
    elif wanted:
        positive.append(Postings.union(view.by_tag.get(t, NOTHING) for t in wanted))
    for tag in dict.fromkeys(q.tags_all):
        positive.append(view.by_tag.get(tag, NOTHING))
    for tag in dict.fromkeys(q.tags_none):
        excluded.append(view.by_tag.get(tag, NOTHING))
    if q.name_contains is not None:
        positive.append(view.name_index(q.name_contains.lower()))
    for field, value in (
        ("license_id", q.license_id),
        ("commercial_use", q.commercial_use),
        ("redistribution", q.redistribution),
    ):
        if value is not None:
            positive.append(view.by_value.get((field, value), NOTHING))
    return Matches.of(len(view.candidates), positive, excluded)


def _category_matches(q: SearchQuery, view: CategoryView) -> Matches:
    """The records of one category that pass every filter."""
    _check_fields(q, view)
    extra: list[Postings] = []
    drop: list[Postings] = []
    for field, value in (("baseline", q.baseline), ("inpainting", q.inpainting)):
        if value is not None:
            extra.append(view.by_value.get((field, value), NOTHING))
    if view.category is Category.text_generation:
        if q.backend is not None and q.backend not in BACKENDS:
            raise BadRequest(f"Unknown backend '{q.backend}'. Valid backends: {list(BACKENDS)}")
        if q.backend is not None:
            extra.append(view.by_backend.get(q.backend, NOTHING))
        if q.quantized is not None:
            (extra if q.quantized else drop).append(view.quantized)
        if q.exclude_backend_variations:
            drop.append(view.prefixed)
    return _matches(view, q, extra, drop)


# --- sorting --------------------------------------------------------------------------------------


def _check_sort_field(sort_by: str, valid: Iterable[str]) -> None:
    if not _sort_field_known(sort_by, valid):
        raise BadRequest(f"Invalid sort_by field: '{sort_by}'. Valid fields: {sorted(valid)}")


def _sort_field_known(sort_by: str, valid: Iterable[str]) -> bool:
    parts = sort_by.split("__")
    return parts[0] in valid and "" not in parts


async def aprepare(model: ReadModel, category: Category | None, q: SearchAllQuery) -> None:
    """Make, in a thread, what the search of `category` (None: all of them) will read and this
    snapshot has not made yet: the sort orders of its key (a category's first order parses
    every record) and the quantized names (parsing every name): each a second or more at 100x
    the data, which the event loop must not wait for. A bad key is left to the search to
    report."""
    work: list[Callable[[], object]] = []
    if q.sort_by is not None:
        valid: Iterable[str] = COMMON_FIELDS
        names = [c for c in model.categories if c not in _ELSEWHERE]
        if category is not None:
            names = [] if category in _ELSEWHERE else [category]
            valid = model.categories[category].fields
        views = [model.categories[c] for c in names]
        key = (q.sort_by, q.sort_desc)
        if _sort_field_known(q.sort_by, valid) and any(key not in v.sort_cache for v in views):
            work.append(functools.partial(prepare_orders, views, *key))
    text = model.categories[Category.text_generation]
    if (
        category is Category.text_generation
        and isinstance(q, SearchQuery)
        and q.quantized is not None
        and not text.quantized_cache
    ):
        work.append(lambda: text.quantized)
    if work:
        await asyncio.to_thread(lambda: [make() for make in work])


# --- the two searches -----------------------------------------------------------------------------


def _envelope(page: list[bytes], total: int, q: SearchAllQuery) -> bytes:
    """The SearchResponse of one page of listed records (Candidate.listed)."""
    has_more = "true" if q.offset + q.limit < total else "false"
    return (
        b'{"results":['
        + b",".join(page)
        + f'],"total":{total},"offset":{q.offset},"limit":{q.limit},"has_more":{has_more}}}'.encode()
    )


def search_category(model: ReadModel, category: Category, q: SearchQuery) -> bytes:
    """The SearchResponse bytes for one category (names are unique within it: no dedupe)."""
    if q.source not in ("horde", "any"):
        raise BadRequest(
            f"Unknown source: No provider registered under source id '{q.source}'. "
            "Registered providers: []."
        )
    view = model.categories[category]
    if q.sort_by is not None:
        _check_sort_field(q.sort_by, view.fields)
    if category in _ELSEWHERE:
        return _envelope([], 0, q)  # managed elsewhere: always an empty page
    matches = _category_matches(q, view)
    total = matches.total()
    if q.sort_by is None:
        page = matches.window(q.offset, q.limit)
    else:
        kept = sort_order(view, q.sort_by, q.sort_desc).kept(matches)
        page = list(islice(kept, q.offset, q.offset + q.limit))
    return _envelope([view.candidates.listed(pos) for pos in page], total, q)


def search_all(model: ReadModel, q: SearchAllQuery) -> bytes:
    """The SearchResponse bytes across every category but lora/ti (those are managed elsewhere);
    a name found in several categories counts once, where it is found first."""
    if q.sort_by is not None:
        _check_sort_field(q.sort_by, COMMON_FIELDS)
    found = [
        (c, view, _matches(view, q)) for c, view in model.categories.items() if c not in _ELSEWHERE
    ]
    # a name already matched in an earlier category is not counted again; such names are few
    # (known per snapshot), so only they are looked at one by one
    by_category: dict[Category, Matches] = {c: m for c, _, m in found}
    dropped = [
        {
            p
            for p, earlier in model.repeated.get(c, {}).items()
            if p in m and any(e in by_category[ec] for ec, e in earlier)
        }
        for c, _, m in found
    ]
    total = sum(m.total() - len(d) for (_, _, m), d in zip(found, dropped, strict=True))
    if q.sort_by is not None:
        return _sorted_across(found, dropped, total, q)
    page: list[bytes] = []
    skip, room = q.offset, q.limit
    for (_, view, m), d in zip(found, dropped, strict=True):
        if room == 0:
            break
        count = m.total() - len(d)
        if skip >= count:
            skip -= count
            continue
        if d:
            kept = [p for p in m.window(0, skip + room + len(d)) if p not in d]
            positions = kept[skip : skip + room]
        else:
            positions = m.window(skip, room)
        page += [view.candidates.listed(p) for p in positions]
        skip, room = 0, room - len(positions)
    return _envelope(page, total, q)


def _sorted_across(
    found: Sequence[tuple[Category, CategoryView, Matches]],
    dropped: list[set[int]],
    total: int,
    q: SearchAllQuery,
) -> bytes:
    """One page of every category's matches in one stable order: each category's own sorted
    order (made once per snapshot), merged as far as the page. Where values of two categories
    might not compare, or a category's own values do not, the matches are sorted together as
    they are (an error then names the key only if the matches themselves cannot be compared)."""
    assert q.sort_by is not None
    streams: list[tuple[SortOrder, Iterator[int]]] = []
    for (_, view, m), d in zip(found, dropped, strict=True):
        try:
            order = sort_order(view, q.sort_by, q.sort_desc)
        except BadRequest:
            streams = []
            break
        streams.append((order, _without(order.kept(m), d)))
    merged_order = merged(streams, q.sort_desc) if streams else None
    views = [view for _, view, _ in found]
    if merged_order is None:  # the values each category keeps with its order: no record parsed
        hits = [
            (i, p)
            for i, ((_, view, m), d) in enumerate(zip(found, dropped, strict=True))
            for p in m.all()
            if p not in d
        ]
        values = [values_at(view, q.sort_by, q.sort_desc) for view in views]
        ranked = sorted_positions([values[i][p] for i, p in hits], q.sort_by, q.sort_desc)
        page = [hits[at] for at in ranked[q.offset : q.offset + q.limit]]
        return _envelope([views[i].candidates.listed(p) for i, p in page], total, q)
    merged_page = islice(merged_order, q.offset, q.offset + q.limit)
    return _envelope([views[i].candidates.listed(p) for i, p in merged_page], total, q)


def _without(positions: Iterator[int], dropped: set[int]) -> Iterator[int]:
    """`positions` but those in `dropped` (a function, so that each stream keeps its own set)."""
    return (p for p in positions if p not in dropped)
