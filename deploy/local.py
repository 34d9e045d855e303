"""`make up` / `make down`: the production topology on this machine, without containers.

nginx (Debian's package, our config) in front of two read replicas, one write queue and one stats
service, all on 127.0.0.1, with the static path's follower (deploy/nginx/live-follow.sh) next to
nginx: it points nginx at the live snapshot's files and reloads it on every publish. `up` refuses at once when its port is taken and returns once every
service answers; `down` stops exactly the processes `up` started (their pids are in
DATA_DIR/run/state.json). `check` is what `make run` does before it starts anything.

    python deploy/local.py up    [--port 19800] [--data-dir ./var] [--seed-dir DIR] [--replicas 2]
                                 [--auth-file FILE] [--horde-url URL|off]
                                 [--requestor-ids IDS] [--approver-ids IDS]
    python deploy/local.py down  [--data-dir ./var]
    python deploy/local.py check [--port 19800]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs

from services.cli import listen
from services.read_api.config import Config as ReadConfig
from shared.config import HORDE_OFF, ConfigError

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "deploy" / "nginx" / "hmr.conf.template"
#: the static path's follower: writes run/live.conf (the live snapshot's directory and id, which
#: the config includes) and reloads nginx whenever snapshots/CURRENT moves
LIVE_FOLLOW = REPO / "deploy" / "nginx" / "live-follow.sh"
HMR = [sys.executable, "-m", "services.cli"]
READY_TIMEOUT = 30.0


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays bound until all are chosen, so the
    kernel cannot hand the same port out twice (one closed at once could come back next)."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def port_free(port: int) -> None:
    """Fail at once, naming what holds it, when 127.0.0.1:`port` is taken: nginx would not bind,
    and the readiness check would get its answer from the other process."""
    for sock in listen("127.0.0.1", port, hint="PORT=<another port>"):
        sock.close()


def answers(port: int, path: str, server: str | None = None) -> bool:
    """True when `path` answers below 500 (from a `Server: <server>...` when one is given)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", path)
        resp = conn.getresponse()
        status, header = resp.status, resp.getheader("Server") or ""
        conn.close()
    except OSError:
        return False
    return status < 500 and (server is None or header.startswith(server))


