"""`mgr.query(category)`: upstream's fluent, immutable query over one category's records.

    mgr.query("image_generation").where(nsfw=False, baseline="stable_diffusion_xl")
        .tags_any(["anime"]).order_by("size_on_disk_bytes", descending=True).limit(10).to_list()

Every method returns a new query; nothing is fetched or evaluated until a terminal
(`to_list`, `first`, `count`...). Records from several sources are deduplicated by name, the
first source winning; `duplicate_names()` shows the clashes and `source_status()` what each
selected source gave.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, Self, TypeVar

import attrs

from horde_model_records import Category, ModelRecord, has_backend_prefix
from horde_model_records.categories import TEXT_BACKEND_PREFIXES
from horde_model_records.records import (
    ControlNetRecord,
    ImageGenerationRecord,
    TextGenerationRecord,
)

from ._sources import HORDE_SOURCE_ID, SourceOutcome

T = TypeVar("T", bound=ModelRecord)

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "ne": operator.ne,
    "in": lambda value, choices: value in choices,
    "contains": lambda value, item: item in value,
}


def _split_key(key: str) -> tuple[str, str | None]:
    """`size_on_disk_bytes__gt` -> (`size_on_disk_bytes`, `gt`); nested fields use `__` too."""
    field, _, suffix = key.rpartition("__")
    if field and suffix in _OPERATORS:
        return field, suffix
    return key, None


def _value(record: object, path: str) -> Any:
    """The value at `path` (`finetune_series__name`); ValueError when a step is missing."""
    value: Any = record
    for part in path.split("__"):
        if value is None:
            raise ValueError(f"field path {path!r}: {part!r} is under a None")
        if isinstance(value, Mapping):
            if part not in value:
                raise ValueError(f"field path {path!r}: no key {part!r}")
            value = value[part]
        elif hasattr(value, part):
            value = getattr(value, part)
        else:
            raise ValueError(f"field path {path!r}: {type(value).__name__} has no {part!r}")
    return value


def _iterable(value: object) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes)


def _hashable(field: str, value: object) -> Hashable:
    candidate = tuple(value) if isinstance(value, list) else value
    try:
        hash(candidate)
    except TypeError:
        raise ValueError(
            f"field {field!r} holds {type(value).__name__} values: not groupable"
        ) from None
    return candidate


class ModelQuery(Generic[T]):
    """A query over `records` (of `record_type`), each from the source at the same index."""

    def __init__(
        self,
        records: Sequence[T],
        record_type: type[ModelRecord],
        *,
        sources: Sequence[str] | None = None,
        source_status: Mapping[str, SourceOutcome] | None = None,
    ) -> None:
        if sources is not None and len(sources) != len(records):
            raise ValueError(f"{len(sources)} sources for {len(records)} records")
        self._records = tuple(records)
        self._record_type = record_type
        self._sources = tuple(sources) if sources is not None else (HORDE_SOURCE_ID,) * len(records)
        self._status = dict(source_status) if source_status is not None else None
        self._predicates: tuple[Callable[[T], bool], ...] = ()
        self._source_predicates: tuple[Callable[[str], bool], ...] = ()
        self._order: tuple[str, bool] | None = None
        self._offset = 0
        self._limit: int | None = None

    def _with(self, **changes: Any) -> Self:
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        for name, value in changes.items():
            setattr(clone, f"_{name}", value)
        return clone

    def _check_field(self, field: str) -> None:
        top = field.split("__")[0]
        names = attrs.fields_dict(self._record_type)
        if top not in names:
            raise ValueError(
                f"{self._record_type.__name__} has no field {top!r}; fields: {sorted(names)}"
            )

    # --- filters ---------------------------------------------------------------------------------

    def where(self, *predicates: Callable[[T], bool], **fields: object) -> Self:
        """Keep records passing every predicate and field test.

        `nsfw=False` tests equality, an iterable value (not a string) membership; suffixes
        `__lt __lte __gt __gte __ne __in __contains` compare; `a__b` reaches a nested field.
        An unknown field or operator raises ValueError.
        """
        added = list(predicates)
        for key, wanted in fields.items():
            field, op = _split_key(key)
            self._check_field(field)
            if op is None and _iterable(wanted):
                op = "in"
            added.append(self._test(field, op, wanted))
        return self._with(predicates=(*self._predicates, *added))

    @staticmethod
    def _test(field: str, op: str | None, wanted: object) -> Callable[[T], bool]:
        if op is None:
            return lambda record: bool(_value(record, field) == wanted)
        if op == "in" and not _iterable(wanted):
            raise ValueError(f"{field}__in needs a list (or another non-string iterable)")
        compare = _OPERATORS[op]

        def test(record: T) -> bool:
            value = _value(record, field)
            if value is None or (op == "contains" and not _iterable(value)):
                return False
            return compare(value, wanted)

        return test

    def where_classification(
        self, *, domain: str | None = None, purpose: str | None = None
    ) -> Self:
        """Keep records of that domain and/or purpose (`model_classification`)."""

        def test(record: T) -> bool:
            found = record.model_classification
            return (domain is None or found.domain == domain) and (
                purpose is None or found.purpose == purpose
            )

        return self.filter(test)

    def _tags(self, tags: Iterable[str], keep: Callable[[set[str], set[str]], bool]) -> Self:
        self._check_field("tags")
        wanted = set(tags)
        return self.filter(lambda record: keep(wanted, set(getattr(record, "tags", None) or ())))

    def tags_any(self, tags: Iterable[str]) -> Self:
        """Keep records carrying at least one of `tags`."""
        return self._tags(tags, lambda wanted, have: bool(wanted & have))

    def tags_all(self, tags: Iterable[str]) -> Self:
        """Keep records carrying all of `tags`."""
        return self._tags(tags, lambda wanted, have: bool(have) and wanted <= have)

    def tags_none(self, tags: Iterable[str]) -> Self:
        """Keep records carrying none of `tags`."""
        return self._tags(tags, lambda wanted, have: not wanted & have)

    def filter(self, predicate: Callable[[T], bool]) -> Self:
        return self._with(predicates=(*self._predicates, predicate))

    def where_source(self, *source_ids: str) -> Self:
        """Keep records from these sources."""
        allowed = set(source_ids)
        return self._with(source_predicates=(*self._source_predicates, allowed.__contains__))

    # --- shaping ---------------------------------------------------------------------------------

    def order_by(self, field: str, *, descending: bool = False) -> Self:
        """Sort by a field; records without a value come last either way."""
        self._check_field(field)
        return self._with(order=(field, descending))

    def limit(self, n: int) -> Self:
        return self._with(limit=n)

    def offset(self, n: int) -> Self:
        return self._with(offset=n)

    # --- running it ------------------------------------------------------------------------------

    def _filtered(self) -> list[tuple[T, str]]:
        return [
            (record, source)
            for record, source in zip(self._records, self._sources, strict=True)
            if all(test(source) for test in self._source_predicates)
            and all(test(record) for test in self._predicates)
        ]

    def _run(self) -> list[tuple[T, str]]:
        seen: set[str] = set()
        pairs = []
        for record, source in self._filtered():
            if record.name not in seen:
                seen.add(record.name)
                pairs.append((record, source))
        if self._order is not None:
            field, descending = self._order
            valued = [(p, _value(p[0], field)) for p in pairs]
            present = [(p, v) for p, v in valued if v is not None]
            try:
                present.sort(key=lambda item: item[1], reverse=descending)
            except TypeError:
                raise ValueError(f"cannot order by {field!r}: its values do not compare") from None
            pairs = [p for p, _ in present] + [p for p, v in valued if v is None]
        end = None if self._limit is None else self._offset + self._limit
        return pairs[self._offset : end]

    def to_list(self) -> list[T]:
        return [record for record, _ in self._run()]

    def to_list_with_source(self) -> list[tuple[T, str]]:
        """[(record, source id)]."""
        return self._run()

    def sources(self) -> list[str]:
        """The source ids of `to_list()`, in its order."""
        return [source for _, source in self._run()]

    def first(self) -> T | None:
        found = self.limit(1).to_list()
        return found[0] if found else None

    def count(self) -> int:
        return len(self._run())

    def distinct(self, field: str) -> list[object]:
        """The values of `field` among the results, each once, in order."""
        self._check_field(field)
        seen: set[Hashable] = set()
        out = []
        for record in self.to_list():
            value = _value(record, field)
            key = _hashable(field, value)
            if key not in seen:
                seen.add(key)
                out.append(value)
        return out

    def group_by(self, field: str) -> dict[Hashable, list[T]]:
        """The results by their value of `field` (lists as tuples)."""
        self._check_field(field)
        groups: dict[Hashable, list[T]] = {}
        for record in self.to_list():
            groups.setdefault(_hashable(field, _value(record, field)), []).append(record)
        return groups

    def group_by_source(self) -> dict[str, list[T]]:
        groups: dict[str, list[T]] = {}
        for record, source in self._run():
            groups.setdefault(source, []).append(record)
        return groups

    def duplicate_names(self) -> dict[str, list[str]]:
        """Names more than one source had (after filtering): name -> source ids, winner first."""
        by_name: dict[str, list[str]] = {}
        for record, source in self._filtered():
            by_name.setdefault(record.name, []).append(source)
        return {name: ids for name, ids in by_name.items() if len(ids) > 1}

    def has_duplicate_names(self) -> bool:
        return bool(self.duplicate_names())

    def source_status(self) -> dict[str, SourceOutcome]:
        """Each selected source: "ok" (had records), "empty" (had none) or "error" (failed)."""
        if self._status is not None:
            return dict(self._status)
        return {HORDE_SOURCE_ID: "ok" if self._records else "empty"}

    def failed_sources(self) -> list[str]:
        return [source for source, outcome in self.source_status().items() if outcome == "error"]


class ImageGenerationQuery(ModelQuery[ImageGenerationRecord]):
    """Image models, with shortcuts for baseline, NSFW and inpainting."""

    def for_baseline(self, baseline: str) -> Self:
        return self.filter(lambda record: record.baseline == baseline)

    def only_nsfw(self) -> Self:
        return self.filter(lambda record: record.nsfw)

    def exclude_nsfw(self) -> Self:
        return self.filter(lambda record: not record.nsfw)

    def only_inpainting(self) -> Self:
        return self.filter(lambda record: record.inpainting)

    def exclude_inpainting(self) -> Self:
        return self.filter(lambda record: not record.inpainting)


class TextModelQuery(ModelQuery[TextGenerationRecord]):
    """Text models, with shortcuts for backend prefixes, quantization and base models."""

    def for_backend(self, backend: str) -> Self:
        """Names carrying that backend's prefix (`aphrodite`, `koboldcpp`)."""
        prefix = f"{backend}/"
        if prefix not in TEXT_BACKEND_PREFIXES:
            known = [p.rstrip("/") for p in TEXT_BACKEND_PREFIXES]
            raise ValueError(f"unknown backend {backend!r}; known: {known}")
        return self.filter(lambda record: record.name.startswith(prefix))

    def exclude_backend_variations(self) -> Self:
        return self.filter(lambda record: not has_backend_prefix(record.name))

    def only_quantized(self) -> Self:
        from horde_model_records import is_quantized

        return self.filter(lambda record: is_quantized(record.name))

    def exclude_quantized(self) -> Self:
        from horde_model_records import is_quantized

        return self.filter(lambda record: not is_quantized(record.name))

    def group_by_base_model(self) -> dict[str, list[TextGenerationRecord]]:
        from horde_model_records import text_model_group

        groups: dict[str, list[TextGenerationRecord]] = {}
        for record in self.to_list():
            groups.setdefault(text_model_group(record.name), []).append(record)
        return groups


class ControlNetQuery(ModelQuery[ControlNetRecord]):
    """ControlNet models, with shortcuts for their style."""

    def for_style(self, style: str) -> Self:
        return self.filter(lambda record: record.controlnet_style == style)

    def group_by_style(self) -> dict[str, list[ControlNetRecord]]:
        groups: dict[str, list[ControlNetRecord]] = {}
        for record in self.to_list():
            if record.controlnet_style is not None:
                groups.setdefault(record.controlnet_style, []).append(record)
        return groups


#: the query class of the categories that have their own shortcuts
QUERY_TYPES: dict[Category, type[ModelQuery[Any]]] = {
    Category.image_generation: ImageGenerationQuery,
    Category.text_generation: TextModelQuery,
    Category.controlnet: ControlNetQuery,
}
