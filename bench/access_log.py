"""What the read side's per-request access log costs: ``hmr all`` with it (the default) and without.

Starts two ``hmr all`` processes, each on its own data dir seeded from the real dataset: one in
the default configuration (a JSON access line per request, written to its log file) and one
with ``--access-log false``; then measures the reads a client makes most with wrk, alternating
the order of the two sides each round. The ratio (with / without) is the median of the per-round
ratios, as in bench/read_api.py. No target in the issue's numbers beyond "not a third of the
throughput" (issue 16): reported, with a mark when the log costs more than 10 %.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.harness import (
    LOOPBACK,
    BenchError,
    Processes,
    Section,
    Settings,
    WrkResult,
    fmt_ms,
    free_port,
    hmr_command,
    http_get,
    log,
    markdown_table,
    median,
    median_wrk,
    run_wrk,
    wait_until_ok,
)

NAME = "access-log"
TITLE = "Access log: `hmr all` reads with the default per-request JSON access log and without it"

COST_REPORTED = 0.10  # a log costing more than this share of the throughput is marked

READS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("category gzip", "/api/model_references/v2/image_generation", {"Accept-Encoding": "gzip"}),
    ("one model", "/api/model_references/v2/text_generation/model/acrastt/Marx-3B-V3", {}),
    (
        "search",
        "/api/model_references/v2/image_generation/search?baseline=stable_diffusion_xl&limit=20",
        {},
    ),
)
SIDES = ("with access log (default)", "without (--access-log false)")


def _cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(
    procs: Processes, workdir: Path, settings: Settings, name: str, *extra: str
) -> tuple[int, int]:
    port = free_port()
    proc = procs.start(
        name,
        [
            *hmr_command(),
            "all",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--data-dir",
            str(workdir / name),
            "--seed-dir",
            str(settings.seed_dir),
            "--horde-url",
            "off",
            *extra,
        ],
        env={k: v for k, v in os.environ.items() if not k.startswith("HMR_")},
    )
    wait_until_ok(port, READS[0][1], timeout=60.0, proc=proc)
    return port, proc.pid


def run(settings: Settings, workdir: Path) -> Section:
    if not settings.seed_dir.is_dir():
        raise BenchError(f"seed dataset not found: {settings.seed_dir}")
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple[str, str], list[WrkResult]] = {}
    # CPU of the serving process per request: steadier than req/s when the cores are shared
    cpu_us: dict[tuple[str, str], list[float]] = {}
    with Processes(logs) as procs:
        started = {
            SIDES[0]: _start(procs, workdir, settings, "with-log"),
            SIDES[1]: _start(procs, workdir, settings, "without-log", "--access-log", "false"),
        }
        ports = {side: port for side, (port, _) in started.items()}
        for label, path, headers in READS:
            answers = [http_get(p, path, headers=headers) for p in ports.values()]
            if any(a.status != 200 for a in answers) or answers[0].body != answers[1].body:
                raise BenchError(f"{label}: the two processes answer differently")
        log(f"warm-up: {settings.warmup_s} s per read and side")
        for _, path, headers in READS:
            for port in ports.values():
                run_wrk(
                    f"http://{LOOPBACK}:{port}{path}",
                    settings.warmup_s,
                    settings.connections,
                    settings.threads,
                    headers,
                )
        for rep in range(settings.repeats):
            for label, path, headers in READS:
                order = SIDES if rep % 2 == 0 else SIDES[::-1]
                for side in order:
                    pid = started[side][1]
                    c0 = _cpu_s(pid)
                    r = run_wrk(
                        f"http://{LOOPBACK}:{ports[side]}{path}",
                        settings.duration_s,
                        settings.connections,
                        settings.threads,
                        headers,
                    )
                    used = _cpu_s(pid) - c0
                    runs.setdefault((label, side), []).append(r)
                    if r.requests:
                        cpu_us.setdefault((label, side), []).append(used / r.requests * 1e6)
                    log(
                        f"run {rep + 1}/{settings.repeats} {label} / {side}: "
                        f"{r.requests_per_s:,.0f} req/s p50 {fmt_ms(r.p50_ms)}"
                    )
        lines = sum(1 for _ in (logs / "with-log.log").open(errors="replace"))
    rows = []
    for label, _, _ in READS:
        a, b = runs[(label, SIDES[0])], runs[(label, SIDES[1])]
        ratio = median(x.requests_per_s / y.requests_per_s for x, y in zip(a, b, strict=True))
        ma, mb = median_wrk(a), median_wrk(b)
        cost = 1.0 - ratio
        ca, cb = median(cpu_us[(label, SIDES[0])]), median(cpu_us[(label, SIDES[1])])
        rows.append(
            (
                label,
                f"{ma.requests_per_s:,.0f}",
                f"{mb.requests_per_s:,.0f}",
                f"{ratio:.1%}",
                f"{cost:.1%}" + (" (over 10 %)" if cost > COST_REPORTED else ""),
                f"{ca:.0f} / {cb:.0f} (+{ca / cb - 1:.0%})",
                f"{fmt_ms(ma.p50_ms)} / {fmt_ms(ma.p99_ms)}",
                f"{fmt_ms(mb.p50_ms)} / {fmt_ms(mb.p99_ms)}",
            )
        )
    table = markdown_table(
        (
            "reads",
            "with log req/s",
            "without req/s",
            "with / without",
            "cost of the log",
            "CPU µs/request with / without",
            "with p50/p99",
            "without p50/p99",
        ),
        rows,
    )
    notes = [
        f"wrk {settings.threads} thread, {settings.connections} connections, "
        f"{settings.duration_s} s per run, median of {settings.repeats} rounds (after "
        f"{settings.warmup_s} s warm-up per read and side); the order of the two sides "
        "alternates each round and the ratio is the median of the per-round ratios. CPU "
        "µs/request: user + system time of the serving process during a run over the requests "
        "wrk completed (median of the rounds), steadier than req/s when other processes share "
        "the cores.",
        "Both sides: `hmr all` (every service in one process, uvloop), each on its own data dir "
        "seeded from the real dataset, stderr to a file. With the log: the default "
        "configuration, one JSON line per request (shared/observability.py: AccessLogger, "
        f"written in batches by BufferedLineHandler); {lines:,} lines written during the bench.",
    ]
    md = "\n\n".join([table, "\n".join(f"- {n}" for n in notes)])
    return Section(NAME, TITLE, md, [])
