"""Stats service: the cost of `popular`, `statistics` and `deletion-risk` next to a heartbeat;
and the text toolkit's `groups/summary` (read service) against the same heartbeat.

Starts a fake AI-Horde on loopback (in this process, on its own event loop thread) serving
realistic payloads for the real dataset's names (a hundred workers, image and text status and
usage, backend-prefixed text names), then one `hmr stats` process on the real reference data
pointed at it. wrk measures each endpoint; the heartbeat (no computation) is the reference
measured in the same run, so the ratios say what the merge and the statistics cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

from aiohttp import web

from bench.harness import (
    LOOPBACK,
    REPO_ROOT,
    BenchError,
    Processes,
    Section,
    Settings,
    fmt_ms,
    free_port,
    hmr_command,
    log,
    markdown_table,
    median_wrk,
    run_wrk,
    wait_until_ok,
)
from tests.fakes import horde_payloads as payloads

NAME = "stats"
TITLE = "Stats service: popular, statistics and deletion risk against a heartbeat"

V2 = "/api/model_references/v2"
STATS = "/api/model_references/statistics"
ENDPOINTS = (
    ("reference: `GET /api/heartbeat`", "/api/heartbeat"),
    ("`popular` image_generation (worker count)", f"{V2}/image_generation/popular?limit=10"),
    (
        "`popular` text_generation (usage, with workers)",
        f"{V2}/text_generation/popular?limit=10&sort_by=usage_month&include_workers=true",
    ),
    ("`statistics` image_generation", f"{STATS}/image_generation"),
    ("`statistics` text_generation, grouped", f"{STATS}/text_generation?group_text_models=true"),
    (
        "`deletion-risk` image_generation, preset",
        f"{STATS}/image_generation/deletion-risk?preset=no_workers&limit=20",
    ),
)
#: served by an `hmr read-api` on the same data dir, measured against the stats heartbeat
READ_ENDPOINTS = (
    (
        "`groups/summary` text_generation (read service, prepared per snapshot)",
        f"{V2}/text_generation/groups/summary",
    ),
)


class FakeHorde:
    """AI-Horde's polled endpoints with fixed payloads, on a background event loop."""

    def __init__(self, seed_dir: Path) -> None:
        image = list(json.loads((seed_dir / "image" / "stable_diffusion.json").read_bytes()))
        rows = (seed_dir / "text" / "models.csv").read_text().splitlines()[1:]
        text = [row.split(",", 1)[0] for row in rows][:300]
        image_workers, text_workers = payloads.workers(image, text, count=100)
        self.data = {
            ("status/models", "image"): payloads.image_status(image[:120]),
            ("status/models", "text"): payloads.text_status(text[:200]),
            ("stats/img/models", None): payloads.usage(image),
            ("stats/text/models", None): payloads.usage(text),
            ("workers", "image"): image_workers,
            ("workers", "text"): text_workers,
            ("status/heartbeat", None): {"message": "OK"},
        }
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        path, kind = request.match_info["path"], request.query.get("type")
        body = self.data.get((path, kind), self.data.get((path, None)))
        return web.json_response(body)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v2/{path:.+}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    def __enter__(self) -> FakeHorde:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def run(settings: Settings, workdir: Path) -> Section:
    if not settings.seed_dir.is_dir():
        raise BenchError(f"seed dataset not found: {settings.seed_dir}")
    data_dir = workdir / "data"
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HMR_ACCESS_LOG": "false"}
    with FakeHorde(settings.seed_dir) as horde, Processes(log_dir) as procs:
        seed = procs.start(
            "seed",
            [
                *hmr_command(),
                "seed",
                "--data-dir",
                str(data_dir),
                "--seed-dir",
                str(settings.seed_dir),
            ],
            env=env,
            cwd=REPO_ROOT,
        )
        seed.popen.wait(timeout=60)
        port = free_port()
        argv = [
            *hmr_command(),
            "stats",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--horde-url",
            f"http://{LOOPBACK}:{horde.port}/api/",
            "--access-log",
            "false",
        ]
        proc = procs.start("stats", argv, env=env, cwd=REPO_ROOT)
        read_port = free_port()
        read_argv = [
            *hmr_command(),
            "read-api",
            "--port",
            str(read_port),
            "--data-dir",
            str(data_dir),
            "--access-log",
            "false",
        ]
        read_proc = procs.start("read-api", read_argv, env=env, cwd=REPO_ROOT)
        wait_until_ok(port, "/api/heartbeat", timeout=30, proc=proc)
        # the first poll lands before the service reports ready, but be sure it has data
        wait_until_ok(port, f"{V2}/image_generation/popular", timeout=30, proc=proc)
        wait_until_ok(read_port, READ_ENDPOINTS[0][1], timeout=30, proc=read_proc)
        rows = []
        reference = None
        targets = [(label, path, port) for label, path in ENDPOINTS]
        targets += [(label, path, read_port) for label, path in READ_ENDPOINTS]
        for label, path, target_port in targets:
            url = f"http://{LOOPBACK}:{target_port}{path}"
            run_wrk(url, settings.warmup_s, connections=settings.connections)
            result = median_wrk(
                [
                    run_wrk(url, settings.duration_s, connections=settings.connections)
                    for _ in range(settings.repeats)
                ]
            )
            if result.errors:
                raise BenchError(f"{path}: {result.errors} errors or non-2xx answers")
            if reference is None:
                reference = result
            ratio = (
                result.requests_per_s / reference.requests_per_s if reference.requests_per_s else 0
            )
            rows.append(
                (
                    label,
                    f"{result.requests_per_s:,.0f}",
                    f"{fmt_ms(result.p50_ms)} / {fmt_ms(result.p99_ms)}",
                    f"{ratio:.0%}",
                )
            )
            log(f"stats {label}: {result.requests_per_s:,.0f} req/s")
        if not proc.alive():
            raise BenchError(f"hmr stats exited during the bench; log:\n{proc.log_tail()}")
        if not read_proc.alive():
            raise BenchError(f"hmr read-api exited during the bench; log:\n{read_proc.log_tail()}")
    table = markdown_table(["endpoint", "req/s", "p50 / p99", "throughput vs heartbeat"], rows)
    text = (
        f"{table}\n\nOne `hmr stats` process on the real reference data, a fake AI-Horde on "
        "loopback (100 workers; status and usage for the real names). Answers are computed once "
        "per (snapshot, AI-Horde poll) and cached, so a request costs a lookup plus JSON encoding; "
        "`groups/summary` comes from one `hmr read-api` on the same data dir, which encodes it "
        "once per snapshot (its 419 groups, about 220 kB) and answers with the prepared bytes; "
        f"wrk: {settings.connections} connections, {settings.duration_s} s per run, median of "
        f"{settings.repeats} runs."
    )
    return Section(name=NAME, title=TITLE, markdown=text)
