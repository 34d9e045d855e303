"""CategoryStatistics: a pure function of one category's records."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from horde_model_records import Category, group_key

Json = dict[str, Any]

_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("< 3B", 0, 3_000_000_000),
    ("3B-6B", 3_000_000_000, 6_000_000_000),
    ("6B-9B", 6_000_000_000, 9_000_000_000),
    ("9B-13B", 9_000_000_000, 13_000_000_000),
    ("13B-20B", 13_000_000_000, 20_000_000_000),
    ("20B-35B", 20_000_000_000, 35_000_000_000),
    ("35B-70B", 35_000_000_000, 70_000_000_000),
    ("> 70B", 70_000_000_000, None),
)


def _pct(count: int, total: int) -> float:
    return round(count / total * 100, 2) if total else 0.0


def _ranked(counter: Counter[str], total: int, key: str, top: int | None = None) -> list[Json]:
    # Counter.most_common keeps first-seen order among equal counts
    return [
        {key: name, "count": count, "percentage": _pct(count, total)}
        for name, count in counter.most_common(top)
    ]


def download_hosts(record: Json) -> list[str]:
    """The distinct hosts of a record's non-empty download URLs, in order."""
    hosts: dict[str, None] = {}
    for d in record.get("config", {}).get("download", []):
        url = d.get("file_url") or ""
        if url:
            hosts[urlsplit(url).netloc] = None
    return list(hosts)


def parameters_of(record: Json) -> int:
    value = record.get("parameters", record.get("parameters_count"))
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def group_records(records: list[Json]) -> list[Json]:
    """One record per text model group: the first member, renamed, with every member's downloads."""
    groups: dict[str, Json] = {}
    for record in records:
        group = group_key(record["name"])
        if group not in groups:
            first = dict(record)
            first["name"] = group
            first["config"] = {"download": list(record.get("config", {}).get("download", []))}
            groups[group] = first
        else:
            groups[group]["config"]["download"] += record.get("config", {}).get("download", [])
    return list(groups.values())


def category_statistics(category: Category, records: Iterable[Json], grouped: bool) -> Json:
    items = list(records)
    if grouped and category is Category.text_generation:
        items = group_records(items)
    total = len(items)
    baselines: Counter[str] = Counter(r["baseline"] for r in items if r.get("baseline"))
    tags: Counter[str] = Counter(t for r in items for t in (r.get("tags") or []))
    styles: Counter[str] = Counter(r["style"] for r in items if r.get("style"))
    hosts: Counter[str] = Counter()
    entries = with_downloads = 0
    sizes = []
    for r in items:
        downloads = r.get("config", {}).get("download", [])
        entries += len(downloads)
        with_downloads += bool(downloads)
        for d in downloads:
            if d.get("file_url"):
                hosts[urlsplit(d["file_url"]).netloc] += 1
        size = r.get("size_on_disk_bytes")
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            sizes.append(size)
    out: Json = {
        "category": category.value,
        "total_models": total,
        "returned_models": total,
        "nsfw_count": sum(1 for r in items if r.get("nsfw")),
        "baseline_distribution": {
            row["baseline"]: row for row in _ranked(baselines, total, "baseline")
        },
        "download_stats": {
            "total_models_with_downloads": with_downloads,
            "total_download_entries": entries,
            "total_size_bytes": sum(sizes),
            "models_with_size_info": len(sizes),
            "average_size_bytes": round(sum(sizes) / len(sizes), 2) if sizes else 0.0,
            "hosts": dict(hosts.most_common()),
        },
        "top_tags": _ranked(tags, total, "tag", 20),
        "top_styles": _ranked(styles, total, "tag", 20),
        "parameter_buckets": [],
        "models_without_param_info": 0,
        "models_with_trigger_words": 0,
        "models_with_inpainting": 0,
        "models_with_requirements": 0,
        "models_with_showcases": sum(1 for r in items if r.get("showcases")),
        "computed_at": int(time.time()),
    }
    if category is Category.text_generation:
        params = [parameters_of(r) for r in items]
        buckets = []
        for label, low, high in _BUCKETS:
            count = sum(1 for p in params if p > 0 and p >= low and (high is None or p < high))
            if count:
                buckets.append(
                    {
                        "bucket_label": label,
                        "min_params": low,
                        "max_params": high,
                        "count": count,
                        "percentage": _pct(count, total),
                    }
                )
        out["parameter_buckets"] = buckets
        out["models_without_param_info"] = sum(1 for p in params if p <= 0)
    if category is Category.image_generation:
        out["models_with_trigger_words"] = sum(1 for r in items if r.get("trigger"))
        out["models_with_inpainting"] = sum(1 for r in items if r.get("inpainting"))
        out["models_with_requirements"] = sum(1 for r in items if r.get("requirements"))
    return out
