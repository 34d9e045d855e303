"""Search: filter on the indexes of the snapshot, dedupe, sort, page."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from horde_model_records import RECORD_TYPES, Category
from shared.errors import BadRequest

from .postings import NOTHING, Matches, Postings
from .view import Candidate, CategoryView, ReadModel
from .wire import BACKENDS, SearchAllQuery, SearchQuery

#: sort orders remembered per category and snapshot (any path under a known field is accepted,
#: so the memo is bounded like name_contains's)
SORT_MEMO = 32

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


def _value_at(record: dict[str, Any], path: list[str]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _sorted_positions(candidates: Sequence[Candidate], sort_by: str, desc: bool) -> list[int]:
    """Stable order of all candidates by a field path; nulls last ascending, first descending."""
    path = sort_by.split("__")
    values = [_value_at(c.record, path) for c in candidates]
    present = [i for i, v in enumerate(values) if v is not None]
    nulls = [i for i, v in enumerate(values) if v is None]
    try:
        present.sort(key=values.__getitem__, reverse=desc)
    except TypeError:
        raise BadRequest(
            f"Invalid sort_by field: '{sort_by}' holds values that cannot be compared"
        ) from None
    return nulls + present if desc else present + nulls


def _check_sort_field(sort_by: str, valid: Iterable[str]) -> None:
    valid = sorted(valid)
    head = sort_by.split("__", 1)[0]
    if head not in valid or "" in sort_by.split("__"):
        raise BadRequest(f"Invalid sort_by field: '{sort_by}'. Valid fields: {valid}")


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
    if category in (Category.lora, Category.ti):
        return _envelope([], 0, q)  # managed elsewhere: always an empty page
    matches = _category_matches(q, view)
    if q.sort_by is None:
        total = matches.total()
        page = matches.window(q.offset, q.limit)
    else:
        key = (q.sort_by, q.sort_desc)
        order = view.sort_cache.get(key)
        if order is None:
            if len(view.sort_cache) >= SORT_MEMO:
                view.sort_cache.clear()
            order = view.sort_cache[key] = _sorted_positions(view.candidates, *key)
        total, kept = matches.total(), matches.kept
        if kept is None:
            page = order[q.offset : q.offset + q.limit]
        else:  # walk the order only as far as the page
            page = list(islice((p for p in order if p in kept), q.offset, q.offset + q.limit))
    return _envelope([view.candidates.listed(pos) for pos in page], total, q)


def search_all(model: ReadModel, q: SearchAllQuery) -> bytes:
    """The SearchResponse bytes across every category but lora/ti (those are managed elsewhere);
    a name found in several categories counts once, where it is found first."""
    if q.sort_by is not None:
        _check_sort_field(q.sort_by, COMMON_FIELDS)
    found = [
        (c, view, _matches(view, q))
        for c, view in model.categories.items()
        if c not in (Category.lora, Category.ti)
    ]
    if q.sort_by is not None:
        hits = list(_dedupe(view.candidates[p] for _, view, m in found for p in m.all()))
        order = _sorted_positions(hits, q.sort_by, q.sort_desc)
        listed = [hits[i].listed for i in order[q.offset : q.offset + q.limit]]
        return _envelope(listed, len(hits), q)
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


def _dedupe(candidates: Iterator[Candidate]) -> Iterator[Candidate]:
    seen: set[str] = set()
    for c in candidates:
        if c.name not in seen:
            seen.add(c.name)
            yield c
