"""Optional peer comparison: the public ``horde-model-reference`` service on the same data.

Runs only with ``HMR_BENCH_PEER=1``.  Then it:

1. creates a virtualenv in the bench's temporary directory and installs
   ``horde-model-reference[service]`` from the package registry with pip (the ``service`` extra
   brings FastAPI and uvicorn; ``HMR_BENCH_PEER_SPEC`` overrides the requirement, e.g. to pin a
   version);
2. seeds it from the same legacy files, offline: copies them into its cache layout
   (``$AIWORKER_CACHE_HOME/horde_model_reference/legacy/``) and runs its own converter
   (``convert_all_legacy_model_references``) to write its v2 files.  It runs in PRIMARY mode
   (local files are its source of truth), GitHub seeding off, and every URL it could fetch
   (GitHub raw files through ``GITHUB_PROXY_URL_BASE``, the PRIMARY API, AI-Horde) plus the HTTP(S)
   proxy variables point at a closed port on 127.0.0.1, so it cannot reach the internet;
3. starts it with uvicorn (one worker, access log off) on 127.0.0.1 next to one ``hmr read-api``
   seeded from the same files, checks both list the same models, and runs the same reads with
   wrk against both, alternating which goes first, median of N runs.

Nothing of the peer is copied into the repository; its venv lives and dies with the temp dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
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
    http_get,
    log,
    markdown_table,
    median,
    median_wrk,
    rss_kib,
    run_wrk,
    wait_until_ok,
)
from bench.read_api import _seed, _start_read_api

NAME = "peer"
TITLE = "Peer comparison: public horde-model-reference service vs hmr read-api"

ENABLE_VAR = "HMR_BENCH_PEER"
SPEC_VAR = "HMR_BENCH_PEER_SPEC"
DEFAULT_SPEC = "horde-model-reference[service]"
INSTALL_TIMEOUT_S = 600
READY_TIMEOUT_S = 60.0
DEAD_URL = f"http://{LOOPBACK}:9"  # nothing listens there: any fetch fails at once, locally

V1 = "/api/model_references/v1"
V2 = "/api/model_references/v2"
READY_PATH = f"{V2}/image_generation"


@dataclass(frozen=True)
class Read:
    label: str
    ours: str
    peer: str | None  # None: the peer has no such route
    gzip: bool = False

    @property
    def headers(self) -> dict[str, str]:
        return {"Accept-Encoding": "gzip"} if self.gzip else {}


READS = (
    Read("v2 category `image_generation`", f"{V2}/image_generation", f"{V2}/image_generation"),
    Read(
        "v1 category `stable_diffusion.json`",
        f"{V1}/stable_diffusion.json",
        f"{V1}/stable_diffusion.json",
    ),
    Read(
        "v2 single model `image_generation` `Deliberate`",
        f"{V2}/image_generation/model/Deliberate",
        f"{V2}/image_generation/Deliberate",  # the peer's route (no /model/ segment)
    ),
    Read(
        "v2 search `image_generation?baseline=stable_diffusion_xl&limit=20`",
        f"{V2}/image_generation/search?baseline=stable_diffusion_xl&limit=20",
        f"{V2}/image_generation/search?baseline=stable_diffusion_xl&limit=20",
    ),
    Read(
        "v2 category `image_generation`, `Accept-Encoding: gzip`",
        f"{V2}/image_generation",
        f"{V2}/image_generation",
        gzip=True,
    ),
)


def skipped() -> Section:
    return Section(NAME, TITLE, f"skipped (set {ENABLE_VAR}=1)")


# ---------------------------------------------------------------- install and seed


def _peer_env(cache_home: Path, log_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # nothing of ours (or a user's proxy / horde settings) leaks into the peer
        if not k.startswith(("HMR_", "HORDE_", "AI_HORDE", "AIWORKER", "VIRTUAL_ENV", "PYTHON"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env.update(
        {
            "AIWORKER_CACHE_HOME": str(cache_home),
            "LOGS_FOLDER": str(log_dir / "peer-logs"),
            "HORDE_MODEL_REFERENCE_REPLICATE_MODE": "PRIMARY",
            "HORDE_MODEL_REFERENCE_GITHUB_SEED_ENABLED": "false",
            "HORDE_MODEL_REFERENCE_MAKE_FOLDERS": "true",
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": f"{DEAD_URL}/api/model_references/",
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
            "GITHUB_PROXY_URL_BASE": DEAD_URL,
            "AI_HORDE_URL": f"{DEAD_URL}/api/",
            "HORDE_URL": f"{DEAD_URL}/api/",
            "LOGURU_LEVEL": "WARNING",  # its DEBUG logging would dominate the measurements
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = DEAD_URL
    env["NO_PROXY"] = env["no_proxy"] = f"{LOOPBACK},localhost"
    return env


def _run(argv: list[str], log_path: Path, timeout: float, what: str, **kw) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{what} took more than {timeout:.0f} s") from e
    log_path.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(
            f"{what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
        )
    return done.stdout


def _install(workdir: Path, log_dir: Path) -> tuple[Path, str, float]:
    """A venv with the peer installed; returns its python, the installed version, seconds."""
    spec = os.environ.get(SPEC_VAR) or DEFAULT_SPEC
    venv = workdir / "venv"
    t0 = time.perf_counter()
    # the base interpreter of ours, not our venv (whose packages must not be visible)
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    _run([base_python, "-m", "venv", str(venv)], log_dir / "venv.log", 120, "python -m venv")
    python = venv / "bin" / "python"
    log(f"pip install {spec} into {venv}")
    pip_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))
    }
    pip_env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    _run(
        [str(python), "-m", "pip", "install", "-q", spec],
        log_dir / "pip-install.log",
        INSTALL_TIMEOUT_S,
        f"pip install {spec}",
        env=pip_env,
        cwd=workdir,
    )
    version = _run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('horde_model_reference'))",
        ],
        log_dir / "peer-version.log",
        60,
        "reading the installed version",
        cwd=workdir,
    ).strip()
    return python, version, time.perf_counter() - t0


# Runs in the peer's venv: copy the legacy files it knows into its cache layout (a flat legacy/
# folder: image/<file>.json and text/models.csv side by side), then convert them with its own code.
_CONVERT = r"""
import json, shutil, sys
from pathlib import Path
from horde_model_reference import horde_model_reference_paths as paths
from horde_model_reference.meta_consts import (
    github_image_model_reference_categories, github_text_model_reference_categories)
