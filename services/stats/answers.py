"""A model's merged AI-Horde figures as the routes answer them: popular and with-stats."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .merge import BackendStats, HordeIndex
from .merge import ModelStats as MergedStats
from .wire import (
    BackendVariation,
    ModelStats,
    UsageStats,
    WithStatsQuery,
    WorkerSummary,
)

Json = dict[str, Any]


_SUMMARY_FIELDS = tuple(a.name for a in attrs.fields(WorkerSummary))


def _variation(backend: BackendStats) -> BackendVariation:
    status = backend.status
    return BackendVariation(
        backend=backend.backend,
        variant_name=backend.variant_name,
        worker_count=backend.worker_count,
        performance=status.performance if status else None,
        queued=status.queued if status else None,
        queued_jobs=status.jobs if status else None,
        eta=status.eta if status else None,
        usage_day=backend.usage_day,
        usage_month=backend.usage_month,
        usage_total=backend.usage_total,
    )


def model_stats(
    stats: MergedStats, *, include_workers: bool, include_backends: bool = False
) -> ModelStats:
    """The answer's figures of one model. `backend_variations` is an object (possibly empty)
    when asked for and the model is a text model, else null."""
    status = stats.status
    usage = None
    if stats.usage_day or stats.usage_month or stats.usage_total:
        usage = UsageStats(day=stats.usage_day, month=stats.usage_month, total=stats.usage_total)
    workers = None
    if include_workers and stats.workers:
        # a summary is the polled worker's fields of the same names, its model list left out
        workers = {
            w.id: WorkerSummary(**{name: getattr(w, name) for name in _SUMMARY_FIELDS})
            for w in stats.workers
        }
    return ModelStats(
        queued_jobs=status.jobs if status else None,
        performance=status.performance if status else None,
        eta=status.eta if status else None,
        queued=status.queued if status else None,
        usage_stats=usage,
        worker_summaries=workers,
        backend_variations={b.backend: _variation(b) for b in stats.backends}
        if include_backends
        else None,
        worker_count=stats.worker_count(include_workers),
    )


def without_nulls(value: Json) -> Json:
    """`popular`'s shape of the figures: null fields left out."""
    return {k: v for k, v in value.items() if v is not None}


_SORT_KEYS: dict[str, Callable[[str, ModelStats], Any]] = {
    "worker_count": lambda _name, s: s.worker_count,
    "usage_total": lambda _name, s: s.usage_stats.total if s.usage_stats else 0,
    "usage_month": lambda _name, s: s.usage_stats.month if s.usage_stats else 0,
    "name": lambda name, _s: name.lower(),
}


def models_with_stats(
    names: Iterable[str], index: HordeIndex, query: WithStatsQuery, text: bool
) -> dict[str, ModelStats]:
    """Model name → figures, filtered by `min_worker_count` and ordered by `sort_by` (stable:
    ties keep dataset order); backend variations are for text models only."""
    rows = [
        (
            name,
            model_stats(
                index.merge(name),
                include_workers=query.include_workers,
                include_backends=query.include_backend_variations and text,
            ),
        )
        for name in names
    ]
    if query.min_worker_count is not None:
        least = query.min_worker_count
        rows = [(name, s) for name, s in rows if s.worker_count >= least]
    if query.sort_by is not None:
        key = _SORT_KEYS[query.sort_by]
        rows.sort(key=lambda row: key(*row), reverse=query.sort_desc)
    return dict(rows)
