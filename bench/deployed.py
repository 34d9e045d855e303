"""The deployed topology (``make up``): reads through nginx, against nginx static and per replica count.

Starts the real topology twice with ``deploy/local.py up`` (nginx, write queue, stats and one or
two read replicas; each on its own temporary data dir seeded from the real dataset, on free
ports), plus one nginx serving the snapshot's files as static files
(``deploy/nginx/bench-static.conf.template``, with the deployed nginx's worker count), then
measures with wrk:

- category reads: ``GET /v2/image_generation`` through the deployed nginx (the static path: it
  serves the live snapshot's file, named in the include deploy/nginx/live-follow.sh keeps current,
  with the read service's headers)
  against nginx static serving the same bytes with nothing else configured, identity and gzip.
  Target: ≥ 95 % of static (issue 16).
- cache-busting reads: a search where every request has a distinct URL (a ``tags_none=`` tag
  no model has, with a counter, so the micro-cache never hits and every request reaches a replica)
  through nginx with ONE and with TWO read replicas; once as deployed (nginx also stores every
  one-off answer in its micro-cache) and once with an ``apikey`` header, which the config turns
  into cache bypass and no store, so the replicas alone are measured. No target: on a 2-core
  machine wrk, nginx and the replicas share the same cores, so the second replica can only add
  what is left; the CPU each part used is reported to show where the time went.

Rounds alternate the order of the two sides of each comparison and ratios are medians of the
per-round ratios (as in bench/read_api.py). Everything started is stopped in ``finally``
(``deploy/local.py down``; the static nginx through harness.Processes).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    http_get,
    log,
    markdown_table,
    median,
    median_wrk,
    parse_wrk,
    render_template,
    run_wrk,
    status,
    wait_until_ok,
)

NAME = "deployed"
TITLE = (
    "Deployed topology (make up): the static path vs plain nginx static, and read-replica scaling"
)

LOCAL = REPO_ROOT / "deploy" / "local.py"
STATIC_TEMPLATE = REPO_ROOT / "deploy" / "nginx" / "bench-static.conf.template"

CATEGORY_RATIO_TARGET = 0.95  # category read through the deployed nginx ≥ 95 % of nginx static

CATEGORY = "/api/model_references/v2/image_generation"
STATIC_CATEGORY = "/v2/image_generation.json"
SEARCH = "/api/model_references/v2/image_generation/search?baseline=stable_diffusion_xl&limit=20"
SEARCH_ROUTE = "/api/model_references/v2/{category}/search"
UP_TIMEOUT_S = 120
# hmr.conf.template: `proxy_cache_bypass $http_apikey; proxy_no_cache $http_apikey;` (reads
# ignore the header)
NO_CACHE = {"apikey": "bench-no-cache"}

# Every request a URL never seen before: a per-run prefix (script argument), the wrk thread and
# a counter. The read service ignores unknown query parameters.
BUST_SCRIPT = """\
-- written by bench/deployed.py: distinct URLs, so the nginx micro-cache never hits
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  path = args[1]
  run = args[2]
  counter = 0
end
function request()
  counter = counter + 1
  return wrk.format("GET", path .. "&tags_none=n-" .. run .. "-" .. tostring(tid) .. "-" .. counter)
