"""The `hmr` command: seed a data dir, run one service, or run the whole system in one process."""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import json
import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import uvloop
from aiohttp import web

import shared
from shared.config import ConfigError, get_bool, get_choice, get_int, get_path
from shared.http import SERVER_HANDLER_ARGS
from shared.memory import limit_heaps
from shared.observability import AccessLogger, configure_logging
from shared.service import ProcessExit, ServiceFailed, process_exit_key
from shared.snapshot import SnapshotError, SnapshotStore

logger = logging.getLogger("hmr")

SAMPLE_DIR = Path(shared.__file__).parent / "sample_data" / "legacy"

#: (flag, environment variable, help)
Option = tuple[str, str, str]
#: runs a command: (the environment with the options on top, the parsed arguments) -> exit status
Runner = Callable[[dict[str, str], argparse.Namespace], int]
#: builds the application a command serves from that environment (`hmr all` seeds an empty dir)
AppBuilder = Callable[[Mapping[str, str]], web.Application]

#: every option is also an environment variable
COMMON = [
    ("--data-dir", "HMR_DATA_DIR", "data directory: snapshots/ (and the write store) live here"),
]
SERVE = [
    ("--host", "HMR_HOST", "address to listen on (default 127.0.0.1)"),
    ("--port", "HMR_PORT", "port to listen on"),
    ("--mode", "HMR_MODE", "replicate mode reported and enforced: PRIMARY or REPLICA"),
    ("--canonical-format", "HMR_CANONICAL_FORMAT", "which API version takes writes: v2 or legacy"),
    ("--cors-origins", "HMR_CORS_ORIGINS", "allowed CORS origins, a JSON array or comma-separated"),
    ("--access-log", "HMR_ACCESS_LOG", "log every request: true or false (default true)"),
    ("--log-format", "HMR_LOG_FORMAT", "json (default: one JSON object per line) or text"),
]
SEED = [
    (
        "--seed-dir",
        "HMR_SEED_DIR",
        "legacy directory (image/*.json, text/models.csv or db.json); "
        "default: the bundled sample dataset",
    ),
]
WRITE = [
    (
        "--requestor-ids",
        "HMR_REQUESTOR_IDS",
        "AI-Horde user ids allowed to propose changes: 1001,1002 or a JSON array",
    ),
    (
        "--approver-ids",
        "HMR_APPROVER_IDS",
        "AI-Horde user ids allowed to approve and apply: 1001,1002 or a JSON array",
    ),
    (
        "--license-editor-ids",
        "HMR_LICENSE_EDITOR_IDS",
        "AI-Horde user ids allowed to edit licence definitions and assets: 1001,1002 or a JSON "
        "array",
    ),
    ("--horde-url", "HMR_HORDE_URL", "AI-Horde API base URL (default https://aihorde.net/api/)"),
    (
        "--auth-file",
        "HMR_AUTH_FILE",
        "development only: JSON file of API keys, users and roles instead of AI-Horde",
    ),
]
STATS = [
    ("--horde-url", "HMR_HORDE_URL", "AI-Horde API base URL (default https://aihorde.net/api/)"),
    ("--poll-interval", "HMR_POLL_INTERVAL", "seconds between AI-Horde polls (default 60)"),
]
KEEP = [
    ("--keep-snapshots", "HMR_KEEP_SNAPSHOTS", "how many snapshots to keep on disk (default 5)")
]


def _add(parser: argparse.ArgumentParser, options: list[Option]) -> None:
    for flag, env, text in options:
        parser.add_argument(
            flag,
            dest=env,
            metavar=flag.lstrip("-").upper().replace("-", "_"),
            help=f"{text} [env {env}]",
        )


def _environ(args: argparse.Namespace, base: Mapping[str, str]) -> dict[str, str]:
    """The environment with command-line options on top: one mapping feeds every Config."""
    env = dict(base)
    for key, value in vars(args).items():
        if key.startswith("HMR_") and value is not None:
            env[key] = value
    return env


def _seed_dir(env: Mapping[str, str]) -> Path:
    return get_path(env, "HMR_SEED_DIR", str(SAMPLE_DIR))


