"""Small helpers over records: filtering a category, and what a worker asks of one record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from horde_model_records import ModelRecord
from horde_model_records.categories import KNOWN_BASELINES


def _canonical_baseline(value: str) -> str:
    # image baselines have alternative names (SDXL, "stable diffusion 1"...); others are free-form
    return KNOWN_BASELINES.get(value, value)


def select_models(
    records: Mapping[str, ModelRecord],
    *,
    baseline: str | None = None,
    nsfw: bool | None = None,
    inpainting: bool | None = None,
    name: str | None = None,
    tags_any: Iterable[str] | None = None,
) -> dict[str, ModelRecord]:
    """The records matching every given filter, in their order.

    `baseline` matches any spelling of the same image baseline (`SDXL` = `stable_diffusion_xl`);
    `name` is a case-insensitive substring; `tags_any` keeps records carrying at least one of the
    tags. A record without the filtered field does not match (text models have no `inpainting`).
    """
    want_baseline = None if baseline is None else _canonical_baseline(baseline)
    needle = None if name is None else name.casefold()
    tags = None if tags_any is None else frozenset(tags_any)
    out: dict[str, ModelRecord] = {}
    for key, record in records.items():
        if want_baseline is not None:
            value = getattr(record, "baseline", None)
            if value is None or _canonical_baseline(value) != want_baseline:
                continue
        if nsfw is not None and getattr(record, "nsfw", None) is not nsfw:
            continue
        if inpainting is not None and getattr(record, "inpainting", None) is not inpainting:
            continue
        if needle is not None and needle not in key.casefold():
            continue
        if tags is not None and not tags.intersection(getattr(record, "tags", None) or ()):
            continue
        out[key] = record
    return out


def download_urls(record: ModelRecord) -> list[str]:
    """Every download URL of the record, in order (the record's `all_download_urls`)."""
    return record.all_download_urls


def primary_download_url(record: ModelRecord) -> str | None:
    """The first download's URL, or None (the record's `primary_download_url`)."""
    return record.primary_download_url


def download_count(record: ModelRecord) -> int:
    return record.download_count


def declared_size_bytes(record: ModelRecord) -> int | None:
    """The record's `declared_total_size_bytes`."""
    return record.declared_total_size_bytes
