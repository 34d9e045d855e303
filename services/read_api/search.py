"""Search: filter on the indexes of the snapshot, dedupe, sort, page."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from horde_model_records import RECORD_TYPES, Category
from shared.errors import BadRequest

from .view import Candidate, CategoryView, Index, Matches, ReadModel
from .wire import BACKENDS, SearchAllQuery, SearchQuery

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


_NONE: tuple[list[int], frozenset[int]] = ([], frozenset())


def _matches(view: CategoryView, q: SearchAllQuery, extra: list[Index] | None = None) -> Matches:
    """The filters every search has (nsfw, tags, name_contains, licensing), plus `extra` positive
    indexes, as one Matches: the smallest positive index drives, the others are checked per
    position."""
    positive: list[Index] = list(extra or [])
    excluded: set[int] = set()
    if q.nsfw is not None:
        positive.append(view.by_value.get(("nsfw", q.nsfw), _NONE))
    wanted = set(q.tags_any)
    if len(wanted) == 1:
        positive.append(view.by_tag.get(wanted.pop(), _NONE))  # the index itself: no copy
    elif wanted:
        union = sorted(set().union(*(view.by_tag.get(t, _NONE)[1] for t in wanted)))
        positive.append((union, frozenset(union)))
    for tag in dict.fromkeys(q.tags_all):
        positive.append(view.by_tag.get(tag, _NONE))
    for tag in q.tags_none:
        excluded |= view.by_tag.get(tag, _NONE)[1]
    if q.name_contains is not None:
        positive.append(view.name_index(q.name_contains.lower()))
    for field, value in (
        ("license_id", q.license_id),
        ("commercial_use", q.commercial_use),
        ("redistribution", q.redistribution),
    ):
        if value is not None:
            positive.append(view.by_value.get((field, value), _NONE))
    if not positive:
        return Matches(len(view.candidates), None, excluded=frozenset(excluded))
    positive.sort(key=lambda index: len(index[0]))
    driver, *others = positive
    return Matches(
        len(view.candidates),
        driver[0],
        required=tuple(o[1] for o in others),
        excluded=frozenset(excluded),
    )


def _category_matches(q: SearchQuery, view: CategoryView) -> Matches:
    """The records of one category that pass every filter."""
    _check_fields(q, view)
    extra: list[Index] = []
    for field, value in (("baseline", q.baseline), ("inpainting", q.inpainting)):
        if value is not None:
            extra.append(view.by_value.get((field, value), _NONE))
    text = view.category is Category.text_generation
    if text and q.backend is not None and q.backend not in BACKENDS:
        raise BadRequest(f"Unknown backend '{q.backend}'. Valid backends: {list(BACKENDS)}")
    if text and q.backend is not None:
        extra.append(view.by_backend.get(q.backend, _NONE))
    if text and q.quantized is True:
        extra.append(view.quantized)
    matches = _matches(view, q, extra)
    drop: frozenset[int] = frozenset()
    if text and q.exclude_backend_variations:
        drop |= view.prefixed
    if text and q.quantized is False:
        drop |= view.quantized[1]
    if drop:
        matches = Matches(matches.size, matches.driver, matches.required, matches.excluded | drop)
    return matches


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


def _envelope(page: list[Candidate], total: int, q: SearchAllQuery) -> bytes:
    has_more = "true" if q.offset + q.limit < total else "false"
    return (
        b'{"results":['
        + b",".join(c.listed for c in page)
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
            order = view.sort_cache[key] = _sorted_positions(view.candidates, *key)
        if matches.driver is None and not matches.excluded and not matches.required:
            total, page = len(order), order[q.offset : q.offset + q.limit]
        else:
            kept = [pos for pos in order if pos in matches]
            total, page = len(kept), kept[q.offset : q.offset + q.limit]
    return _envelope([view.candidates[pos] for pos in page], total, q)


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
        return _envelope([hits[i] for i in order[q.offset : q.offset + q.limit]], len(hits), q)
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
    page: list[Candidate] = []
    skip, room = q.offset, q.limit
    for (_, view, m), d in zip(found, dropped, strict=True):
        if room == 0:
            break
        count = m.total() - len(d)
        if skip >= count:
            skip -= count
            continue
        for p in m.window(0, skip + room + len(d)):
            if p in d:
                continue
            if skip:
                skip -= 1
                continue
            page.append(view.candidates[p])
            room -= 1
            if room == 0:
                break
    return _envelope(page, total, q)


def _dedupe(candidates: Iterator[Candidate]) -> Iterator[Candidate]:
    seen: set[str] = set()
    for c in candidates:
        if c.name not in seen:
            seen.add(c.name)
            yield c