def seed(env: Mapping[str, str], force: bool = False) -> int:
    """Import a legacy directory and publish it as the first snapshot of the data dir."""
    data_dir = get_path(env, "HMR_DATA_DIR", "./var")
    store = SnapshotStore(data_dir / "snapshots")
    if (data_dir / "write_queue.sqlite3").exists():
        print(
            f"{data_dir} has a write store, which holds the canonical data and republishes it "
            "on start: stop the write service and move write_queue.sqlite3* away to reseed",
            file=sys.stderr,
        )
        return 1
    if store.current_name() is not None and not force:
        print(
            f"{data_dir} already has a snapshot ({store.current_name()}); "
            "use --force to publish the seed over it",
            file=sys.stderr,
        )
        return 1
    keep = get_int(env, "HMR_KEEP_SNAPSHOTS", 5, minimum=1)
    source = _seed_dir(env)
    # a one-shot command whose millions of objects all live until it exits: the cycle
    # collector's full scans of them cost a sixth of a large seed and would free nothing
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _seed_from(store, source, data_dir, keep)
    finally:
        if collecting:
            gc.enable()
        # the dataset and its encodings are millions of objects; freeing them one by one as
        # the interpreter ends costs a tenth of a large seed, and the process is done
        _EXIT_AT_ONCE.append(True)


def _seed_from(store: SnapshotStore, source: Path, data_dir: Path, keep: int) -> int:
    from shared.seeding import seed_files  # not needed to serve

    seed = seed_files(source)
    for problem in seed.problems:
        print(f"{'error' if problem.fatal else 'warning'}: {problem}", file=sys.stderr)
    if any(p.fatal for p in seed.problems):
        print("nothing published: fix the unreadable files above", file=sys.stderr)
        return 1
    if not any(seed.counts.values()):
        print(
            f"nothing published: no model data found in {source} "
            "(expected image/*.json and/or text/models.csv)",
            file=sys.stderr,
        )
        return 1
    snapshot = store.publish(seed.files, seed.extra, hashes=seed.hashes)
    store.prune(keep)
    counts = ", ".join(f"{c.value}={n}" for c, n in seed.counts.items() if n)
    print(f"seeded {data_dir} from {source}: snapshot {snapshot.name} ({counts})")
    return 0


def dev_auth(path: Path) -> int:
    """Create a development auth file if missing, then print its keys with a warning."""
    if not path.exists():
        users = [
            ("requestor", "1001", "dev-requestor#1001", ["requestor"]),
            ("approver-a", "1002", "dev-approver-a#1002", ["approver"]),
            ("approver-b", "1003", "dev-approver-b#1003", ["approver"]),
        ]
        entries = {
            f"dev-{label}-{secrets.token_hex(8)}": {
                "user_id": uid,
                "username": name,
                "roles": roles,
            }
            for label, uid, name, roles in users
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        path.chmod(0o600)
    entries = json.loads(path.read_text(encoding="utf-8"))
    print(
        f"WARNING: development auth file {path}: these keys bypass AI-Horde. Never use in production."
    )
    for key, entry in entries.items():
        print(f"  apikey: {key}   user {entry['username']} roles {','.join(entry['roles'])}")
    return 0


def _seed_if_empty(env: Mapping[str, str]) -> None:
    store = SnapshotStore(get_path(env, "HMR_DATA_DIR", "./var") / "snapshots")
    if store.current_name() is None and seed(env) != 0:
        raise ConfigError("seeding the empty data dir failed (see above)")


def port_holder(port: int) -> str | None:
    """Who listens on TCP `port`, as `pid N (command line)`, when /proc tells (Linux, and only
    the processes this user may look into); None otherwise."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local address (hex ip:port), state (0A = LISTEN), inode
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                sockets.add(f"socket:[{fields[9]}]")
    if not sockets:
        return None
    pids = sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    for pid in pids:  # the lowest pid first: nginx's master before its workers
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in sockets:
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    return f"pid {pid}"
                command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
                if len(command) > 160:
                    command = command[:159] + "…"
                return f"pid {pid} ({command})" if command else f"pid {pid}"
    return None


def listen(host: str, port: int, hint: str = "--port or HMR_PORT") -> list[socket.socket]:
    """The bound listening sockets of `host:port` (one per address `host` resolves to).

    Bound before anything else starts, so a taken port fails at once and by name, before a data
    dir is seeded or a URL printed; `web.run_app` listens on them only once the app's startup is
    done, so nothing is accepted before the service can answer. `hint` says how to pick another.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}: {exc.strerror}") from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            # as aiohttp does: a port whose last connections are in TIME_WAIT is free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
                holder = port_holder(port)
                by = f" by {holder}" if holder else ""
                raise ConfigError(
                    f"port {port} on {host} is already in use{by}: "
                    f"stop that process or choose another port ({hint})"
                ) from None
            port = sock.getsockname()[1]  # port 0: the others take the one the first got
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound


def _serve(name: str, build: AppBuilder, env: Mapping[str, str], default_port: int) -> int:
    """Bind the port, build the application, serve it; say where once it accepts connections."""
    host = env.get("HMR_HOST") or "127.0.0.1"
    port = get_int(env, "HMR_PORT", default_port, minimum=0)
    access_log = (
        logging.getLogger("aiohttp.access") if get_bool(env, "HMR_ACCESS_LOG", True) else None
    )
    sockets = listen(host, port)
    url = f"http://{host}:{sockets[0].getsockname()[1]}/api/"
    try:
        app = build(env)
        app[process_exit_key] = process_exit = ProcessExit()
        web.run_app(
            app,
            sock=sockets,
            # uvloop answers ~8% more category reads per second than asyncio's loop (make bench)
            loop=uvloop.new_event_loop(),
            access_log=access_log,
            access_log_class=AccessLogger,
            # called once every site listens, after the app's startup (which may wait seconds
            # for AI-Horde): the URL is printed when it answers, not before
            print=lambda _banner: logger.info("hmr %s: %s", name, url),
            **SERVER_HANDLER_ARGS,
        )
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
    if process_exit.failure is not None:
        raise process_exit.failure  # after the server stopped cleanly: one line, exit 2
    return 0


def _server(name: str, app: AppBuilder, default_port: int) -> Runner:
    """Run a service alone: serve what `app` builds on HMR_PORT, `default_port` when unset."""
    return lambda env, args: _serve(name, app, env, default_port)


def read_api_app(env: Mapping[str, str]) -> web.Application:
    """What `hmr read-api` serves."""
    from services.read_api.app import create_app
    from services.read_api.config import Config

    return create_app(Config.from_environ(env))


def _write_env(env: Mapping[str, str]) -> dict[str, str]:
    return {"HMR_SEED_DIR": str(SAMPLE_DIR), **env}


def write_queue_app(env: Mapping[str, str]) -> web.Application:
    """What `hmr write-queue` serves."""
    from services.write_queue.app import create_app
    from services.write_queue.config import Config

    return create_app(Config.from_environ(_write_env(env)))


def stats_app(env: Mapping[str, str]) -> web.Application:
    """What `hmr stats` serves."""
    from services.stats.app import create_app
    from services.stats.config import Config

    return create_app(Config.from_environ(env))


def build_all_app(env: Mapping[str, str]) -> web.Application:
    """Every service on one application under /api, with one OpenAPI document (no I/O)."""
    from services.read_api import app as read_app
    from services.read_api.config import Config as ReadConfig
    from services.read_api.openapi import setup_read_docs
    from services.stats import app as stats_app
    from services.stats.config import Config as StatsConfig
    from services.stats.openapi import setup_stats_docs
    from services.write_queue import app as write_app
    from services.write_queue.config import Config as WriteConfig
    from services.write_queue.openapi import setup_write_docs

    app = web.Application()
    read_app.setup(app, ReadConfig.from_environ(env))
    write_app.setup(app, WriteConfig.from_environ(_write_env(env)))
    stats_app.setup(app, StatsConfig.from_environ(env))
    setup_read_docs(app)
    setup_write_docs(app)  # joins the read document: one /api/openapi.json for all three
    setup_stats_docs(app)
    return app


def all_app(env: Mapping[str, str]) -> web.Application:
    """What `hmr all` serves: PRIMARY unless told otherwise; seeds an empty data dir first."""
    env = {"HMR_MODE": "PRIMARY", **env}
    _seed_if_empty(env)
    return build_all_app(env)


def run_all(env: Mapping[str, str]) -> int:
    """Every service on one application under /api (development and small deployments)."""
    return _serve("all", all_app, env, 19800)


def write_openapi(env: Mapping[str, str], out: str) -> int:
    """Write the deployment's OpenAPI document (every route of every service) to a file."""
    from shared.openapi import build_document

    document = build_document(build_all_app({"HMR_MODE": "PRIMARY", **env}))
    text = json.dumps(document, indent=1, ensure_ascii=False)
    if out == "-":
        print(text)
    else:
        Path(out).write_text(text + "\n", encoding="utf-8")
    return 0