from horde_model_reference.legacy.convert_all_legacy_dbs import convert_all_legacy_model_references
seed = Path(sys.argv[1])
paths.legacy_path.mkdir(parents=True, exist_ok=True)
copied = []
for sub, categories in (("image", github_image_model_reference_categories),
                        ("text", github_text_model_reference_categories)):
    for category in categories:
        name = paths.legacy_model_reference_filenames[category]
        src = seed / sub / name
        if src.is_file():
            shutil.copyfile(src, paths.legacy_path / name)
            copied.append(f"{sub}/{name}")
ok = convert_all_legacy_model_references(paths.legacy_path, paths.base_path)
print(json.dumps({"base": str(paths.base_path), "copied": copied, "ok": ok}))
sys.exit(0 if ok else 3)
"""


def _seed_peer(python: Path, seed_dir: Path, workdir: Path, log_dir: Path):
    """Seed the peer's cache dir from the legacy files with its own converter (offline)."""
    cache_home = workdir / "peer-cache"
    base = cache_home / "horde_model_reference"
    env = _peer_env(cache_home, log_dir)
    t0 = time.perf_counter()
    out = _run(
        [str(python), "-c", _CONVERT, str(seed_dir)],
        log_dir / "peer-convert.log",
        300,
        "the peer's legacy conversion",
        env=env,
        cwd=workdir,
    )
    seconds = time.perf_counter() - t0
    result = json.loads(out.strip().splitlines()[-1])
    if Path(result["base"]).resolve() != base.resolve():
        raise BenchError(f"the peer converted into {result['base']!r}, not {base}")
    if not (base / "stable_diffusion.json").is_file():
        raise BenchError(f"the peer's conversion wrote no {base / 'stable_diffusion.json'}")
    return env, seconds, result["copied"]


