"""Read service vs nginx serving the same bytes as static files.

Seeds the real dataset into a temporary data dir, starts one ``hmr read-api``
and one nginx (``deploy/nginx/bench-static.conf.template``) whose root holds
the snapshot's files, checks both answer the same bytes with the same
Content-Type, then runs wrk against each endpoint on both (median of N runs).
Also measures the read service's RSS with the full dataset and its time from
process start to the first 200 on a category read (median of N starts).
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    LOOPBACK,
    REPO_ROOT,
    BenchError,
    Processes,
    Section,
    Settings,
    WrkResult,
    find_tool,
    fmt_ms,
    free_port,
    hmr_command,
    http_get,
    log,
    markdown_table,
    median,
    median_wrk,
    render_template,
    rss_kib,
    run_wrk,
    status,
    wait_until_ok,
)

NAME = "read-api"
TITLE = "Read service vs nginx static (same bytes)"

NGINX_TEMPLATE = REPO_ROOT / "deploy" / "nginx" / "bench-static.conf.template"

# Targets from the issue.
CATEGORY_RATIO_TARGET = 0.30  # category read ≥ 30 % of nginx-static throughput
RSS_TARGET_MIB = 80.0  # RSS ≤ 80 MB with the full real dataset
READY_TARGET_S = 0.5  # process start → first answer ≤ 0.5 s

READY_PATH = "/api/model_references/v2/image_generation"


@dataclass(frozen=True)
class Endpoint:
    label: str
    api_path: str  # on the read service
    static_path: str  # on nginx
    captured: bool = False  # static file written from the read service's answer
    category: bool = False  # the throughput-ratio target applies
    gzip: bool = False  # request with Accept-Encoding: gzip (nginx: gzip_static)

    @property
    def headers(self) -> dict[str, str]:
        return {"Accept-Encoding": "gzip"} if self.gzip else {}


ENDPOINTS = (
    Endpoint(
        "v2 category `image_generation`",
        "/api/model_references/v2/image_generation",
        "/v2/image_generation.json",
        category=True,
    ),
    Endpoint(
        "v1 category `stable_diffusion.json`",
        "/api/model_references/v1/stable_diffusion.json",
        "/v1/image_generation.json",
        category=True,
    ),
    Endpoint(
        "v2 single model `text_generation/acrastt/Marx-3B-V3`",
        "/api/model_references/v2/text_generation/model/acrastt/Marx-3B-V3",
        "/captured/model.json",
        captured=True,
    ),
    Endpoint(
        "v2 search `image_generation?baseline=stable_diffusion_xl&limit=20`",
        "/api/model_references/v2/image_generation/search?baseline=stable_diffusion_xl&limit=20",
        "/captured/search.json",
        captured=True,
    ),
    # Not in the list; informational.  What most clients actually get
    # (python requests sends Accept-Encoding: gzip): the snapshot's .gz copy.
    Endpoint(
        "v2 category `image_generation`, gzip",
        "/api/model_references/v2/image_generation",
        "/v2/image_generation.json",
        gzip=True,
    ),
)


def _seed(settings: Settings, data_dir: Path, log_dir: Path) -> Path:
    if not settings.seed_dir.is_dir():
        raise BenchError(f"seed dataset not found: {settings.seed_dir}")
    argv = [
        *hmr_command(),
        "seed",
        "--data-dir",
        str(data_dir),
        "--seed-dir",
        str(settings.seed_dir),
    ]
    with open(log_dir / "seed.log", "wb") as out:
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=120)
        except subprocess.TimeoutExpired as e:
            raise BenchError("hmr seed took more than 120 s") from e
    if done.returncode != 0:
        raise BenchError(
            f"hmr seed failed ({done.returncode}); see {log_dir / 'seed.log'}:\n"
            + (log_dir / "seed.log").read_text(errors="replace")[-2000:]
        )
    current = (data_dir / "snapshots" / "CURRENT").read_text().strip()
    snapshot = data_dir / "snapshots" / current
    if not (snapshot / "v2").is_dir() or not (snapshot / "v1").is_dir():
        raise BenchError(f"snapshot {snapshot} lacks v1/ or v2/")
    return snapshot


def _start_read_api(procs: Processes, data_dir: Path, name: str = "read-api"):
    port = free_port()
    proc = procs.start(
        name,
        [
            *hmr_command(),
            "read-api",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--mode",
            "PRIMARY",
            "--access-log",
            "false",
        ],
        cwd=REPO_ROOT,
    )
    return proc, port


def _start_nginx(procs: Processes, prefix: Path, root: Path):
    port = free_port()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    # As root, run the worker as the invoking user (root) rather than nginx's
    # default "nobody", like the read service and without permission surprises.
    user_directive = ""
    if os.geteuid() == 0:
        user_directive = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    conf = render_template(
        NGINX_TEMPLATE,
        prefix / "nginx.conf",
        prefix=prefix,
        port=port,
        root=root,
        user_directive=user_directive,
    )
    nginx = find_tool("nginx")
    check = subprocess.run(
        [nginx, "-t", "-q", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check.returncode != 0:
        raise BenchError(f"nginx -t failed: {check.stderr}")
    proc = procs.start(
        "nginx", [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    )
    return proc, port


def _content_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").replace(" ", "").lower()


def _check_same_bytes(api_port: int, nginx_port: int) -> dict[str, int]:
    """Both servers answer every endpoint with identical bytes and Content-Type."""
    sizes = {}
    for ep in ENDPOINTS:
        a = http_get(api_port, ep.api_path, headers=ep.headers)
        b = http_get(nginx_port, ep.static_path, headers=ep.headers)
        if a.status != 200 or b.status != 200:
            raise BenchError(f"{ep.label}: read-api {a.status}, nginx {b.status}")
        if a.body != b.body:
            raise BenchError(f"{ep.label}: bodies differ ({len(a.body)} vs {len(b.body)} bytes)")
        if _content_type(a.headers) != _content_type(b.headers):
            raise BenchError(
                f"{ep.label}: Content-Type differs: {a.headers.get('content-type')!r}"
                f" vs {b.headers.get('content-type')!r}"
            )
        if a.headers.get("content-encoding") != b.headers.get("content-encoding"):
            raise BenchError(
                f"{ep.label}: Content-Encoding differs: {a.headers.get('content-encoding')!r}"
                f" vs {b.headers.get('content-encoding')!r}"
            )
        if ep.gzip and a.headers.get("content-encoding") != "gzip":
            raise BenchError(f"{ep.label}: no gzip answer")
        sizes[ep.label] = len(a.body)
    return sizes


def _throughput(settings: Settings, api_port: int, nginx_port: int, api_pid: int):
    def url(port: int, path: str) -> str:
        return f"http://{LOOPBACK}:{port}{path}"

    wrk = dict(connections=settings.connections, threads=settings.threads)
    log(f"warm-up: {settings.warmup_s:g} s per endpoint and server")
    for ep in ENDPOINTS:
        run_wrk(url(api_port, ep.api_path), settings.warmup_s, headers=ep.headers, **wrk)
        run_wrk(url(nginx_port, ep.static_path), settings.warmup_s, headers=ep.headers, **wrk)
    rss_warm = rss_kib(api_pid)
    log(f"read-api RSS after warm-up: {rss_warm['VmRSS'] / 1024:.1f} MiB")

    runs: dict[tuple[str, str], list[WrkResult]] = {}
    for rep in range(settings.repeats):
        for ep in ENDPOINTS:
            # Alternate which server goes first so slow drift hits both alike.
            order = [("read-api", api_port, ep.api_path), ("nginx", nginx_port, ep.static_path)]
            if rep % 2:
                order.reverse()
            for server, port, path in order:
                r = run_wrk(url(port, path), settings.duration_s, headers=ep.headers, **wrk)
                runs.setdefault((ep.label, server), []).append(r)
                log(
                    f"run {rep + 1}/{settings.repeats} {server:8} {ep.label}: "
                    f"{r.requests_per_s:,.0f} req/s p50 {fmt_ms(r.p50_ms)} p99 {fmt_ms(r.p99_ms)}"
                    + (f" ERRORS {r.errors}" if r.errors else "")
                )
    rss_after = rss_kib(api_pid)
    # The ratio is the median of the per-round ratios: each round measures both
    # servers back to back, so pairing cancels much of the machine's drift.
    ratios = {
        ep.label: median(
            a.requests_per_s / n.requests_per_s if n.requests_per_s else 0.0
            for a, n in zip(runs[(ep.label, "read-api")], runs[(ep.label, "nginx")], strict=True)
        )
        for ep in ENDPOINTS
    }
    return {k: median_wrk(v) for k, v in runs.items()}, ratios, rss_warm, rss_after


def _ready_times(settings: Settings, data_dir: Path, log_dir: Path) -> list[float]:
    times = []
    with Processes(log_dir) as procs:
        for i in range(settings.ready_starts):
            proc, port = _start_read_api(procs, data_dir, name=f"read-api-start{i + 1}")
            try:
                answered = wait_until_ok(port, READY_PATH, timeout=20.0, proc=proc)
                times.append(answered - proc.started_at)
            finally:
                procs.stop(proc)
            log(f"start {i + 1}/{settings.ready_starts}: first 200 after {times[-1] * 1000:.0f} ms")
    return times


def run(settings: Settings, workdir: Path) -> Section:
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    static_root = workdir / "static"
    nginx_prefix = workdir / "nginx"
    for d in (static_root / "captured", nginx_prefix):
        d.mkdir(parents=True, exist_ok=True)

    log(f"seeding {settings.seed_dir}")
    snapshot = _seed(settings, data_dir, log_dir)
    # nginx's root: the snapshot's own files (no copy), plus captured answers.
    os.symlink(snapshot / "v1", static_root / "v1")
    os.symlink(snapshot / "v2", static_root / "v2")

    with Processes(log_dir) as procs:
        api, api_port = _start_read_api(procs, data_dir)
        wait_until_ok(api_port, READY_PATH, timeout=30.0, proc=api)
        for ep in ENDPOINTS:
            if ep.captured:
                r = http_get(api_port, ep.api_path)
                if r.status != 200:
                    raise BenchError(f"{ep.label}: read-api answered {r.status}: {r.body[:300]!r}")
                target = static_root / ep.static_path.lstrip("/")
                target.write_bytes(r.body)
                target.chmod(0o644)
        nginx, nginx_port = _start_nginx(procs, nginx_prefix, static_root)
        wait_until_ok(nginx_port, ENDPOINTS[0].static_path, timeout=15.0, proc=nginx)
        sizes = _check_same_bytes(api_port, nginx_port)
        log(
            f"read-api on :{api_port} (pid {api.pid}), nginx on :{nginx_port} (pid {nginx.pid});"
            " same bytes and Content-Type on every endpoint"
        )
        results, ratios, rss_warm, rss_after = _throughput(settings, api_port, nginx_port, api.pid)

    log(f"time to first answer: {settings.ready_starts} starts")
    ready = _ready_times(settings, data_dir, log_dir)

    return _render(settings, sizes, results, ratios, rss_warm, rss_after, ready)


def _render(settings, sizes, results, ratios, rss_warm, rss_after, ready) -> Section:
    failures: list[str] = []
    rows = []
    errors = []
    for ep in ENDPOINTS:
        a = results[(ep.label, "read-api")]
        n = results[(ep.label, "nginx")]
        ratio = ratios[ep.label]
        if ep.category:
            ok = ratio >= CATEGORY_RATIO_TARGET
            target = f"≥ {CATEGORY_RATIO_TARGET:.0%} of nginx: {status(ok)}"
            if not ok:
                failures.append(f"{ep.label}: {ratio:.1%} of nginx < {CATEGORY_RATIO_TARGET:.0%}")
        else:
            target = "—"
        for server, r in (("read-api", a), ("nginx", n)):
            if r.errors:
                errors.append(f"{server} {ep.label}: {r.errors} errors / {r.requests} requests")
        rows.append(
            (
                ep.label,
                f"{sizes[ep.label]:,}",
                f"{a.requests_per_s:,.0f}",
                f"{n.requests_per_s:,.0f}",
                f"{ratio:.1%}",
                f"{fmt_ms(a.p50_ms)} / {fmt_ms(a.p99_ms)}",
                f"{fmt_ms(n.p50_ms)} / {fmt_ms(n.p99_ms)}",
                target,
            )
        )
    table = markdown_table(
        (
            "endpoint",
            "bytes",
            "read-api req/s",
            "nginx req/s",
            "ratio",
            "read-api p50/p99",
            "nginx p50/p99",
            "target",
        ),
        rows,
    )

    rss_mib = rss_warm["VmRSS"] / 1024
    rss_ok = rss_mib <= RSS_TARGET_MIB
    ready_s = median(ready)
    ready_ok = ready_s <= READY_TARGET_S
    if not rss_ok:
        failures.append(f"RSS {rss_mib:.1f} MiB > {RSS_TARGET_MIB:.0f}")
    if not ready_ok:
        failures.append(f"ready {ready_s * 1000:.0f} ms > {READY_TARGET_S * 1000:.0f} ms")
    figures = markdown_table(
        ("figure", "measured", "target", "status"),
        [
            (
                "read-api RSS after warm-up (VmRSS)",
                f"{rss_mib:.1f} MiB",
                f"≤ {RSS_TARGET_MIB:.0f} MB",
                status(rss_ok),
            ),
            (
                "read-api RSS after all runs (VmRSS / peak VmHWM)",
                f"{rss_after['VmRSS'] / 1024:.1f} / {rss_after['VmHWM'] / 1024:.1f} MiB",
                "—",
                "—",
            ),
            (
                f"start → first 200 on `{READY_PATH}` (median of {len(ready)})",
                f"{ready_s * 1000:.0f} ms (min {min(ready) * 1000:.0f}, max {max(ready) * 1000:.0f})",
                f"≤ {READY_TARGET_S * 1000:.0f} ms",
                status(ready_ok),
            ),
        ],
    )

    notes = [
        f"wrk {settings.threads} thread, {settings.connections} connections, "
        f"{settings.duration_s:g} s per run, median of {settings.repeats} runs "
        f"(after {settings.warmup_s:g} s warm-up); req/s and latencies are medians over the runs, "
        "ratio = median of the per-round read-api/nginx ratios (both measured back to back in each round). "
        "No Accept-Encoding (identity bodies) except the gzip row. wrk runs on the same machine.",
        "nginx: 1 worker, access_log off, sendfile on, gzip_static on, root = the snapshot's v1/ and v2/ files; "
        "single-model and search references are the read service's own answers saved as static files. "
        "Bytes and Content-Type checked identical before measuring.",
        "RSS of the single read-api process with the full real dataset (MiB = 1024² bytes).",
    ]
    if errors:
        notes.append("wrk reported errors: " + "; ".join(errors))
        failures.extend(errors)
    md = "\n\n".join([table, figures, "\n".join(f"- {n}" for n in notes)])
    return Section(NAME, TITLE, md, failures)