def toolkit_import(env: Mapping[str, str], source: Path) -> int:
    """Import upstream's toolkit files into the write store and publish them."""
    import asyncio

    from services.write_queue.config import Config as WriteConfig
    from services.write_queue.store import StoreBusy
    from services.write_queue.toolkit_files import ImportRefused, aimport_files

    config = WriteConfig.from_environ(env)
    try:
        stores = asyncio.run(aimport_files(config, source))
    except (ImportRefused, StoreBusy, RuntimeError) as exc:
        print(f"hmr: nothing imported: {exc}", file=sys.stderr)
        return 1
    print(
        f"imported into {config.data_dir}: {len(stores.schemas)} schemas, "
        f"{len(stores.aliases)} alias entries, {len(stores.families)} families"
    )
    return 0


def toolkit_export(env: Mapping[str, str], out: Path) -> int:
    """Write the live snapshot's toolkit stores as upstream's files."""
    from services.write_queue.toolkit_files import export_files

    data_dir = get_path(env, "HMR_DATA_DIR", "./var")
    for path in export_files(data_dir / "snapshots", out):
        print(path)
    return 0


#: (help line, description) of each command, in the order `hmr --help` lists them
COMMANDS = {
    "seed": (
        "import a legacy directory and publish the first snapshot",
        "Import a legacy directory laid out like the GitHub "
        "repositories and publish it as a snapshot of the data dir.",
    ),
    "read-api": (
        "serve reads from the snapshots of a data dir",
        "Run the read service (stateless; run as many as you like).",
    ),
    "write-queue": (
        "serve proposals, reviews and applies (the only writer)",
        "Run the write service: authenticated proposals, two-person review, apply "
        "and audit. It owns the SQLite store and publishes snapshots.",
    ),
    "stats": (
        "serve heartbeat, popular models and statistics from AI-Horde data",
        "Run the stats service: polls AI-Horde and merges its status, usage and "
        "workers with the model reference snapshots of the data dir.",
    ),
    "openapi": (
        "write the OpenAPI document of every service to a file",
        "Render the deployment's OpenAPI document (what hmr all serves at "
        "/api/openapi.json); nginx deployments serve this file.",
    ),
    "dev-auth": (
        "create (or show) a development auth file",
        "Write a JSON auth file with a requestor and two approvers and print their "
        "keys. For development only: never use it in production.",
    ),
    "toolkit-import": (
        "import upstream's text toolkit files (group schemas, aliases, families)",
        "Import text_generation_group_{schemas,aliases,families}.json from a directory into "
        "the write store of the data dir, then publish. Each file present replaces its store. "
        "Stop the write service first.",
    ),
    "toolkit-export": (
        "export the text toolkit as upstream's three files",
        "Write the live snapshot's group schemas, aliases and families as upstream's "
        "text_generation_group_*.json files into a directory.",
    ),
    "github-sync": (
        "open pull requests that bring the legacy GitHub repositories up to date",
        "Read the PRIMARY's v1 view over HTTP, compare it with the legacy repositories' base "
        "branch and open one pull request per repository with changes (configured by "
        "HMR_GITHUB_SYNC_* variables; see docs/operators.md).",
    ),
    "all": (
        "every service in one process under /api",
        "Run every service on one application under /api; seeds an "
        "empty data dir first. Mode defaults to PRIMARY here.",
    ),
}

#: the commands that serve one service alone: (command, options, its app, its default port)
SERVICES: list[tuple[str, list[Option], AppBuilder, int]] = [
    ("read-api", COMMON + SERVE, read_api_app, 19801),
    ("write-queue", COMMON + SERVE + SEED + WRITE + KEEP, write_queue_app, 19802),
    ("stats", COMMON + SERVE + STATS, stats_app, 19803),
]


