"""Deletion-risk analysis: which models nobody uses or can download well."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from horde_model_records import Category, group_key

from .merge import HordeIndex, ModelStats
from .statistics import download_hosts

Json = dict[str, Any]

PREFERRED_HOSTS = ("huggingface.co",)
LOW_USAGE_PERCENT = {Category.image_generation: 0.0065, Category.text_generation: 0.02}
TEXT_CRITICAL_USAGE, TEXT_CRITICAL_WORKERS = 10, 1
_HOST_FLAGS = (
    "has_multiple_hosts",
    "has_non_preferred_host",
    "has_unknown_host",
    "no_download_urls",
)

PRESETS: dict[str, Callable[[Json], bool]] = {
    "deletion_candidates": lambda m: (
        m["at_risk"] or m["usage_percentage_of_category"] < 0.01 or m["worker_count"] == 0
    ),
    "zero_usage": lambda m: m["usage_month"] == 0,
    "no_workers": lambda m: m["worker_count"] == 0,
    "missing_data": lambda m: (
        m["deletion_risk_flags"]["missing_description"]
        or m["deletion_risk_flags"]["missing_baseline"]
    ),
    "host_issues": lambda m: any(m["deletion_risk_flags"][f] for f in _HOST_FLAGS),
    "critical": lambda m: m["is_critical"],
    "low_usage": lambda m: m["deletion_risk_flags"]["low_usage"],
}


def _entry(
    category: Category,
    name: str,
    flags: dict[str, bool],
    *,
    workers: int,
    day: int,
    month: int,
    total: int,
    share: float,
    size_gb: float | None,
    facts: Json,
    trend: Json | None = None,
) -> Json:
    """A risk entry from its flags and figures; `facts` are the record's own fields (baseline,
    nsfw, description, downloads, backend variations) in answer order. `share`: percent of the
    category's month usage; `trend`: the usage ratios, computed from the usages when None."""
    if category is Category.text_generation:
        critical = month < TEXT_CRITICAL_USAGE and workers < TEXT_CRITICAL_WORKERS
    else:
        critical = month == 0 and workers == 0
    return {
        "name": name,
        "category": category.value,
        "deletion_risk_flags": flags,
        "at_risk": any(flags.values()),
        "risk_score": sum(flags.values()),
        "worker_count": workers,
        "usage_day": day,
        "usage_month": month,
        "usage_total": total,
        "usage_hour": None,
        "usage_minute": None,
        "usage_percentage_of_category": share,
        "usage_trend": trend
        or {
            "day_to_month_ratio": round(day / month, 4) if month else 0.0,
            "month_to_total_ratio": round(month / total, 4) if total else 0.0,
        },
        "cost_benefit_score": round(month / size_gb, 2) if size_gb else None,
        "size_gb": size_gb,
        **facts,
        "is_critical": critical,
        "has_warning": any(flags[f] for f in _HOST_FLAGS),
    }


def _share(month: int, category_month: int) -> float:
    return round(month / category_month * 100, 4) if category_month else 0.0


def _low_usage(category: Category, month: int, category_month: int) -> bool:
    return _share(month, category_month) < LOW_USAGE_PERCENT[category] if category_month else False


def _variations(stats: ModelStats) -> list[Json] | None:
    """Per-backend figures of a text model as deletion risk lists them; null without any."""
    return [
        {
            "backend": b.backend,
            "variant_name": b.variant_name,
            "worker_count": b.worker_count,
            "performance": b.status.performance if b.status else None,
            "usage_day": b.usage_day,
            "usage_month": b.usage_month,
            "usage_total": b.usage_total,
        }
        for b in stats.backends
    ] or None


def _model_entry(
    category: Category, record: Json, stats: ModelStats, category_month: int, backends: bool
) -> Json:
    text = category is Category.text_generation
    urls = [d.get("file_url") or "" for d in record.get("config", {}).get("download", [])]
    hosts = download_hosts(record)
    month, day, total = stats.usage_month, stats.usage_day, stats.usage_total
    workers = stats.status_count
    flags = {
        "zero_usage_day": stats.has_usage_record and day == 0,
        "zero_usage_month": stats.has_usage_record and month == 0,
        "zero_usage_total": stats.has_usage_record and total == 0,
        "no_active_workers": workers == 0,
        # text models are downloaded by their backends, not from these URLs: no host flags
        "has_multiple_hosts": not text and len(hosts) > 1,
        "has_non_preferred_host": not text
        and any(not any(p in h for p in PREFERRED_HOSTS) for h in hosts),
        "has_unknown_host": not text and any(u and not h for u, h in ((u, _host(u)) for u in urls)),
        "no_download_urls": not text and not any(urls),
        "missing_description": not record.get("description"),
        "missing_baseline": not record.get("baseline"),
        "low_usage": _low_usage(category, month, category_month),
    }
    size = record.get("size_on_disk_bytes")
    size_gb = round(size / 1024**3, 2) if isinstance(size, int) and size > 0 else None
    return _entry(
        category,
        record["name"],
        flags,
        workers=workers,
        day=day,
        month=month,
        total=total,
        share=_share(month, category_month),
        size_gb=size_gb,
        facts={
            "baseline": record.get("baseline"),
            "nsfw": record.get("nsfw", False),
            "has_description": bool(record.get("description")),
            "download_count": len(urls),
            "download_hosts": hosts,
            "backend_variations": _variations(stats) if backends else None,
        },
    )


