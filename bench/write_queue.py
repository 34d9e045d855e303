"""Write queue: proposals per second, applies per second, apply → visible on the reads.

Starts one ``hmr all`` (read + write + stats on one app) on loopback with a temporary data dir
seeded from the real reference data and a development auth file (one requestor, one approver),
then, with one aiohttp client session:

1. reference: sequential and concurrent ``GET /api/replicate_mode`` (the cheapest route: what the
   server costs without any work), measured in the same run so that ratios mean something;
2. proposals: ``PROPOSALS`` typed creates of distinct image_generation models, ``CONCURRENCY`` at a
   time (each one an authenticated, validated, SQLite-committed enqueue);
3. one review batch approving all of them;
4. applies: one change per ``POST …/changes/{id}/apply``, sequentially (each commits SQLite and
   publishes a snapshot of the whole real dataset), within ``APPLY_BUDGET_S``;
5. apply → visible: for the last ``VISIBLE_SAMPLES`` applies, the time from the apply's answer to
   the first 200 of ``GET /v2/image_generation/model/<name>`` (polled every 5 ms);
6. beta models as default workers read them: wrk on ``GET /v2/image_generation/pending`` with
   AI-Horde's anonymous key against wrk on the whole-category read, same process and settings.

Bounded: every phase has a deadline, the server is terminated in ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.harness import (
    LOOPBACK,
    REPO_ROOT,
    BenchError,
    Processes,
    Section,
    Settings,
    WrkResult,
    fmt_ms,
    free_port,
    hmr_command,
    log,
    markdown_table,
    median_wrk,
    ms_until_served,
    rss_kib,
    run_wrk,
    status,
    wait_until_ok,
)

NAME = "write-queue"
TITLE = "Write queue: proposals, applies, apply → visible"

PROPOSALS = 200  # distinct creates
CONCURRENCY = 8  # proposals in flight at once (and concurrent reference GETs)
REFERENCE_REQUESTS = 400  # per reference measurement
VISIBLE_SAMPLES = 20  # applies followed by polling the read route
APPLY_BUDGET_S = 60.0  # the sequential applies stop here (then the visibility samples run)
POLL_INTERVAL_S = 0.005
VISIBLE_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 90.0  # `hmr all` seeds the real dataset on its first start
VISIBLE_TARGET_S = 1.0  # every apply visible to the reads within 1 s

V2 = "/api/model_references/v2"
PQ = f"{V2}/pending_queue"
ANONYMOUS_KEY = "0000000000"
PENDING_PATH = f"{V2}/image_generation/pending"
CATEGORY_PATH = f"{V2}/image_generation"
REFERENCE_PATH = "/api/replicate_mode"


@dataclass
class Figures:
    ref_seq_ms: list[float] = field(default_factory=list)
    ref_conc_ms: list[float] = field(default_factory=list)
    ref_conc_rps: float = 0.0
    propose_ms: list[float] = field(default_factory=list)
    propose_rps: float = 0.0
    batch_ms: float = 0.0
    apply_ms: list[float] = field(default_factory=list)
    apply_wall_s: float = 0.0
    visible_apply_ms: list[float] = field(default_factory=list)
    visible_ms: list[float] = field(default_factory=list)
    not_visible: list[str] = field(default_factory=list)
    snapshots_published: int = 0
    dataset_models: int = 0


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _write_auth(path: Path) -> tuple[str, str]:
    requestor = f"bench-requestor-{secrets.token_hex(8)}"
    approver = f"bench-approver-{secrets.token_hex(8)}"
    users = {
        requestor: {"user_id": "9001", "username": "bench-requestor#9001", "roles": ["requestor"]},
        approver: {"user_id": "9002", "username": "bench-approver#9002", "roles": ["approver"]},
        # AI-Horde's anonymous user, as default workers send it: a reader, no role
        ANONYMOUS_KEY: {"user_id": "0", "username": "Anonymous#0", "roles": []},
    }
    path.write_text(json.dumps(users, indent=2))
    path.chmod(0o600)
    return requestor, approver


async def _timed(session, method: str, url: str, expect: int, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    async with session.request(method, url, **kwargs) as resp:
        body = await resp.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status != expect:
            raise BenchError(f"{method} {url}: {resp.status} (expected {expect}): {body[:300]!r}")
    return elapsed, (json.loads(body) if body else None)


async def _concurrently(count: int, concurrency: int, one) -> tuple[list[float], float]:
    """Run `one(i)` for i < count, `concurrency` at a time; latencies (ms) and calls per second."""
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            latencies.append(await one(i))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return latencies, count / wall


async def _measure(base: str, requestor: str, approver: str) -> Figures:
    import aiohttp  # the bench's own dependency, not the services'

    f = Figures()
    req = {"apikey": requestor}
    appr = {"apikey": approver}
    run = secrets.token_hex(3)
    names = [f"bench-write-queue-{run}-{i:04d}" for i in range(PROPOSALS)]
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:
        # -- reference: the cheapest route, same server, same client
        for _ in range(50):  # warm-up
            await _timed(session, "GET", REFERENCE_PATH, 200)
        for _ in range(REFERENCE_REQUESTS):
            f.ref_seq_ms.append((await _timed(session, "GET", REFERENCE_PATH, 200))[0])

        async def reference(i: int) -> float:
            return (await _timed(session, "GET", REFERENCE_PATH, 200))[0]

        f.ref_conc_ms, f.ref_conc_rps = await _concurrently(
            REFERENCE_REQUESTS, CONCURRENCY, reference
        )
        _, live = await _timed(session, "GET", f"{V2}/image_generation", 200)
        assert isinstance(live, dict)
        f.dataset_models = len(live)
        if any(n in live for n in names):
            raise BenchError("benchmark model names already exist in the dataset")
        log(
            f"reference GET {REFERENCE_PATH}: p50 {fmt_ms(_pct(f.ref_seq_ms, 50))}; "
            f"{f.ref_conc_rps:,.0f} req/s at concurrency {CONCURRENCY}"
        )

        # -- proposals
        change_ids: dict[str, int] = {}

        async def propose(i: int) -> float:
            body = {"name": names[i], "baseline": "stable_diffusion_xl", "nsfw": False}
            ms, answer = await _timed(
                session, "POST", f"{V2}/image_generation", 202, json=body, headers=req
            )
            assert isinstance(answer, dict)
            change_ids[names[i]] = answer["change_id"]
            return ms

        f.propose_ms, f.propose_rps = await _concurrently(PROPOSALS, CONCURRENCY, propose)
        log(
            f"{PROPOSALS} proposals: {f.propose_rps:,.0f}/s, "
            f"p50 {fmt_ms(_pct(f.propose_ms, 50))} p99 {fmt_ms(_pct(f.propose_ms, 99))}"
        )

        # -- one review batch
        review = {"batch_title": f"bench {run}", "approved_ids": list(change_ids.values())}
        f.batch_ms, result = await _timed(
            session, "POST", f"{PQ}/batches", 200, json=review, headers=appr
        )
        assert isinstance(result, dict) and len(result["approved"]) == PROPOSALS
        log(f"approved {PROPOSALS} in one batch: {fmt_ms(f.batch_ms)}")

        # -- sequential applies, then the visibility samples
        plain, sampled = names[:-VISIBLE_SAMPLES], names[-VISIBLE_SAMPLES:]
        t0 = time.perf_counter()
        deadline = t0 + APPLY_BUDGET_S
        for name in plain:
            if time.perf_counter() > deadline:
                log(f"apply budget of {APPLY_BUDGET_S:.0f} s spent after {len(f.apply_ms)} applies")
                break
            url = f"{PQ}/changes/{change_ids[name]}/apply"
            f.apply_ms.append((await _timed(session, "POST", url, 200, json={}, headers=appr))[0])
        f.apply_wall_s = time.perf_counter() - t0
        log(
            f"{len(f.apply_ms)} sequential applies: {len(f.apply_ms) / f.apply_wall_s:.1f}/s, "
            f"p50 {fmt_ms(_pct(f.apply_ms, 50))} p99 {fmt_ms(_pct(f.apply_ms, 99))}"
        )

        for name in sampled:
            model_url = f"{V2}/image_generation/model/{name}"
            async with session.get(model_url) as resp:
                await resp.read()
                if resp.status != 404:
                    raise BenchError(f"{name} is served before its apply ({resp.status})")
            url = f"{PQ}/changes/{change_ids[name]}/apply"
            ms, _ = await _timed(session, "POST", url, 200, json={}, headers=appr)
            f.visible_apply_ms.append(ms)
            applied_at = time.perf_counter()
            visible = await ms_until_served(
                session, model_url, applied_at, VISIBLE_TIMEOUT_S, POLL_INTERVAL_S
            )
            if visible is None:
                f.not_visible.append(name)
            else:
                f.visible_ms.append(visible)
        if f.visible_ms:
            log(
                f"apply → visible ({len(f.visible_ms)} samples): median "
                f"{fmt_ms(statistics.median(f.visible_ms))}, max {fmt_ms(max(f.visible_ms))}"
            )
        f.snapshots_published = len(f.apply_ms) + len(f.visible_apply_ms)
    return f


def run(settings: Settings, workdir: Path) -> Section:
    if not settings.seed_dir.is_dir():
        raise BenchError(f"seed dataset not found: {settings.seed_dir}")
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    requestor, approver = _write_auth(workdir / "auth.json")
    port = free_port()
    env = {
        **os.environ,
        "HMR_HORDE_URL": "off",  # the stats poller of `hmr all` stays off AI-Horde; auth is the file
    }
    argv = [
        *hmr_command(),
        "all",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--seed-dir",
        str(settings.seed_dir),
        "--auth-file",
        str(workdir / "auth.json"),
        "--access-log",
        "false",
    ]
    with Processes(log_dir) as procs:
        proc = procs.start("hmr-all", argv, env=env, cwd=REPO_ROOT)
        ready = wait_until_ok(port, REFERENCE_PATH, timeout=READY_TIMEOUT_S, proc=proc)
        log(f"hmr all on :{port} (pid {proc.pid}) ready after {ready - proc.started_at:.1f} s")
        # the first read of a category (or the write store's first import) must not count
        wait_until_ok(port, f"{V2}/image_generation", timeout=READY_TIMEOUT_S, proc=proc)
        # writes answer 503 until the write service has loaded its dataset in the background
        wait_until_ok(port, "/readyz", timeout=READY_TIMEOUT_S, proc=proc)
        rss_before = rss_kib(proc.pid)
        try:
            figures = asyncio.run(
                asyncio.wait_for(
                    _measure(f"http://{LOOPBACK}:{port}", requestor, approver),
                    timeout=APPLY_BUDGET_S + 60,
                )
            )
        except TimeoutError as e:
            raise BenchError(f"the measurements took more than {APPLY_BUDGET_S + 60:.0f} s") from e
        rss_after = rss_kib(proc.pid)
        beta = _beta_reads(settings, port)
        if not proc.alive():
            raise BenchError(f"hmr all exited during the bench; log:\n{proc.log_tail()}")
    section = _render(figures, rss_before, rss_after)
    return replace(section, markdown=section.markdown + "\n\n" + beta)


def _beta_reads(settings: Settings, port: int) -> str:
    """Anonymous /pending reads (the beta models every default worker polls) against the
    whole-category read, each the median of `settings.repeats` wrk runs on the same process."""
    base = f"http://{LOOPBACK}:{port}"
    anon = {"apikey": ANONYMOUS_KEY}

    def measured(path: str, headers: dict[str, str] | None) -> WrkResult:
        run_wrk(base + path, settings.warmup_s, settings.connections, settings.threads, headers)
        return median_wrk(
            [
                run_wrk(
                    base + path,
                    settings.duration_s,
                    settings.connections,
                    settings.threads,
                    headers,
                )
                for _ in range(settings.repeats)
            ]
        )

    pending = measured(PENDING_PATH, anon)
    category = measured(CATEGORY_PATH, None)
    for label, result in (("anonymous /pending", pending), ("category", category)):
        if result.errors:
            raise BenchError(f"{label} reads: {result.errors} errors or non-2xx answers")
    rows = [
        (f"`GET {CATEGORY_PATH}` (reference)", f"{category.requests_per_s:,.0f} req/s", "1×"),
        (
            f"`GET {PENDING_PATH}`, `apikey: {ANONYMOUS_KEY}`",
            f"{pending.requests_per_s:,.0f} req/s",
            f"{pending.requests_per_s / category.requests_per_s:.2f}×",
        ),
    ]
    table = markdown_table(("beta-model reads (wrk)", "rate", "÷ reference"), rows)
    note = (
        f"- wrk, {settings.connections} connections, {settings.duration_s} s × {settings.repeats} "
        "(median), one warm-up run each, against the same `hmr all` after the writes above (its "
        f"queue holds what they left). Auth here is the development file; with AI-Horde the key's "
        "identity (and a refusal) is cached, so a fleet polling with one key costs one lookup per "
        "cache period (tested)."
    )
    return table + "\n\n" + note


def _render(f: Figures, rss_before: dict[str, int], rss_after: dict[str, int]) -> Section:
    failures: list[str] = []
    ref_p50 = _pct(f.ref_seq_ms, 50)
    ref_conc_p50 = _pct(f.ref_conc_ms, 50)
    apply_p50 = _pct(f.apply_ms, 50) if f.apply_ms else float("nan")
    applies_per_s = len(f.apply_ms) / f.apply_wall_s if f.apply_wall_s else 0.0
    visible_ok: bool | None = None
    if f.visible_ms or f.not_visible:
        visible_ok = not f.not_visible and max(f.visible_ms) <= VISIBLE_TARGET_S * 1000
    if visible_ok is False:
        worst = "never" if f.not_visible else fmt_ms(max(f.visible_ms))
        failures.append(f"apply → visible: worst {worst} > {VISIBLE_TARGET_S:g} s")

    def lat(values: list[float]) -> str:
        return f"{fmt_ms(_pct(values, 50))} / {fmt_ms(_pct(values, 99))}"

    rows = [
        (
            f"reference: `GET {REFERENCE_PATH}`, sequential ({len(f.ref_seq_ms)})",
            f"{1000 / statistics.mean(f.ref_seq_ms):,.0f} req/s",
            lat(f.ref_seq_ms),
            "1×",
            "—",
            "—",
        ),
        (
            f"reference: `GET {REFERENCE_PATH}`, concurrency {CONCURRENCY} ({len(f.ref_conc_ms)})",
            f"{f.ref_conc_rps:,.0f} req/s",
            lat(f.ref_conc_ms),
            "1×",
            "—",
            "—",
        ),
        (
            f"proposals: `POST {V2}/image_generation`, concurrency {CONCURRENCY} "
            f"({len(f.propose_ms)})",
            f"{f.propose_rps:,.0f} /s ({f.propose_rps / f.ref_conc_rps:.1%} of the reference)",
            lat(f.propose_ms),
            f"{_pct(f.propose_ms, 50) / ref_conc_p50:.1f}×",
            "—",
            "—",
        ),
        (
            f"approve all {PROPOSALS} in one `POST …/pending_queue/batches`",
            "—",
            fmt_ms(f.batch_ms),
            f"{f.batch_ms / ref_p50:.0f}×",
            "—",
            "—",
        ),
        (
            f"applies: `POST …/changes/{{id}}/apply`, sequential ({len(f.apply_ms)})",
            f"{applies_per_s:.1f} /s",
            lat(f.apply_ms) if f.apply_ms else "—",
            f"{apply_p50 / ref_p50:.0f}×",
            "—",
            "—",
        ),
        (
            f"apply → visible on `GET {V2}/image_generation/model/<name>` "
            f"({len(f.visible_ms)} samples, 5 ms polling)",
            "—",
            (
                f"median {fmt_ms(statistics.median(f.visible_ms))}, max {fmt_ms(max(f.visible_ms))}"
                if f.visible_ms
                else "—"
            )
            + (f"; {len(f.not_visible)} never visible" if f.not_visible else ""),
            "—",
            f"≤ {VISIBLE_TARGET_S:g} s (every sample)",
            status(visible_ok),
        ),
    ]
    table = markdown_table(
        ("figure", "rate", "latency p50 / p99", "p50 ÷ reference p50", "target", "status"), rows
    )
    notes = [
        f"One `hmr all` process (read + write + stats, `--access-log false`, stats polling off) on "
        f"loopback, data dir seeded from the real reference data ({f.dataset_models} "
        "image_generation models); client: one aiohttp session on the same machine.",
        "Latencies are client-side (request sent → body read); percentiles are nearest-rank. "
        "Ratios compare with the reference at the same concurrency (proposals: concurrent; "
        "batch and applies: sequential). "
        "Proposal rate = proposals / wall time at the given concurrency; apply rate = applies / "
        "wall time, sequential (each apply waits for the previous one's answer).",
        f"Each apply commits SQLite, moves the approved changes left in its batch to a new batch "
        f"(up to {PROPOSALS - 1} of them here) and publishes a snapshot of the whole dataset "
        f"({f.snapshots_published} snapshots published during the run).",
        "apply → visible: from the apply's answer to the first 200 of the model on the read "
        "route (the read service polls the snapshot pointer every 0.2 s by default); each model "
        "was checked to be 404 before its apply. The apply latencies of these samples "
        f"(p50 {fmt_ms(_pct(f.visible_apply_ms, 50)) if f.visible_apply_ms else '—'}) are not in "
        "the apply row.",
        f"hmr all RSS: {rss_before['VmRSS'] / 1024:.0f} MiB before the writes, "
        f"{rss_after['VmRSS'] / 1024:.0f} MiB after (peak {rss_after['VmHWM'] / 1024:.0f} MiB).",
    ]
    md = "\n\n".join([table, "\n".join(f"- {n}" for n in notes)])
    return Section(NAME, TITLE, md, failures)