def last_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def wait_ready(
    name: str,
    port: int,
    path: str,
    proc: subprocess.Popen[bytes] | None,
    log: Path,
    server: str | None = None,
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            said = last_line(log)
            raise SystemExit(
                f"up: {name} exited with code {proc.returncode}"
                + (f": {said}" if said else f"; see {log}")
            )
        if answers(port, path, server):
            return
        time.sleep(0.05)
    raise SystemExit(
        f"up: {name} did not answer on port {port} within {READY_TIMEOUT:.0f} s; "
        "see its log in DATA_DIR/run/"
    )


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise SystemExit("up: nginx is not installed (run deploy/ensure-tools.sh nginx)")
    return found


def render_nginx(run_dir: Path, port: int, reads: list[int], write: int, stats: int) -> Path:
    values = {
        # also where live.conf is: the static path's snapshot directory and id (live_follow)
        "RUN_DIR": str(run_dir),
        # buffered: a write per request cost nginx ~15% of its cached-read throughput (wrk)
        "ACCESS_LOG": f"{run_dir / 'nginx-access.log'} combined buffer=64k flush=1s",
        "LISTEN": f"127.0.0.1:{port}",
        "READ_SERVERS": "\n".join(f"        server 127.0.0.1:{p};" for p in reads),
        "WRITE_SERVER": f"127.0.0.1:{write}",
        "STATS_SERVER": f"127.0.0.1:{stats}",
        # as root nginx would drop its workers to `nobody`, who cannot enter a private data
        # dir; this local topology keeps them as the invoking user (the images run non-root)
        "USER": "user root;" if os.geteuid() == 0 else "",
    }
    # plain replacement: nginx's own $variables must stay as they are
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    if "${" in text:
        raise SystemExit("up: unfilled placeholder in " + str(TEMPLATE))
    conf = run_dir / "nginx.conf"
    conf.write_text(text)
    return conf


def live_follow(
    mode: str, data_dir: Path, run_dir: Path, env: dict[str, str], nginx_pid: int | None = None
) -> subprocess.Popen[bytes] | None:
    """The static path's follower (deploy/nginx/live-follow.sh) on this data dir: `once` writes
    run/live.conf for the snapshot CURRENT names and returns None (before nginx starts: its
    config includes the file); `follow` starts it in the background, rewriting live.conf and
    reloading nginx on every publish, until it is stopped or nginx (`nginx_pid`) is gone."""
    snapshots = str((data_dir / "snapshots").resolve())
    include = str(run_dir / "live.conf")
    follow_env = dict(
        env,
        HMR_NGINX=nginx_binary(),
        HMR_NGINX_ERROR_LOG=str(run_dir / "nginx-error.log"),
        # the replicas run with the default (up passes them no HMR_CACHE_MAX_AGE)
        HMR_CACHE_MAX_AGE=str(attrs.fields(ReadConfig).cache_max_age.default),
    )
    if mode == "once":
        with open(run_dir / "live_follow.log", "ab") as log:
            done = subprocess.run(
                ["sh", str(LIVE_FOLLOW), "once", snapshots, include],
                env=follow_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            raise SystemExit(f"up: could not write {include}; see {run_dir / 'live_follow.log'}")
        return None
    if nginx_pid is not None:
        follow_env["HMR_LIVE_WATCH_PID"] = str(nginx_pid)
    conf = str(run_dir / "nginx.conf")
    args = ["sh", str(LIVE_FOLLOW), "follow", snapshots, include, conf]
    return start("live_follow", args, follow_env, run_dir)


def hmr(*args: str, env: dict[str, str]) -> None:
    """Run `hmr ARGS` to the end; when it fails, exit with its code (it said why on stderr)."""
    code = subprocess.run([*HMR, *args], env=env, cwd=REPO, check=False).returncode
    if code != 0:
        raise SystemExit(code)


def write_openapi(run_dir: Path, env: dict[str, str]) -> None:
    """The deployment's one OpenAPI document, rendered from the same apps the services run."""
    hmr("openapi", "--out", str(run_dir / "openapi.json"), env=env)


def auth_warning(options: argparse.Namespace) -> str | None:
    """What is missing for writes to work, in the words of `make up`'s variables."""
    if options.auth_file:
        return None
    if options.horde_url.lower() in HORDE_OFF:
        return (
            "up: every call with an API key answers 503: AI-Horde auth is off (HORDE_URL=off) "
            "and no AUTH_FILE is given; give AUTH_FILE=FILE (`hmr dev-auth FILE` writes one), "
            "or HORDE_URL=URL with REQUESTOR_IDS=... APPROVER_IDS=..."
        )
    if not options.requestor_ids and not options.approver_ids:
        return "up: nobody may propose or review: give REQUESTOR_IDS=... APPROVER_IDS=..."
    return None


def start(
    name: str, args: list[str], env: dict[str, str], run_dir: Path
) -> subprocess.Popen[bytes]:
    # the child keeps its own copy of the log's descriptor
    with open(run_dir / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            args, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


#: what `make up GITHUB_SYNC=...` may ask for; off unless given
GITHUB_SYNC_MODES = ("", "off", "watch", "dry-run")


def start_github_sync(
    options: argparse.Namespace, env: dict[str, str], run_dir: Path
) -> subprocess.Popen[bytes]:
    """`hmr github-sync --watch` against this deployment's nginx. Its settings come from the
    shell's HMR_GITHUB_SYNC_* (and upstream's) variables: the token or App, the repositories;
    `dry-run` needs none and writes nothing to GitHub."""
    sync_env = dict(env)
    sync_env.update(
        {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("HMR_GITHUB_SYNC_", "HORDE_GITHUB_SYNC_", "GITHUB_"))
        }
    )
    sync_env["HMR_GITHUB_SYNC_PRIMARY_API_URL"] = f"http://127.0.0.1:{options.port}/api"
    sync_env.setdefault("HMR_GITHUB_SYNC_STATUS_FILE", str(run_dir / "github-sync-status.json"))
    sync_env.setdefault("HMR_LOG_FORMAT", "text")
    if options.github_sync == "dry-run":
        sync_env["HMR_GITHUB_SYNC_DRY_RUN"] = "true"
    args = [*HMR, "github-sync", "--watch", "--watch-startup-sync"]
    return start("github_sync", args, sync_env, run_dir)


def up(options: argparse.Namespace) -> int:
    data_dir = Path(options.data_dir).resolve()
    run_dir = data_dir / "run"
    state_file = run_dir / "state.json"
    if state_file.exists():
        print(f"up: {state_file} exists: already up? run `make down` first", file=sys.stderr)
        return 1
    try:
        port_free(options.port)
    except ConfigError as exc:
        print(f"up: {exc}", file=sys.stderr)
        return 1
    # the services read only these HMR_* variables: a stray one in the shell changes nothing
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMR_")}
    env.update(
        HMR_DATA_DIR=str(data_dir),
        HMR_MODE="PRIMARY",
        HMR_ACCESS_LOG="false",
        HMR_HORDE_URL=options.horde_url,
    )
    if options.seed_dir:
        env["HMR_SEED_DIR"] = str(Path(options.seed_dir).resolve())
    if options.auth_file:
        env["HMR_AUTH_FILE"] = str(Path(options.auth_file).resolve())
    if options.requestor_ids:
        env["HMR_REQUESTOR_IDS"] = options.requestor_ids
    if options.approver_ids:
        env["HMR_APPROVER_IDS"] = options.approver_ids
    if not (data_dir / "snapshots" / "CURRENT").exists():
        hmr("seed", env=env)
    run_dir.mkdir(parents=True, exist_ok=True)

    write, stats, *reads = free_ports(2 + options.replicas)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    state: dict[str, object] = {"port": options.port, "pids": {}, "ports": {}}
    try:
        procs["write_queue"] = start(
            "write_queue", [*HMR, "write-queue", "--port", str(write)], env, run_dir
        )
        # ready once its dataset is loaded (in the background, after the port listens): it
        # has then published the first snapshot of an empty data dir, and takes writes
        wait_ready(
            "write_queue",
            write,
            "/readyz",
            procs["write_queue"],
            run_dir / "write_queue.log",
        )
        for i, port in enumerate(reads):
            procs[f"read_api_{i}"] = start(
                f"read_api_{i}", [*HMR, "read-api", "--port", str(port)], env, run_dir
            )
        procs["stats"] = start("stats", [*HMR, "stats", "--port", str(stats)], env, run_dir)
        for i, port in enumerate(reads):
            name = f"read_api_{i}"
            wait_ready(name, port, "/api/replicate_mode", procs[name], run_dir / f"{name}.log")
        wait_ready("stats", stats, "/api/heartbeat", procs["stats"], run_dir / "stats.log")
        write_openapi(run_dir, env)
        conf = render_nginx(run_dir, options.port, reads, write, stats)
        live_follow("once", data_dir, run_dir, env)
        procs["nginx"] = start("nginx", [nginx_binary(), "-c", str(conf)], env, run_dir)
        # from here on every publish reaches nginx's static path (within HMR_LIVE_POLL_INTERVAL
        # and a reload); a publish since `once` is caught up at the follower's first look
        follower = live_follow("follow", data_dir, run_dir, env, procs["nginx"].pid)
        assert follower is not None
        procs["live_follow"] = follower
        # nginx's answer, not that of whatever took the port since it was checked
        wait_ready(
            "nginx",
            options.port,
            "/api/replicate_mode",
            procs["nginx"],
            run_dir / "nginx.log",
            server="nginx",
        )
    except BaseException:
        for proc in procs.values():
            _stop(proc.pid)
        raise
    if options.github_sync not in ("", "off"):
        procs["github_sync"] = start_github_sync(options, env, run_dir)
    state["pids"] = {name: proc.pid for name, proc in procs.items()}
    state["ports"] = {
        **{f"read_api_{i}": p for i, p in enumerate(reads)},
        "write_queue": write,
        "stats": stats,
        "nginx": options.port,
    }
    state_file.write_text(json.dumps(state, indent=2))
    print(f"up: http://127.0.0.1:{options.port}/api/ (state in {state_file})")
    if (warning := auth_warning(options)) is not None:
        print(warning, file=sys.stderr)
    return 0


def check(options: argparse.Namespace) -> int:
    """`make run`'s first step: refuse before anything starts (or prints its keys) when the
    port is taken."""
    try:
        port_free(options.port)
    except ConfigError as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 1
    return 0


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (orphans may never be reaped here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def down(options: argparse.Namespace) -> int:
    state_file = Path(options.data_dir).resolve() / "run" / "state.json"
    if not state_file.exists():
        print("down: nothing is up here", file=sys.stderr)
        return 0
    state = json.loads(state_file.read_text())
    # the follower first (it would reload nginx), then nginx, so no request reaches a service
    # that is going away
    first = ("live_follow", "nginx")
    order = sorted(
        state["pids"].items(),
        key=lambda item: first.index(item[0]) if item[0] in first else len(first),
    )
    for _name, pid in order:
        _stop(int(pid))
    state_file.unlink()
    print("down: stopped " + ", ".join(name for name, _ in order))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="start nginx, read replicas, write queue and stats")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 19800)))
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "./var"))
    p.add_argument("--seed-dir", default=os.environ.get("SEED_DIR") or None)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--auth-file", default=os.environ.get("AUTH_FILE") or None)
    p.add_argument("--horde-url", default=os.environ.get("HORDE_URL", "off"))
    p.add_argument("--requestor-ids", default=os.environ.get("REQUESTOR_IDS") or None)
    p.add_argument("--approver-ids", default=os.environ.get("APPROVER_IDS") or None)
    p.add_argument(
        "--github-sync",
        choices=GITHUB_SYNC_MODES,
        default=os.environ.get("GITHUB_SYNC", ""),
        help="also run `hmr github-sync --watch` (watch) or its dry run (dry-run); off by default",
    )
    p.set_defaults(run=up)
    p = sub.add_parser("down", help="stop what `up` started")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "./var"))
    p.set_defaults(run=down)
    p = sub.add_parser("check", help="fail when the port is taken (`make run` runs this first)")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 19800)))
    p.set_defaults(run=check)
    options = parser.parse_args(argv)
    return int(options.run(options))


if __name__ == "__main__":
    sys.exit(main())
