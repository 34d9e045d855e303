"""What the stats service takes and answers: its query strings and the shapes of its answers,
from which the OpenAPI document is derived."""

from __future__ import annotations

from typing import Literal

from attrs import frozen

from shared.wire import JsonObject, documented, integer, text

from .deletion_risk import PRESETS
from .merge import Backend

Sort = Literal["worker_count", "usage_day", "usage_month", "usage_total"]
WithStatsSort = Literal["worker_count", "usage_total", "usage_month", "name"]


@frozen(kw_only=True)
class PopularQuery:
    limit: int = integer(ge=1, le=100, default=10, description="How many.")
    sort_by: Sort = documented("Ranking.", default="worker_count")
    include_workers: bool = documented("Attach per-worker summaries.", default=False)


@frozen(kw_only=True)
class StatisticsQuery:
    group_text_models: bool = documented("Group text models by base name.", default=False)
    limit: int | None = integer(ge=1, default=None, description="Page size (echoed).")
    offset: int = integer(ge=0, default=0, description="Page start (echoed).")


@frozen(kw_only=True)
class WithStatsQuery:
    include_workers: bool = documented(
        "Attach per-worker summaries; `worker_count` then counts the matched workers.",
        default=False,
    )
    include_backend_variations: bool = documented(
        "Text models: add figures per backend (canonical, aphrodite, koboldcpp).", default=False
    )
    min_worker_count: int | None = integer(
        ge=0, default=None, description="Keep only models with at least this `worker_count`."
    )
    sort_by: WithStatsSort | None = documented(
        "Order of the models (`name` ignores case); dataset order without it.", default=None
    )
    sort_desc: bool = documented("Descending order (with `sort_by`).", default=True)


@frozen(kw_only=True)
class DeletionRiskQuery:
    preset: str | None = text(
        max_length=256,
        default=None,
        description=f"Keep only models matching a preset: {', '.join(PRESETS)}.",
    )
    group_text_models: bool = documented(
        "Text models: one entry per base-model group (usage summed, the most served member's "
        "worker count); ignored for image models.",
        default=False,
    )
    include_backend_variations: bool = documented(
        "Text models, ungrouped: add each model's figures per backend.", default=False
    )
    limit: int | None = integer(ge=1, default=None, description="Page size.")
    offset: int = integer(ge=0, default=0, description="Page start.")


@frozen(kw_only=True)
class HordeHealth:
    """How polling AI-Horde goes."""

    polling: bool
    degraded: bool = documented(
        "The circuit breaker is open (5 failed fetches in a row), or the poll in progress has "
        "waited longer than the request timeout (`HMR_HORDE_TIMEOUT`)."
    )
    consecutive_failures: int
    seconds_until_retry: float | None = documented("Cooldown left while the breaker is open.")
    last_successful_poll: int | None = documented("Unix seconds.")
    last_successful_poll_age_seconds: float | None
    poll_in_progress_seconds: float | None = documented(
        "How long the poll in progress has run; null between polls."
    )


@frozen(kw_only=True)
class Heartbeat:
    """Service status and AI-Horde health."""

    status: Literal["ok", "degraded"] = documented(
        "`degraded` while AI-Horde is (`ai_horde.degraded`); the answer is a 200 either way."
    )
    ai_horde: HordeHealth
    snapshot_id: int | None


@frozen(kw_only=True)
class UsageStats:
    day: int
    month: int
    total: int


@frozen(kw_only=True)
class WorkerSummary:
    """A worker serving the model."""

    id: str
    name: str
    performance: str
    online: bool
    trusted: bool
    uptime: int


@frozen(kw_only=True)
class BackendVariation:
    """A text model's figures on one backend: its status entry and the usage of its names."""

    backend: Backend
    variant_name: str = documented("The name AI-Horde reports for this backend's variant.")
    worker_count: int
    performance: float | None
    queued: float | None
    queued_jobs: float | None
    eta: float | None
    usage_day: int
    usage_month: int
    usage_total: int


@frozen(kw_only=True)
class ModelStats:
    """A model's AI-Horde figures, its name variants merged (null fields: omitted by popular).

    `with-stats` sends every field, nulls included."""

    queued_jobs: float | None = None
    performance: float | None = None
    eta: float | None = None
    queued: float | None = None
    usage_stats: UsageStats | None = None
    worker_summaries: dict[str, WorkerSummary] | None = documented(
        "Worker id → summary (`include_workers`); null when no worker serves the model.",
        default=None,
    )
    backend_variations: dict[str, BackendVariation] | None = documented(
        "with-stats only: backend → figures (`include_backend_variations`, text models).",
        default=None,
    )
    worker_count: int


@frozen(kw_only=True)
class PopularModel:
    """A model with its AI-Horde figures."""

    name: str
    record: JsonObject = documented("The v2 record.")
    stats: ModelStats


@frozen(kw_only=True)
class CategoryStatistics:
    """Counts and distributions of a category's models (more fields than listed)."""

    category: str
    total_models: int


@frozen(kw_only=True)
class CategoryDeletionRiskResponse:
    """Risk entries of a category's models, most used first, with a summary."""

    category: str
    category_total_month_usage: int
    total_count: int
    returned_count: int
    offset: int
    limit: int | None
    models: list[JsonObject]
    summary: JsonObject