def _weighted_ratio(members: list[Json], key: str, weight: int) -> float | None:
    """A trend ratio of a group: the members' ratios weighted by their month usage."""
    parts = [m["usage_trend"][key] * m["usage_month"] for m in members if m["usage_trend"][key]]
    return round(sum(parts) / weight, 4) if parts and weight else None


def _group_entry(category: Category, name: str, members: list[Json]) -> Json:
    """One entry for a group of text models (spec 07 §7.2): usages, shares and downloads summed,
    the most served member's worker count, every flag OR-ed over the members, trends weighted
    by month usage, the mean of the known sizes, the first member's baseline and nsfw."""
    if len(members) == 1:
        return {**members[0], "name": name}
    day, month, total = (sum(m[f"usage_{p}"] for m in members) for p in ("day", "month", "total"))
    workers = max(m["worker_count"] for m in members)
    flags = {
        flag: any(m["deletion_risk_flags"][flag] for m in members)
        for flag in members[0]["deletion_risk_flags"]
    }
    sizes = [m["size_gb"] for m in members if m["size_gb"] is not None]
    size_gb = round(sum(sizes) / len(sizes), 2) if sizes and sum(sizes) > 0 else None
    first = members[0]
    return _entry(
        category,
        name,
        flags,
        workers=workers,
        day=day,
        month=month,
        total=total,
        share=round(sum(m["usage_percentage_of_category"] for m in members), 4),
        size_gb=size_gb,
        facts={
            "baseline": first["baseline"],
            "nsfw": first["nsfw"],
            "has_description": all(m["has_description"] for m in members),
            "download_count": sum(m["download_count"] for m in members),
            "download_hosts": list(dict.fromkeys(h for m in members for h in m["download_hosts"])),
            "backend_variations": None,
        },
        trend={
            "day_to_month_ratio": _weighted_ratio(members, "day_to_month_ratio", month),
            "month_to_total_ratio": _weighted_ratio(members, "month_to_total_ratio", month),
        },
    )


def group_entries(category: Category, entries: list[Json]) -> list[Json]:
    """Risk entries (most used first) grouped by base(name), in first-seen order (spec 07 §7.2)."""
    groups: dict[str, list[Json]] = {}
    for entry in entries:
        groups.setdefault(group_key(entry["name"]), []).append(entry)
    return [_group_entry(category, name, members) for name, members in groups.items()]


def _host(url: str) -> str:
    return urlsplit(url).netloc


def deletion_risk_models(
    category: Category,
    records: Iterable[Json],
    index: HordeIndex,
    *,
    grouped: bool = False,
    backend_variations: bool = False,
) -> list[Json]:
    """Every model's risk entry, most used first (ties keep dataset order). Text models only:
    `grouped` gives one entry per base-model group (base(name)), named after the group;
    `backend_variations` (ungrouped) lists each model's figures per backend."""
    items = list(records)
    merged = [index.merge(r["name"]) for r in items]
    category_month = sum(s.usage_month for s in merged)
    text = category is Category.text_generation
    backends = backend_variations and text and not grouped
    entries = [
        _model_entry(category, r, s, category_month, backends)
        for r, s in zip(items, merged, strict=True)
    ]
    entries.sort(key=lambda m: m["usage_month"], reverse=True)
    if grouped and text:
        entries = group_entries(category, entries)
    return entries


def summarise(entries: list[Json], category_month: int) -> Json:
    def count(pred: Callable[[Json], bool]) -> int:
        return sum(1 for m in entries if pred(m))

    def flags(name: str) -> int:
        return count(lambda m: m["deletion_risk_flags"][name])

    return {
        "total_models": len(entries),
        "models_at_risk": count(lambda m: m["at_risk"]),
        "models_critical": count(lambda m: m["is_critical"]),
        "models_with_warnings": count(lambda m: m["has_warning"]),
        "models_with_zero_day_usage": flags("zero_usage_day"),
        "models_with_zero_month_usage": flags("zero_usage_month"),
        "models_with_zero_total_usage": flags("zero_usage_total"),
        "models_with_no_active_workers": flags("no_active_workers"),
        "models_with_no_downloads": flags("no_download_urls"),
        "models_with_non_preferred_hosts": flags("has_non_preferred_host"),
        "models_with_multiple_hosts": flags("has_multiple_hosts"),
        "models_with_low_usage": flags("low_usage"),
        "average_risk_score": round(sum(m["risk_score"] for m in entries) / len(entries), 2)
        if entries
        else 0.0,
        "category_total_month_usage": category_month,
    }
