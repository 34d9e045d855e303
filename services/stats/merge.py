"""Matching models to AI-Horde status, usage and workers, by name variants and quant suffixes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from attrs import frozen

from horde_model_records import Category, variant_names

from .poller import HordeData, ModelStatus, Worker

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


Backend = Literal["canonical", "aphrodite", "koboldcpp"]


def backend_of(name: str) -> Backend:
    """Which text backend a name as AI-Horde reports it belongs to (by its prefix)."""
    lowered = name.lower()
    if lowered.startswith("aphrodite/"):
        return "aphrodite"
    if lowered.startswith("koboldcpp/"):
        return "koboldcpp"
    return "canonical"


@frozen
class BackendStats:
    """What AI-Horde says about one backend's variant of a text model."""

    backend: Backend
    variant_name: str  # the status entry's name, else the variant as the model reference names it
    status: ModelStatus | None
    usage_day: int
    usage_month: int
    usage_total: int

    @property
    def worker_count(self) -> int:
        return self.status.count if self.status else 0


@frozen
class ModelStats:
    """What AI-Horde says about one model, merged over its names."""

    status: ModelStatus | None
    usage_day: int
    usage_month: int
    usage_total: int
    has_usage_record: bool
    workers: tuple[Worker, ...]
    backends: tuple[BackendStats, ...] = ()  # text only: the backends with a status or usage

    @property
    def status_count(self) -> int:
        return self.status.count if self.status else 0

    def worker_count(self, include_workers: bool) -> int:
        if include_workers and self.workers:
            return len(self.workers)
        return self.status_count


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
        variants = variant_names(name) if self.text else [name]
        names = [n.lower() for n in variants]
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
            backends=self._backends(variants, keys) if self.text else (),
        )

    def _backends(self, variants: list[str], keys: list[str]) -> tuple[BackendStats, ...]:
        """The figures of each backend's variant (canonical, aphrodite/, koboldcpp/): its status
        entry, and the usage of the stats keys with its prefix, quantised siblings included;
        backends with neither are left out."""
        out = []
        for variant in variants:
            backend = backend_of(variant)
            status = self.status.get(variant.lower())
            mine = [k for k in keys if backend_of(k) == backend]
            day, month, total = (
                sum(self.usage.get(period, {}).get(k, 0) for k in mine)
                for period in ("day", "month", "total")
            )
            if status is None and not (day or month or total):
                continue
            out.append(
                BackendStats(
                    backend=backend,
                    variant_name=status.name if status else variant,
                    status=status,
                    usage_day=day,
                    usage_month=month,
                    usage_total=total,
                )
            )
        return tuple(out)