def _start_peer(procs: Processes, python: Path, env: dict[str, str], workdir: Path):
    port = free_port()
    proc = procs.start(
        "peer-uvicorn",
        [
            str(python),
            "-m",
            "uvicorn",
            "horde_model_reference.service.app:app",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=workdir,
    )
    return proc, port


# ---------------------------------------------------------------- measure


def _names(port: int, path: str) -> set[str]:
    r = http_get(port, path, timeout=30)
    if r.status != 200:
        raise BenchError(f"GET {path} on :{port}: {r.status} {r.body[:300]!r}")
    return set(json.loads(r.body))


def _compare_names(api_port: int, peer_port: int) -> list[str]:
    """Both serve the same model names (else the comparison would not be like for like)."""
    notes = []
    for path in (f"{V2}/image_generation", f"{V1}/stable_diffusion.json"):
        ours, theirs = _names(api_port, path), _names(peer_port, path)
        if ours != theirs:
            raise BenchError(
                f"{path}: the peer serves other models: only ours {sorted(ours - theirs)[:5]}, "
                f"only theirs {sorted(theirs - ours)[:5]}"
            )
        notes.append(f"`{path}`: {len(ours)} models on both")
    return notes


def _probe(api_port: int, peer_port: int) -> dict[str, dict[str, object]]:
    """Status, size and encoding of every read on both servers (before measuring)."""
    probe: dict[str, dict[str, object]] = {}
    for rd in READS:
        a = http_get(api_port, rd.ours, headers=rd.headers, timeout=30)
        if a.status != 200:
            raise BenchError(f"{rd.label}: read-api answered {a.status}")
        entry: dict[str, object] = {
            "ours_bytes": len(a.body),
            "ours_enc": a.headers.get("content-encoding", "identity"),
        }
        if rd.peer is not None:
            p = http_get(peer_port, rd.peer, headers=rd.headers, timeout=30)
            entry.update(
                peer_status=p.status,
                peer_bytes=len(p.body),
                peer_enc=p.headers.get("content-encoding", "identity"),
            )
        probe[rd.label] = entry
    return probe


def _throughput(settings: Settings, api_port: int, peer_port: int, probe):
    def url(port: int, path: str) -> str:
        return f"http://{LOOPBACK}:{port}{path}"

    wrk = dict(connections=settings.connections, threads=settings.threads)
    comparable = [
        rd for rd in READS if rd.peer is not None and probe[rd.label]["peer_status"] == 200
    ]
    log(f"warm-up: {settings.warmup_s:g} s per read and server")
    for rd in READS:
        run_wrk(url(api_port, rd.ours), settings.warmup_s, headers=rd.headers, **wrk)
        if rd in comparable:
            run_wrk(url(peer_port, rd.peer), settings.warmup_s, headers=rd.headers, **wrk)
    runs: dict[tuple[str, str], list[WrkResult]] = {}
    for rep in range(settings.repeats):
        for rd in READS:
            order = [("read-api", api_port, rd.ours)]
            if rd in comparable:
                order.append(("peer", peer_port, rd.peer))
            if rep % 2:
                order.reverse()
            for server, port, path in order:
                r = run_wrk(url(port, path), settings.duration_s, headers=rd.headers, **wrk)
                runs.setdefault((rd.label, server), []).append(r)
                log(
                    f"run {rep + 1}/{settings.repeats} {server:8} {rd.label}: "
                    f"{r.requests_per_s:,.0f} req/s p50 {fmt_ms(r.p50_ms)} p99 {fmt_ms(r.p99_ms)}"
                    + (f" ERRORS {r.errors}" if r.errors else "")
                )
    ratios = {
        rd.label: median(
            a.requests_per_s / p.requests_per_s if p.requests_per_s else 0.0
            for a, p in zip(runs[(rd.label, "read-api")], runs[(rd.label, "peer")], strict=True)
        )
        for rd in comparable
    }
    return {k: median_wrk(v) for k, v in runs.items()}, ratios


def run(settings: Settings, workdir: Path) -> Section:
    if os.environ.get(ENABLE_VAR) != "1":
        log(f"skipped: set {ENABLE_VAR}=1 to install and measure the public service")
        return skipped()
    if not settings.seed_dir.is_dir():
        raise BenchError(f"seed dataset not found: {settings.seed_dir}")
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    python, version, install_s = _install(workdir, log_dir)
    log(f"installed horde-model-reference {version} in {install_s:.0f} s")
    env, convert_s, copied = _seed_peer(python, settings.seed_dir, workdir, log_dir)
    log(
        f"peer seeded from {settings.seed_dir} ({', '.join(copied)}) with its converter "
        f"in {convert_s:.1f} s"
    )
    data_dir = workdir / "data"
    _seed(settings, data_dir, log_dir)

    with Processes(log_dir) as procs:
        peer, peer_port = _start_peer(procs, python, env, workdir)
        peer_ready = wait_until_ok(peer_port, READY_PATH, timeout=READY_TIMEOUT_S, proc=peer)
        peer_ready_s = peer_ready - peer.started_at
        api, api_port = _start_read_api(procs, data_dir)
        api_ready = wait_until_ok(api_port, READY_PATH, timeout=READY_TIMEOUT_S, proc=api)
        api_ready_s = api_ready - api.started_at
        log(
            f"peer on :{peer_port} (pid {peer.pid}) first 200 after {peer_ready_s * 1000:.0f} ms; "
            f"read-api on :{api_port} (pid {api.pid}) after {api_ready_s * 1000:.0f} ms"
        )
        name_notes = _compare_names(api_port, peer_port)
        probe = _probe(api_port, peer_port)
        rss_loaded = {"read-api": rss_kib(api.pid), "peer": rss_kib(peer.pid)}
        results, ratios = _throughput(settings, api_port, peer_port, probe)
        rss_after = {"read-api": rss_kib(api.pid), "peer": rss_kib(peer.pid)}
        for p in (peer, api):
            if not p.alive():
                raise BenchError(f"{p.name} exited during the runs; log:\n{p.log_tail()}")
    return _render(
        settings,
        version,
        install_s,
        convert_s,
        probe,
        results,
        ratios,
        (api_ready_s, peer_ready_s),
        rss_loaded,
        rss_after,
        name_notes,
        copied,
    )


def _render(
    settings,
    version,
    install_s,
    convert_s,
    probe,
    results,
    ratios,
    ready,
    rss_loaded,
    rss_after,
    name_notes,
    copied,
) -> Section:
    rows = []
    errors = []
    for rd in READS:
        pr = probe[rd.label]
        a = results[(rd.label, "read-api")]
        p = results.get((rd.label, "peer"))
        ours_bytes = f"{pr['ours_bytes']:,}" + (" gz" if pr["ours_enc"] == "gzip" else "")
        if p is None:
            status = pr.get("peer_status")
            peer_cells = (
                "no such route" + (f" ({status})" if status is not None else ""),
                "—",
                "—",
                "—",
            )
        else:
            peer_cells = (
                f"{pr['peer_bytes']:,}" + (" gz" if pr["peer_enc"] == "gzip" else ""),
                f"{p.requests_per_s:,.0f}",
                f"{fmt_ms(p.p50_ms)} / {fmt_ms(p.p99_ms)}",
                f"{ratios[rd.label]:.1f}×",
            )
            if p.errors:
                errors.append(f"peer {rd.label}: {p.errors} errors / {p.requests} requests")
        if a.errors:
            errors.append(f"read-api {rd.label}: {a.errors} errors / {a.requests} requests")
        rows.append(
            (
                rd.label,
                ours_bytes,
                peer_cells[0],
                f"{a.requests_per_s:,.0f}",
                peer_cells[1],
                f"{fmt_ms(a.p50_ms)} / {fmt_ms(a.p99_ms)}",
                peer_cells[2],
                peer_cells[3],
            )
        )
    table = markdown_table(
        (
            "read",
            "read-api bytes",
            "peer bytes",
            "read-api req/s",
            "peer req/s",
            "read-api p50 / p99",
            "peer p50 / p99",
            "read-api ÷ peer (req/s)",
        ),
        rows,
    )

    def rss(d: dict[str, int]) -> str:
        return f"{d['VmRSS'] / 1024:.1f} MiB"

    figures = markdown_table(
        ("figure", "read-api", "peer", "peer ÷ read-api"),
        [
            (
                f"start → first 200 on `{READY_PATH}` (one start)",
                fmt_ms(ready[0] * 1e3),
                fmt_ms(ready[1] * 1e3),
                f"{ready[1] / ready[0]:.1f}×",
            ),
            (
                "RSS once loaded (VmRSS)",
                rss(rss_loaded["read-api"]),
                rss(rss_loaded["peer"]),
                f"{rss_loaded['peer']['VmRSS'] / rss_loaded['read-api']['VmRSS']:.1f}×",
            ),
            (
                "RSS after the runs (VmRSS / peak VmHWM)",
                f"{rss(rss_after['read-api'])} / {rss_after['read-api']['VmHWM'] / 1024:.1f} MiB",
                f"{rss(rss_after['peer'])} / {rss_after['peer']['VmHWM'] / 1024:.1f} MiB",
                f"{rss_after['peer']['VmRSS'] / rss_after['read-api']['VmRSS']:.1f}×",
            ),
        ],
    )
    notes = [
        f"Peer: `horde-model-reference` {version} from the package registry (with its `service` "
        f"extra) in a throw-away virtualenv (install {install_s:.0f} s), PRIMARY mode, seeded "
        f"offline from the same legacy files ({', '.join(copied)}) with its own converter "
        f"({convert_s:.1f} s), served "
        "by `uvicorn horde_model_reference.service.app:app` with 1 worker, access log off, its "
        "log level WARNING; every URL it could fetch pointed at a closed port on 127.0.0.1.",
        "Ours: one `hmr read-api --mode PRIMARY --access-log false` process on a snapshot seeded "
        "from the same files. Both are one process on the same 2-core machine as wrk. "
        + "; ".join(name_notes)
        + ". The bodies differ in formatting and fields (each service's own v2 rendering), hence "
        "the byte columns.",
        f"wrk {settings.threads} thread, {settings.connections} connections, "
        f"{settings.duration_s:g} s per run, median of {settings.repeats} runs after "
        f"{settings.warmup_s:g} s warm-up, servers alternated each round; ratio = median of the "
        "per-round ratios. The single-model row uses each service's own route (the peer has no "
        "`/model/` segment and cannot take names with `/`, so an image model is used). The peer "
        "has no search route and does not compress (a gzip request gets the identity body).",
    ]
    failures = list(errors)
    if errors:
        notes.append("wrk reported errors: " + "; ".join(errors))
    md = "\n\n".join([table, figures, "\n".join(f"- {n}" for n in notes)])
    return Section(NAME, TITLE, md, failures)
