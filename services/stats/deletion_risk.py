"""Deletion-risk analysis: which models nobody uses or can download well."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from horde_model_records import Category

from .merge import HordeIndex
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


def _model_entry(category: Category, record: Json, index: HordeIndex, category_month: int) -> Json:
    stats = index.merge(record["name"])
    text = category is Category.text_generation
    urls = [d.get("file_url") or "" for d in record.get("config", {}).get("download", [])]
    hosts = download_hosts(record)
    month, day, total = stats.usage_month, stats.usage_day, stats.usage_total
    share = round(month / category_month * 100, 4) if category_month else 0.0
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
        "low_usage": share < LOW_USAGE_PERCENT[category] if category_month else False,
    }
    size = record.get("size_on_disk_bytes")
    size_gb = round(size / 1024**3, 2) if isinstance(size, int) and size > 0 else None
    if text:
        critical = month < TEXT_CRITICAL_USAGE and workers < TEXT_CRITICAL_WORKERS
    else:
        critical = month == 0 and workers == 0
    return {
        "name": record["name"],
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
        "usage_trend": {
            "day_to_month_ratio": round(day / month, 4) if month else 0.0,
            "month_to_total_ratio": round(month / total, 4) if total else 0.0,
        },
        "cost_benefit_score": round(month / size_gb, 2) if size_gb else None,
        "size_gb": size_gb,
        "baseline": record.get("baseline"),
        "nsfw": record.get("nsfw", False),
        "has_description": bool(record.get("description")),
        "download_count": len(urls),
        "download_hosts": hosts,
        "backend_variations": None,
        "is_critical": critical,
        "has_warning": any(flags[f] for f in _HOST_FLAGS),
    }


def _host(url: str) -> str:
    return urlsplit(url).netloc


def deletion_risk_models(
    category: Category, records: Iterable[Json], index: HordeIndex
) -> list[Json]:
    """Every model's risk entry, most used first (ties keep dataset order)."""
    items = list(records)
    category_month = sum(index.merge(r["name"]).usage_month for r in items)
    entries = [_model_entry(category, r, index, category_month) for r in items]
    entries.sort(key=lambda m: m["usage_month"], reverse=True)
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
