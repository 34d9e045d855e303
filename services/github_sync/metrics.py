"""The watch's small HTTP endpoint: /metrics (Prometheus text) and /readyz (the status JSON)."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from .status import SyncStatus

status_key = web.AppKey("status_key", SyncStatus)
registry_key = web.AppKey("registry_key", CollectorRegistry)


class SyncCollector(Collector):
    """Reads the counters of a SyncStatus at every scrape (no state of its own)."""

    def __init__(self, status: SyncStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        s = self._status
        runs = CounterMetricFamily("hmr_github_sync_runs", "sync runs", labels=["result"])
        runs.add_metric(["ok"], s.runs - s.failed_runs)
        runs.add_metric(["failed"], s.failed_runs)
        yield runs
        for name, text, value in (
            ("changes_found", "model changes found by runs", s.changes_found),
            ("prs_opened", "pull requests opened", s.prs_opened),
            ("prs_closed", "superseded pull requests closed", s.prs_closed),
        ):
            yield CounterMetricFamily(f"hmr_github_sync_{name}", text, value=value)
        yield GaugeMetricFamily(
            "hmr_github_sync_last_success_timestamp_seconds",
            "end of the last run that succeeded (0: none yet)",
            value=s.last_success or 0,
        )
        yield GaugeMetricFamily(
            "hmr_github_sync_last_run_timestamp_seconds",
            "end of the last run (0: none yet)",
            value=s.last_run or 0,
        )


async def get_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[registry_key])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_readyz(request: web.Request) -> web.Response:
    return web.json_response(request.app[status_key].as_json())


def create_metrics_app(status: SyncStatus) -> web.Application:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SyncCollector(status))
    app = web.Application()
    app[status_key] = status
    app[registry_key] = registry
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/readyz", get_readyz)
    return app


async def serve_metrics(status: SyncStatus, host: str, port: int) -> web.AppRunner:
    """Serve /metrics and /readyz on host:port until the returned runner is cleaned up."""
    runner = web.AppRunner(create_metrics_app(status), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