end
"""


@dataclass
class Deployment:
    """One ``deploy/local.py up`` on its own data dir; ``down`` stops exactly what it started."""

    label: str
    root: Path
    replicas: int
    port: int = field(default_factory=free_port)
    state: dict = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _local(self, *args: str, timeout: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HMR_")}
        log_path = self.root / f"local-{args[0]}.log"
        with open(log_path, "ab") as out:
            try:
                done = subprocess.run(
                    [sys.executable, str(LOCAL), *args],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as e:
                raise BenchError(
                    f"deploy/local.py {args[0]} ({self.label}) took > {timeout:.0f} s"
                ) from e
        if done.returncode != 0:
            raise BenchError(
                f"deploy/local.py {args[0]} ({self.label}) failed ({done.returncode}):\n"
                + log_path.read_text(errors="replace")[-2000:]
            )

    def up(self, seed_dir: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._local(
            "up",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--seed-dir",
            str(seed_dir),
            "--replicas",
            str(self.replicas),
            "--horde-url",
            "off",
            timeout=UP_TIMEOUT_S,
        )
        self.state = json.loads((self.data_dir / "run" / "state.json").read_text())

    def is_up(self) -> bool:
        return (self.data_dir / "run" / "state.json").exists()

    def down(self) -> None:
        if self.is_up():
            self._local("down", "--data-dir", str(self.data_dir), timeout=60)

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def replica_ports(self) -> list[int]:
        return [
            p for name, p in sorted(self.state["ports"].items()) if name.startswith("read_api_")
        ]

    def pids(self, role: str) -> list[int]:
        """Every pid of a role: 'read_api' (all replicas) or 'nginx' (master and workers)."""
        tops = [int(p) for name, p in self.state["pids"].items() if name.startswith(role)]
        return tops + [pid for top in tops for pid in _children(top)]


# --------------------------------------------------------------------------- CPU accounting


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _machine_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)


@dataclass
class CpuUse:
    """Cores used on average during one wrk run, per part (1.0 = one core fully busy)."""

    replicas: float
    nginx: float
    wrk: float
    machine: float  # share of all cores busy, 0..1


def _measured(dep: Deployment, run: Callable[[], WrkResult]) -> tuple[WrkResult, CpuUse]:
    replicas, nginx = dep.pids("read_api"), dep.pids("nginx")
    r0, n0 = _cpu_seconds(replicas), _cpu_seconds(nginx)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m0 = _machine_busy()
    t0 = time.monotonic()
    result = run()
    elapsed = time.monotonic() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m1 = _machine_busy()
    total, idle = m1[0] - m0[0], m1[1] - m0[1]
    return result, CpuUse(
        replicas=(_cpu_seconds(replicas) - r0) / elapsed,
        nginx=(_cpu_seconds(nginx) - n0) / elapsed,
        wrk=(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) / elapsed,
        machine=1.0 - idle / total if total > 0 else 0.0,
    )


# --------------------------------------------------------------------------- tools


def _wrk_script(
    url: str,
    settings: Settings,
    duration_s: int,
    script: Path,
    *args: str,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """harness.run_wrk with a Lua script (same flags otherwise)."""
    argv = [
        find_tool("wrk"),
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{max(1, duration_s)}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    argv += [
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 20)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from e
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def _start_static(procs: Processes, prefix: Path, root: Path, workers: str) -> tuple[int, int]:
    """nginx serving the snapshot's files (bench-static template) with `workers` workers."""
    port = free_port()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    user_directive = ""
    if os.geteuid() == 0:
        user_directive = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    conf = render_template(
        STATIC_TEMPLATE,
        prefix / "nginx.conf",
        prefix=prefix,
        port=port,
        root=root,
        user_directive=user_directive,
    )
    text = conf.read_text()
    if text.count("worker_processes 1;") != 1:
        raise BenchError(f"{STATIC_TEMPLATE.name}: expected one `worker_processes 1;` line")
    # the same worker count as the deployed nginx (hmr.conf.template: auto), for a fair pair
    conf.write_text(text.replace("worker_processes 1;", f"worker_processes {workers};"))
    nginx = find_tool("nginx")
    base = [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    check = subprocess.run(
        [*base[:1], "-t", "-q", *base[1:]], capture_output=True, text=True, timeout=30
    )
    if check.returncode != 0:
        raise BenchError(f"static nginx -t failed: {check.stderr}")
    proc = procs.start("static-nginx", base)
    wait_until_ok(port, STATIC_CATEGORY, timeout=15.0, proc=proc)
    return port, proc.pid


def _deployed_workers() -> str:
    text = (REPO_ROOT / "deploy" / "nginx" / "hmr.conf.template").read_text()
    found = re.search(r"^worker_processes\s+(\S+);", text, re.M)
    return found.group(1) if found else "auto"


def _replica_searches(dep: Deployment) -> list[float] | None:
    """Search requests each replica has answered so far (its /metrics), or None if unreadable."""
    counts = []
    for port in dep.replica_ports():
        try:
            body = http_get(port, "/metrics").body.decode(errors="replace")
        except OSError:
            return None
        values = re.findall(
            r'^hmr_http_requests(?:_total)?\{[^}]*route="'
            + re.escape(SEARCH_ROUTE)
            + r'"[^}]*\} (\S+)',
            body,
            re.M,
        )
        if not values:
            return None
        counts.append(sum(float(v) for v in values))
    return counts


def _check(dep: Deployment, static_port: int) -> dict[str, object]:
    """Same bytes and headers through the deployment as from static; the static path answers."""
    facts: dict[str, object] = {}
    for label, headers in (("identity", {}), ("gzip", {"Accept-Encoding": "gzip"})):
        a = http_get(dep.port, CATEGORY, headers=headers)
        b = http_get(static_port, STATIC_CATEGORY, headers=headers)
        if a.status != 200 or b.status != 200:
            raise BenchError(f"category {label}: deployed {a.status}, static {b.status}")
        if a.body != b.body:
            raise BenchError(
                f"category {label}: bodies differ ({len(a.body)} vs {len(b.body)} bytes)"
            )
        for h in ("content-type", "content-encoding"):
            if (a.headers.get(h) or "").replace(" ", "").lower() != (
                b.headers.get(h) or ""
            ).replace(" ", "").lower():
                raise BenchError(
                    f"category {label}: {h} {a.headers.get(h)!r} vs {b.headers.get(h)!r}"
                )
        if (label == "gzip") != (a.headers.get("content-encoding") == "gzip"):
            raise BenchError(
                f"category {label}: unexpected Content-Encoding {a.headers.get('content-encoding')!r}"
            )
        facts[f"bytes {label}"] = len(a.body)
        again = http_get(dep.port, CATEGORY, headers=headers)
        facts[f"X-Cache {label}"] = again.headers.get("x-cache", "(none)")
    probe = http_get(dep.port, SEARCH + "&tags_none=n-probe")
    if probe.status != 200:
        raise BenchError(f"cache-busting search answered {probe.status}: {probe.body[:200]!r}")
    facts["bytes search"] = len(probe.body)
    facts["X-Cache search"] = probe.headers.get("x-cache", "(none)")
    probe = http_get(dep.port, SEARCH + "&tags_none=n-probe2", headers=NO_CACHE)
    if probe.status != 200:
        raise BenchError(f"search with an apikey header answered {probe.status}")
    facts["X-Cache search not cached"] = probe.headers.get("x-cache", "(none)")
    return facts


# --------------------------------------------------------------------------- the benchmark


def run(settings: Settings, workdir: Path) -> Section:
    if not settings.seed_dir.is_dir():
        raise BenchError(f"seed dataset not found: {settings.seed_dir}")
    find_tool("wrk")
    find_tool("nginx")
    script = workdir / "bust.lua"
    script.write_text(BUST_SCRIPT)
    one = Deployment("1 replica", workdir / "one", replicas=1)
    two = Deployment("2 replicas", workdir / "two", replicas=2)
    workers = _deployed_workers()
    try:
        with Processes(workdir) as procs:
            for dep in (one, two):
                log(f"deploy/local.py up --replicas {dep.replicas} (seeding {settings.seed_dir})")
                t0 = time.monotonic()
                dep.up(settings.seed_dir)
                log(f"{dep.label}: up on :{dep.port} in {time.monotonic() - t0:.1f} s")
            current = (two.data_dir / "snapshots" / "CURRENT").read_text().strip()
            static_root = workdir / "static"
            static_root.mkdir()
            os.symlink(two.data_dir / "snapshots" / current / "v2", static_root / "v2")
            static_port, static_pid = _start_static(
                procs, workdir / "static-nginx", static_root, workers
            )
            facts = _check(two, static_port)
            log(f"same bytes through nginx and static; {facts}")
            measured = _measure(settings, one, two, static_port, static_pid, script)
    finally:
        errors = []
        for dep in (two, one):
            try:
                dep.down()
            except BenchError as e:
                errors.append(str(e))
        if errors:
            log("down failed: " + "; ".join(errors))
    return _render(settings, workers, facts, *measured)


def _measure(
    settings: Settings,
    one: Deployment,
    two: Deployment,
    static_port: int,
    static_pid: int,
    script: Path,
):
    def category(port: int, path: str, gzip: bool):
        headers = {"Accept-Encoding": "gzip"} if gzip else {}
        url = f"http://{LOOPBACK}:{port}{path}"
        return lambda seconds: run_wrk(
            url, seconds, settings.connections, settings.threads, headers
        )

    counter = iter(range(1_000_000))

    def bust(dep: Deployment, headers: dict[str, str] | None = None):
        def go(seconds: int) -> WrkResult:
            return _wrk_script(
                dep.url(SEARCH),
                settings,
                seconds,
                script,
                SEARCH,
                f"r{next(counter)}",
                headers=headers,
            )

        return go

    pairs = {
        "category identity": (
            ("nginx (deployed)", two, category(two.port, CATEGORY, False)),
            ("nginx static", None, category(static_port, STATIC_CATEGORY, False)),
        ),
        "category gzip": (
            ("nginx (deployed)", two, category(two.port, CATEGORY, True)),
            ("nginx static", None, category(static_port, STATIC_CATEGORY, True)),
        ),
        "search, distinct URLs": (("2 replicas", two, bust(two)), ("1 replica", one, bust(one))),
        # the same, with the micro-cache out of the way (an apikey header: proxy_cache_bypass and
        # proxy_no_cache), so nginx does not write every one-off answer into its cache
        "search, distinct URLs, not cached": (
            ("2 replicas", two, bust(two, NO_CACHE)),
            ("1 replica", one, bust(one, NO_CACHE)),
        ),
    }
    log(f"warm-up: {settings.warmup_s} s per measured target")
    for sides in pairs.values():
        for _, _, go in sides:
            go(settings.warmup_s)

    runs: dict[tuple[str, str], list[WrkResult]] = {}
    cpu: dict[tuple[str, str], list[CpuUse]] = {}
    # nginx CPU (its master and workers, user + system) per request of the category reads: the
    # cost of each side without wrk's, steadier than req/s when other work shares the cores
    nginx_us: dict[tuple[str, str], list[float]] = {}
    # and wrk's (the bench's children: only wrk runs during a run), which the ratio mixes in
    wrk_us: dict[tuple[str, str], list[float]] = {}
    spread: dict[str, list[float]] = {}
    for rep in range(settings.repeats):
        for pair, sides in pairs.items():
            order = list(sides) if rep % 2 == 0 else list(reversed(sides))
            for side, dep, go in order:
                before = (
                    _replica_searches(dep) if dep is two and pair.startswith("search") else None
                )
                # nginx's own CPU around the run (both sides of the category rows)
                if dep is None:
                    pids = [static_pid, *_children(static_pid)]
                else:
                    pids = dep.pids("nginx")
                n0 = _cpu_seconds(pids)
                w0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                if dep is None:
                    r = go(settings.duration_s)
                else:
                    r, use = _measured(dep, lambda go=go: go(settings.duration_s))
                    cpu.setdefault((pair, side), []).append(use)
                if pair.startswith("category") and r.requests:
                    used = _cpu_seconds(pids) - n0
                    nginx_us.setdefault((pair, side), []).append(used / r.requests * 1e6)
                    w1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    wrk = w1.ru_utime + w1.ru_stime - w0.ru_utime - w0.ru_stime
                    wrk_us.setdefault((pair, side), []).append(wrk / r.requests * 1e6)
                if before is not None:
                    after = _replica_searches(dep)
                    if after is not None:
                        for i, (b, a) in enumerate(zip(before, after, strict=True)):
                            spread.setdefault(f"{pair}: read_api_{i}", []).append(a - b)
                runs.setdefault((pair, side), []).append(r)
                log(
                    f"run {rep + 1}/{settings.repeats} {pair} / {side}: {r.requests_per_s:,.0f} req/s "
                    f"p50 {fmt_ms(r.p50_ms)} p99 {fmt_ms(r.p99_ms)}"
                    + (f" ERRORS {r.errors}" if r.errors else "")
                )
    ratios = {}
    for pair, (first, second) in pairs.items():
        a, b = runs[(pair, first[0])], runs[(pair, second[0])]
        ratios[pair] = median(
            x.requests_per_s / y.requests_per_s if y.requests_per_s else 0.0
            for x, y in zip(a, b, strict=True)
        )
    medians = {k: median_wrk(v) for k, v in runs.items()}
    cpu_median = {
        k: CpuUse(
            *(median(getattr(u, f) for u in v) for f in ("replicas", "nginx", "wrk", "machine"))
        )
        for k, v in cpu.items()
    }
    sides = {pair: (first[0], second[0]) for pair, (first, second) in pairs.items()}
    nginx_median = {k: median(v) for k, v in nginx_us.items()}
    wrk_median = {k: median(v) for k, v in wrk_us.items()}
    return sides, medians, ratios, cpu_median, spread, nginx_median, wrk_median


def _render(
    settings, workers, facts, sides, medians, ratios, cpu, spread, nginx_us, wrk_us
) -> Section:
    failures: list[str] = []
    rows = []
    errors = []
    for pair, (first, second) in sides.items():
        a, b = medians[(pair, first)], medians[(pair, second)]
        ratio = ratios[pair]
        shown = f"{ratio:.1%}"
        if pair.startswith("category"):
            ok = ratio >= CATEGORY_RATIO_TARGET
            target = f"≥ {CATEGORY_RATIO_TARGET:.0%} of static: {status(ok)}"
            if not ok:
                failures.append(
                    f"{pair}: {ratio:.1%} of nginx static < {CATEGORY_RATIO_TARGET:.0%}"
                )
            size = facts[f"bytes {pair.split()[-1]}"]
        else:
            target = "— (scaling, reported)"
            size = facts["bytes search"]
            shown = f"×{ratio:.2f}"
        for side, r in ((first, a), (second, b)):
            if r.errors:
                errors.append(f"{pair} / {side}: {r.errors} errors in {r.requests} requests")
        rows.append(
            (
                pair,
                f"{size:,}",
                f"{first}: {a.requests_per_s:,.0f}",
                f"{second}: {b.requests_per_s:,.0f}",
                shown,
                f"{fmt_ms(a.p50_ms)} / {fmt_ms(a.p99_ms)}",
                f"{fmt_ms(b.p50_ms)} / {fmt_ms(b.p99_ms)}",
                target,
            )
        )
    table = markdown_table(
        ("reads", "bytes", "A req/s", "B req/s", "A/B", "A p50/p99", "B p50/p99", "target"), rows
    )

    cpu_rows = [
        (
            f"{pair} / {side}",
            f"{u.replicas:.2f}",
            f"{u.nginx:.2f}",
            f"{u.wrk:.2f}",
            f"{u.machine:.0%}",
        )
        for (pair, side), u in cpu.items()
    ]
    cpu_table = markdown_table(
        ("run", "read replicas (cores)", "nginx (cores)", "wrk (cores)", "machine busy"), cpu_rows
    )

    us_rows = []
    for pair, (first, second) in sides.items():
        if (pair, first) in nginx_us and (pair, second) in nginx_us:
            a_us, b_us = nginx_us[(pair, first)], nginx_us[(pair, second)]
            a_wrk, b_wrk = wrk_us.get((pair, first), 0.0), wrk_us.get((pair, second), 0.0)
            us_rows.append(
                (
                    pair,
                    f"{a_us:.1f}",
                    f"{b_us:.1f}",
                    f"{b_us / a_us:.1%}" if a_us else "—",
                    f"{a_wrk:.1f} / {b_wrk:.1f}",
                )
            )
    us_table = markdown_table(
        (
            "reads",
            "nginx (deployed) µs/request",
            "nginx static µs/request",
            "static / deployed",
            "wrk µs/request (deployed / static)",
        ),
        us_rows,
    )

    notes = [
        f"wrk {settings.threads} thread, {settings.connections} connections, {settings.duration_s} s "
        f"per run, median of {settings.repeats} rounds (after {settings.warmup_s} s warm-up per "
        "target); the order of A and B alternates each round and A/B is the median of the "
        "per-round ratios. wrk, nginx and the services share this machine's "
        f"{os.cpu_count()} cores.",
        "Topology: `deploy/local.py up` (the `make up` topology: nginx with hmr.conf.template, "
        "write queue, stats, N read replicas, real dataset) with 1 and with 2 read replicas, both "
        "up during the whole bench; only one side is loaded at a time. The deployed nginx logs "
        "every request to a file (as deployed); the static nginx has access_log off. Both nginx "
        f"run `worker_processes {workers}`.",
        "Category rows: the deployed nginx answers from the live snapshot's files, the static "
        f"path (X-Cache: identity {facts['X-Cache identity']}, gzip {facts['X-Cache gzip']}), "
        "with the read service's ETag, Cache-Control, Vary and X-Snapshot-Id added; bytes, "
        "Content-Type and Content-Encoding checked identical to the static files first. The "
        "deployed category locations keep the files open (`open_file_cache`: a snapshot's files "
        "never change under their path); the static reference is plain (no cache). The "
        "deployed nginx's access log is its buffered default (`buffer=64k flush=1s`): the one "
        "per-request log of this topology (the services run with `--access-log false`).",
        "Search rows: `" + SEARCH + "&tags_none=n-<run>-<thread>-<counter>` (a tag no model has), "
        "a URL never seen before on "
        f"every request (X-Cache {facts['X-Cache search']}), so every request is proxied to a "
        "replica, which runs the search and serialises the answer; nginx also stores each "
        "answer in its micro-cache (`proxy_cache_valid 200 1s`), a file write per request. "
        "The `not cached` row sends an `apikey` header, which the read service ignores and "
        f"nginx's config turns into cache bypass and no store (X-Cache "
        f"{facts['X-Cache search not cached']}): what the replicas alone give through nginx.",
    ]
    if spread:
        per = ", ".join(f"{k} {median(v):,.0f}" for k, v in sorted(spread.items()))
        notes.append(f"Requests each replica answered per run with 2 replicas (median): {per}.")
    if errors:
        notes.append("wrk reported errors: " + "; ".join(errors))
        failures.extend(errors)
    md = "\n\n".join(
        [
            table,
            "CPU used during the runs (cores busy on average; 1.00 = one core):\n\n" + cpu_table,
            "nginx CPU per request of the category reads (master and workers, user + system, "
            "median of the rounds; the deployed nginx includes its access log): the cost of "
            "each side without wrk's, steadier than req/s on a shared machine:\n\n" + us_table,
            "\n".join(f"- {n}" for n in notes),
        ]
    )
    return Section(NAME, TITLE, md, failures)