def _add_github_sync(p: argparse.ArgumentParser) -> None:
    """`hmr github-sync`'s flags: each sets the HMR_GITHUB_SYNC_* variable it names."""
    prefix = "HMR_GITHUB_SYNC_"
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--once",
        dest=prefix + "WATCH",
        action="store_const",
        const="false",
        help="one run, then exit (the default) [env HMR_GITHUB_SYNC_WATCH=false]",
    )
    mode.add_argument(
        "--watch",
        dest=prefix + "WATCH",
        action="store_const",
        const="true",
        help="follow the PRIMARY's metadata, with a periodic full reconcile "
        "[env HMR_GITHUB_SYNC_WATCH=true]",
    )
    for flag, name, text in (
        ("--dry-run", "DRY_RUN", "scan and report; write nothing, need no credentials"),
        ("--no-pr", "NO_PR", "render the files a commit would hold into --output-dir, no PR"),
        ("--force", "FORCE", "sync below MIN_CHANGES and past MAX_REMOVALS"),
        ("--watch-startup-sync", "WATCH_STARTUP_SYNC", "with --watch: run once at start"),
    ):
        p.add_argument(
            flag,
            dest=prefix + name,
            action="store_const",
            const="true",
            help=f"{text} [env {prefix}{name}]",
        )
    _add(
        p,
        [
            (
                "--output-dir",
                prefix + "OUTPUT_DIR",
                "where --no-pr writes the files and changes.diff",
            ),
            ("--categories", prefix + "CATEGORIES", "categories to sync: a,b or a JSON list"),
            ("--primary-url", prefix + "PRIMARY_API_URL", "the PRIMARY's base URL (…/api)"),
            ("--watch-interval", prefix + "WATCH_INTERVAL", "seconds between metadata polls"),
            ("--log-format", "HMR_LOG_FORMAT", "json (default: one JSON object per line) or text"),
        ],
    )

    def run(env: dict[str, str], args: argparse.Namespace) -> int:
        from services.github_sync.runner import main as github_sync

        return github_sync(env)

    p.set_defaults(run=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hmr",
        description="AI-Horde model reference services. Every option can also be given as the "
        "environment variable shown in its help.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {
        name: sub.add_parser(name, help=help_line, description=description)
        for name, (help_line, description) in COMMANDS.items()
    }

    p = commands["seed"]
    _add(p, COMMON + SEED + KEEP)
    p.add_argument("--force", action="store_true", help="publish even if the data dir has data")
    p.set_defaults(run=lambda env, a: seed(env, force=a.force))

    for name, options, app, port in SERVICES:
        _add(commands[name], options)
        commands[name].set_defaults(run=_server(name, app, port), app=app)

    p = commands["openapi"]
    p.add_argument("--out", default="-", help="file to write, - for standard output")
    p.set_defaults(run=lambda env, a: write_openapi(env, a.out))

    p = commands["dev-auth"]
    p.add_argument("path", help="where the auth file lives")
    p.set_defaults(run=lambda env, a: dev_auth(Path(a.path)))

    p = commands["toolkit-import"]
    _add(p, COMMON + KEEP)
    p.add_argument("source", help="directory holding upstream's text_generation_group_*.json")
    p.set_defaults(run=lambda env, a: toolkit_import(env, Path(a.source)))

    p = commands["toolkit-export"]
    _add(p, COMMON)
    p.add_argument("out", help="directory to write the three files into")
    p.set_defaults(run=lambda env, a: toolkit_export(env, Path(a.out)))

    _add_github_sync(commands["github-sync"])

    p = commands["all"]
    _add(p, COMMON + SERVE + SEED + WRITE + STATS[1:] + KEEP)
    p.set_defaults(run=lambda env, a: run_all(env), app=all_app)
    return parser


def _parse(
    argv: Sequence[str] | None, environ: Mapping[str, str] | None
) -> tuple[argparse.Namespace, dict[str, str]]:
    args = build_parser().parse_args(argv)
    return args, _environ(args, os.environ if environ is None else environ)


def build_app(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> web.Application:
    """The application `hmr ARGV` serves, built as `main` builds it but not served.

    Options and environment are read as `main` reads them (`environ` instead of `os.environ`),
    and `hmr all` seeds an empty data dir first. Raises ValueError for a command that does not
    serve (seed, openapi, dev-auth).
    """
    args, env = _parse(argv, environ)
    build: Callable[[Mapping[str, str]], web.Application] | None = getattr(args, "app", None)
    if build is None:
        raise ValueError(f"hmr {args.command} does not serve an application")
    return build(env)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args, env = _parse(argv, environ)
    try:
        configure_logging(get_choice(env, "HMR_LOG_FORMAT", "json", ("json", "text")))
    except ConfigError as exc:
        print(f"hmr: error: {exc}", file=sys.stderr)
        return 2
    run: Callable[[dict[str, str], argparse.Namespace], int] = args.run
    try:
        return run(env, args)
    except (ConfigError, SnapshotError, OSError, ServiceFailed) as exc:
        print(f"hmr: error: {exc}", file=sys.stderr)
        return 2


#: set by a command after which the process has nothing left to do (see `entry`)
_EXIT_AT_ONCE: list[bool] = []


def entry() -> None:
    """The `hmr` program: `main`, then its exit. After `hmr seed`, the exit skips the
    interpreter's teardown (every file is written and closed, output flushed here)."""
    limit_heaps(os.environ)  # before any thread starts (see shared/memory.py)
    code = main()
    if _EXIT_AT_ONCE:
        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: the status the interpreter's own exit would give
            code = code or 120
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
