"""Matching models to AI-Horde status, usage and workers, by name variants and quant suffixes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from horde_model_records import Category, variant_names

from .poller import HordeData, ModelStatus, Worker

Json = dict[str, Any]

# a quantisation suffix at the end of a name: "-Q4_K_M", "-Q8_0", "-GGUF", "-fp16", ...
_QUANT_SUFFIX = re.compile(
    r"[-_.](Q[2-8]_K(_[SMLH])?|Q[2-8]_[01]|Q[2-8]|GGUF|GGML|GPTQ|AWQ|EXL2|fp16|fp32|int8|int4)$",
    re.IGNORECASE,
)
_TYPE = {Category.image_generation: "image", Category.text_generation: "text"}


def strip_quant(name: str) -> str:
    previous = None
    while previous != name:
        previous, name = name, _QUANT_SUFFIX.sub("", name)
    return name


@frozen
class ModelStats:
    """What AI-Horde says about one model, merged over its names."""

    status: ModelStatus | None
    usage_day: int
    usage_month: int
    usage_total: int
    has_usage_record: bool
    workers: tuple[Worker, ...]

    @property
    def status_count(self) -> int:
        return self.status.count if self.status else 0

    def worker_count(self, include_workers: bool) -> int:
        if include_workers and self.workers:
            return len(self.workers)
        return self.status_count

    def to_wire(self, include_workers: bool) -> Json:
        """The `stats` object of `popular`, nulls omitted, worker_count always present."""
        out: Json = {}
        if self.status is not None:
            out.update(
                queued_jobs=self.status.jobs,
                performance=self.status.performance,
                eta=self.status.eta,
                queued=self.status.queued,
            )
        if self.usage_day or self.usage_month or self.usage_total:
            out["usage_stats"] = {
                "day": self.usage_day,
                "month": self.usage_month,
                "total": self.usage_total,
            }
        if include_workers and self.workers:
            out["worker_summaries"] = {w.id: w.summary() for w in self.workers}
        out["worker_count"] = self.worker_count(include_workers)
        return out


@frozen
class HordeIndex:
    """Upstream data of one model type, indexed once per poll for cheap per-model merging."""

    status: Mapping[str, ModelStatus]
    usage: Mapping[str, Mapping[str, int]]
    quant_siblings: Mapping[str, tuple[str, ...]]  # stripped name -> stats keys with a quant suffix
    workers_by_model: Mapping[str, tuple[Worker, ...]]
    text: bool

    @classmethod
    def build(cls, data: HordeData, category: Category) -> HordeIndex:
        kind = _TYPE[category]
        usage = data.get(f"usage_{kind}") or {}
        siblings: dict[str, list[str]] = {}
        for key in set().union(*(usage.get(p, {}) for p in ("day", "month", "total"))):
            stripped = strip_quant(key)
            if stripped != key:
                siblings.setdefault(stripped, []).append(key)
        by_model: dict[str, list[Worker]] = {}
        for worker in data.get(f"workers_{kind}") or ():
            for model in worker.models:
                by_model.setdefault(model, []).append(worker)
        return cls(
            status=data.get(f"status_{kind}") or {},
            usage=usage,
            quant_siblings={k: tuple(sorted(v)) for k, v in siblings.items()},
            workers_by_model={k: tuple(v) for k, v in by_model.items()},
            text=category is Category.text_generation,
        )

    def merge(self, name: str) -> ModelStats:
        names = [n.lower() for n in variant_names(name)] if self.text else [name.lower()]
        statuses = [self.status[n] for n in names if n in self.status]
        status = max(statuses, key=lambda s: s.count) if statuses else None
        keys = list(names)
        if self.text:
            for n in names:
                keys += [k for k in self.quant_siblings.get(n, ()) if k not in keys]
        sums = {}
        has_record = False
        for period in ("day", "month", "total"):
            counts = self.usage.get(period, {})
            present = [counts[k] for k in keys if k in counts]
            has_record = has_record or bool(present)
            sums[period] = sum(present)
        seen: dict[str, Worker] = {}
        for n in names:
            for worker in self.workers_by_model.get(n, ()):
                seen.setdefault(worker.id, worker)
        return ModelStats(
            status=status,
            usage_day=sums["day"],
            usage_month=sums["month"],
            usage_total=sums["total"],
            has_usage_record=has_record,
            workers=tuple(seen.values()),
        )
