"""Search: filter on the indexes of the snapshot, dedupe, sort, page."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from horde_model_records import RECORD_TYPES, Category, has_backend_prefix
from horde_model_records.licensing import UNKNOWN_LICENSING_JSON
from shared.errors import BadRequest

from .view import Candidate, CategoryView, ReadModel
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


def _tag_filters(q: SearchAllQuery, c: Candidate) -> bool:
    tags = c.tags or frozenset()
    if q.tags_any and not tags.intersection(q.tags_any):
        return False
    if q.tags_all and (not tags or not tags.issuperset(q.tags_all)):
        return False
    return not (q.tags_none and tags.intersection(q.tags_none))


def _licensing_filters(q: SearchAllQuery, c: Candidate) -> bool:
    # a snapshot published before schema 2.1.0 has records without it: they are unreviewed
    licensing = c.record.get("licensing", UNKNOWN_LICENSING_JSON)
    if q.license_id is not None and q.license_id not in licensing["license_ids"]:
        return False
    if q.commercial_use is not None and licensing["commercial_use"] != q.commercial_use:
        return False
    return q.redistribution is None or licensing["redistribution"] == q.redistribution


def _common_filters(q: SearchAllQuery, c: Candidate) -> bool:
    if q.name_contains is not None and not c.name_contains(q.name_contains.lower()):
        return False
    return _tag_filters(q, c) and _licensing_filters(q, c)


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


def _category_matches(q: SearchQuery, view: CategoryView) -> list[int]:
    """Positions (dataset order) of the records of one category that pass every filter."""
    _check_fields(q, view)
    positions: frozenset[int] | None = None
    for field, value in (("nsfw", q.nsfw), ("baseline", q.baseline), ("inpainting", q.inpainting)):
        if value is None:
            continue
        hits = view.by_value.get((field, value), frozenset())
        positions = hits if positions is None else positions & hits
    text = view.category is Category.text_generation
    if text and q.backend is not None and q.backend not in BACKENDS:
        raise BadRequest(f"Unknown backend '{q.backend}'. Valid backends: {list(BACKENDS)}")
    out = []
    for pos, c in enumerate(view.candidates):
        if positions is not None and pos not in positions:
            continue
        if not _common_filters(q, c):
            continue
        if text:
            if q.backend is not None and not c.name.startswith(q.backend + "/"):
                continue
            if q.exclude_backend_variations and has_backend_prefix(c.name):
                continue
            if q.quantized is not None and c.quantized != q.quantized:
                continue
        out.append(pos)
    return out


# --- sorting --------------------------------------------------------------------------------------


def _value_at(record: dict[str, Any], path: list[str]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _sorted_positions(candidates: list[Candidate], sort_by: str, desc: bool) -> list[int]:
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


def _dedupe(candidates: Iterator[Candidate]) -> Iterator[Candidate]:
    seen: set[str] = set()
    for c in candidates:
        if c.name not in seen:
            seen.add(c.name)
            yield c


def _envelope(hits: list[Candidate], q: SearchAllQuery) -> bytes:
    page = hits[q.offset : q.offset + q.limit]
    total = len(hits)
    has_more = "true" if q.offset + q.limit < total else "false"
    return (
        b'{"results":['
        + b",".join(c.data for c in page)
        + f'],"total":{total},"offset":{q.offset},"limit":{q.limit},"has_more":{has_more}}}'.encode()
    )


def search_category(model: ReadModel, category: Category, q: SearchQuery) -> bytes:
    """The SearchResponse bytes for one category."""
    if q.source not in ("horde", "any"):
        raise BadRequest(
            f"Unknown source: No provider registered under source id '{q.source}'. "
            "Registered providers: []."
        )
    view = model.categories[category]
    if q.sort_by is not None:
        _check_sort_field(q.sort_by, view.fields)
    if category in (Category.lora, Category.ti):
        return _envelope([], q)  # managed elsewhere: always an empty page
    matches = _category_matches(q, view)
    if q.sort_by is not None:
        key = (q.sort_by, q.sort_desc)
        order = view.sort_cache.get(key)
        if order is None:
            order = view.sort_cache[key] = _sorted_positions(view.candidates, *key)
        wanted = set(matches)
        matches = [pos for pos in order if pos in wanted]
    hits = list(_dedupe(view.candidates[pos] for pos in matches))
    return _envelope(hits, q)


def search_all(model: ReadModel, q: SearchAllQuery) -> bytes:
    """The SearchResponse bytes across every category but lora/ti (those are managed elsewhere)."""
    if q.sort_by is not None:
        _check_sort_field(q.sort_by, COMMON_FIELDS)
    hits: list[Candidate] = []
    for category, view in model.categories.items():
        if category in (Category.lora, Category.ti):
            continue
        positions = None
        if q.nsfw is not None:
            positions = view.by_value.get(("nsfw", q.nsfw), frozenset())
        for pos, c in enumerate(view.candidates):
            if (positions is None or pos in positions) and _common_filters(q, c):
                hits.append(c)
    hits = list(_dedupe(iter(hits)))
    if q.sort_by is not None:
        order = _sorted_positions(hits, q.sort_by, q.sort_desc)
        hits = [hits[i] for i in order]
    return _envelope(hits, q)
