"""The worker library (libs/replica) against a real ``hmr read-api`` on the real data.

Seeds the real dataset, starts one ``hmr read-api`` and loads every category through the
library's async core (``Replica``) with its own ``aiohttp`` session, counting what crosses the wire
with a TraceConfig (status and Content-Length of every answer):

- cold load: empty cache dir, all 13 categories fetched concurrently (200s, gzip bodies);
- warm refresh: a forced refresh of every category where nothing changed (304s);
- restart: a new Replica on the cache dir the cold load wrote; it revalidates with the stored
  ETags (304s).

Target from the issue: the warm refresh receives zero body bytes (the restart too).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import (
    BenchError,
    Processes,
    Section,
    Settings,
    fmt_ms,
    log,
    markdown_table,
    median,
    status,
    wait_until_ok,
)
from bench.read_api import READY_PATH, _seed, _start_read_api

NAME = "replica"
TITLE = "Worker library: cold load and warm refresh of every category"

WARM_BODY_BYTES_TARGET = 0


@dataclass
class Wire:
    """What one phase put on the wire."""

    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    body_bytes: int = 0


@dataclass
class Run:
    seconds: float
    wire: Wire
    decoded_bytes: int  # size of the v2 documents the library holds afterwards
    models: int


class Meter:
    """Counts every answer of a session (TraceConfig); `reset()` starts a new phase."""

    def __init__(self) -> None:
        self.wire = Wire()

    def reset(self) -> None:
        self.wire = Wire()

    def trace(self):
        import aiohttp

        async def on_request_end(session, ctx, params: aiohttp.TraceRequestEndParams) -> None:
            resp = params.response
            self.wire.requests += 1
            self.wire.statuses[resp.status] = self.wire.statuses.get(resp.status, 0) + 1
            self.wire.body_bytes += int(resp.headers.get("Content-Length", "0") or 0)

        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(on_request_end)
        return trace


async def _phase(meter: Meter, replica, force: bool) -> Run:
    from horde_model_replica import REPLICATED_CATEGORIES

    meter.reset()
    t0 = time.perf_counter()
    found = await replica.aget_many(REPLICATED_CATEGORIES, force=force)
    seconds = time.perf_counter() - t0
    missing = [c.value for c, data in found.items() if data is None]
    if missing:
        raise BenchError(f"no data for {', '.join(missing)}")
    decoded = sum(replica.store.v2_path(c).stat().st_size for c in REPLICATED_CATEGORIES)
    models = sum(len(data.records) for data in found.values() if data is not None)
    return Run(seconds, meter.wire, decoded, models)


async def _measure(primary_url: str, cache_home: Path, repeats: int) -> dict[str, list[Run]]:
    import aiohttp

    from horde_model_replica import Replica, ReplicaConfig

    runs: dict[str, list[Run]] = {"cold": [], "restart": [], "warm": []}
    meter = Meter()
    for i in range(repeats):
        home = cache_home / f"run{i}"
        config = ReplicaConfig.from_environ(
            {
                "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": primary_url,
                "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
                "AIWORKER_CACHE_HOME": str(home),
            }
        )
        async with aiohttp.ClientSession(trace_configs=[meter.trace()]) as session:
            replica = Replica(config, session)
            cold = await _phase(meter, replica, force=False)
            warm = await _phase(meter, replica, force=True)
        async with aiohttp.ClientSession(trace_configs=[meter.trace()]) as session:
            restart = await _phase(meter, Replica(config, session), force=False)
        runs["cold"].append(cold)
        runs["warm"].append(warm)
        runs["restart"].append(restart)
        log(
            f"run {i + 1}/{repeats}: cold {fmt_ms(cold.seconds * 1e3)} "
            f"{cold.wire.body_bytes:,} B; warm refresh {fmt_ms(warm.seconds * 1e3)} "
            f"{warm.wire.body_bytes:,} B; restart {fmt_ms(restart.seconds * 1e3)} "
            f"{restart.wire.body_bytes:,} B"
        )
        shutil.rmtree(home, ignore_errors=True)
    return runs


def run(settings: Settings, workdir: Path) -> Section:
    try:
        import horde_model_replica  # noqa: F401 -- fail early with a clear message
    except ImportError as e:
        raise BenchError("horde_model_replica is not installed (make setup)") from e
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    log(f"seeding {settings.seed_dir}")
    _seed(settings, data_dir, log_dir)
    with Processes(log_dir) as procs:
        api, port = _start_read_api(procs, data_dir)
        wait_until_ok(port, READY_PATH, timeout=30.0, proc=api)
        log(f"read-api on :{port} (pid {api.pid})")
        runs = asyncio.run(
            _measure(f"http://127.0.0.1:{port}/api", workdir / "cache", settings.repeats)
        )
    return _render(settings, runs)


def _render(settings: Settings, runs: dict[str, list[Run]]) -> Section:
    failures: list[str] = []
    labels = {
        "cold": "cold load, empty cache dir",
        "warm": "warm forced refresh, nothing changed",
        "restart": "restart on the cache dir (revalidate with stored ETags)",
    }
    rows = []
    for key, label in labels.items():
        rs = runs[key]
        last = rs[-1]
        body = max(r.wire.body_bytes for r in rs)
        statuses = ", ".join(f"{n}× {s}" for s, n in sorted(last.wire.statuses.items()))
        target = "—"
        if key in ("warm", "restart"):
            ok = body <= WARM_BODY_BYTES_TARGET
            target = f"{WARM_BODY_BYTES_TARGET} body bytes: {status(ok)}"
            if not ok:
                failures.append(f"{label}: {body:,} body bytes received, target 0")
        rows.append(
            (
                label,
                fmt_ms(median(r.seconds for r in rs) * 1e3),
                last.wire.requests,
                statuses,
                f"{body:,}",
                f"{last.decoded_bytes:,}",
                f"{last.models:,}",
                target,
            )
        )
    table = markdown_table(
        (
            "load (13 categories)",
            f"time (median of {settings.repeats})",
            "requests",
            "answers",
            "body bytes on the wire (max)",
            "v2 JSON held",
            "models",
            "target",
        ),
        rows,
    )
    notes = [
        "In-process `Replica` (the library's async core) with one aiohttp session against one "
        "`hmr read-api --mode PRIMARY` process on the real data, GitHub fallback off; categories "
        "fetched concurrently. Bytes on the wire = sum of the answers' Content-Length (gzip "
        "bodies: the library sends `Accept-Encoding: gzip`); a 304 has none.",
        "Time includes decoding and validating every record (cattrs) and the atomic, fsynced "
        "write of each changed file; the restart row also reads and validates the disk copies.",
    ]
    md = "\n\n".join([table, "\n".join(f"- {n}" for n in notes)])
    return Section(NAME, TITLE, md, failures)
