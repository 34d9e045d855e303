"""Shared pieces for the benchmarks: processes, ports, wrk, statistics, tables.

Every helper here is bounded in time (deadlines on every wait loop, timeouts on
every subprocess) and every process started through :class:`Processes` is
terminated when its ``with`` block ends, whatever happens inside.
"""

from __future__ import annotations

import http.client
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOOPBACK = "127.0.0.1"


class BenchError(RuntimeError):
    """A benchmark could not run (a tool missing, a server that did not start...)."""


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Knobs shared by all benchmarks (set from the command line)."""

    duration_s: int = 5  # one wrk run (whole seconds)
    warmup_s: int = 1  # one warm-up wrk run per endpoint and server
    repeats: int = 3  # wrk runs per measurement; the median is kept
    connections: int = 16
    threads: int = 1
    ready_starts: int = 5  # process starts for the time-to-ready figure
    seed_dir: Path = REPO_ROOT.parent / "shared" / "reference-data" / "legacy"
    keep_tmp: bool = False


@dataclass
class Section:
    """What one benchmark hands back: a markdown block and the targets it missed."""

    name: str
    title: str
    markdown: str
    failures: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- tools


def find_tool(name: str) -> str:
    """Absolute path of a command, also looking in the sbin directories."""
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/local/sbin", "/usr/sbin", "/sbin"):
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise BenchError(f"{name} not found; run deploy/ensure-tools.sh {name}")


def hmr_command() -> list[str]:
    """The ``hmr`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "hmr"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())"]


def free_port() -> int:
    """A TCP port free on the loopback address right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def render_template(template: Path, dest: Path, **values: object) -> Path:
    """Fill a ``$name`` / ``${name}`` template; every placeholder must be given."""
    text = string.Template(template.read_text()).substitute({k: str(v) for k, v in values.items()})
    dest.write_text(text)
    return dest


# ---------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    started_at: float  # time.perf_counter() just before Popen
    log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Starts processes and terminates all of them (by pid) on exit."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self._procs: list[Proc] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "ab")
        started = time.perf_counter()
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
            )
        except BaseException:
            log_file.close()
            raise
        proc = Proc(name, popen, log_path, started, log_file)
        self._procs.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; always reaps."""
        try:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait(timeout=timeout)
        finally:
            if proc.log_file is not None:
                proc.log_file.close()
                proc.log_file = None
            if proc in self._procs:
                self._procs.remove(proc)

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for proc in reversed(list(self._procs)):
            try:
                self.stop(proc)
            except BaseException as e:  # noqa: BLE001 -- keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]


# ---------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def http_get(
    port: int, path: str, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> Response:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
    finally:
        conn.close()


def wait_until_ok(
    port: int, path: str, timeout: float, proc: Proc | None = None, interval: float = 0.005
) -> float:
    """Poll ``GET path`` until it answers 200; return perf_counter() of that answer.

    Kept cheap: a refused connect costs one syscall, then a 5 ms sleep.  Raises
    BenchError on timeout or if ``proc`` exits first.
    """
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nConnection: close\r\n\r\n".encode()
    )
    deadline = time.perf_counter() + timeout
    while True:
        now = time.perf_counter()
        if now > deadline:
            raise BenchError(
                f"no 200 from 127.0.0.1:{port}{path} within {timeout:.1f} s"
                + (f"; log:\n{proc.log_tail()}" if proc else "")
            )
        if proc is not None and not proc.alive():
            raise BenchError(
                f"{proc.name} exited with {proc.popen.returncode} before answering;"
                f" log:\n{proc.log_tail()}"
            )
        try:
            with socket.create_connection((LOOPBACK, port), timeout=max(0.05, deadline - now)) as s:
                s.sendall(request)
                status_line = b""
                while b"\r\n" not in status_line and len(status_line) < 256:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    status_line += chunk
                if status_line.startswith(b"HTTP/1.1 200") or status_line.startswith(
                    b"HTTP/1.0 200"
                ):
                    return time.perf_counter()
        except OSError:
            pass
        time.sleep(interval)


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a process from /proc/<pid>/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


# ---------------------------------------------------------------- wrk


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = re.compile(r"^\s*([0-9.]+)(us|ms|s|m|h)\s*$")


def _to_ms(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx responses
    raw: str = field(repr=False, default="")


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"could not parse wrk output:\n{output}")
    errors = 0
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sock:
        errors += sum(int(g) for g in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(
        float(rps.group(1)),
        _to_ms(p50.group(1)),
        _to_ms(p99.group(1)),
        int(total.group(1)),
        errors,
        output,
    )


def run_wrk(
    url: str,
    duration_s: int,
    connections: int = 16,
    threads: int = 1,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """One wrk run (whole seconds: wrk takes no fractions)."""
    duration_s = max(1, duration_s)
    argv = [
        find_tool("wrk"),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(url)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 20)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from e
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def median_wrk(results: Sequence[WrkResult]) -> WrkResult:
    """Median of each figure separately (req/s, p50, p99) over repeated runs."""
    return WrkResult(
        statistics.median(r.requests_per_s for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.requests for r in results),
        sum(r.errors for r in results),
    )


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# ---------------------------------------------------------------- output


def fmt_ms(ms: float) -> str:
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    if ms < 100:
        return f"{ms:.2f} ms"
    return f"{ms:.0f} ms"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "| " + " | ".join(header) + " |"
    sep = "|" + "|".join("---" for _ in header) + "|"
    body = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _tool_version(argv: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired, BenchError):
        return "unknown"
    m = re.search(pattern, done.stdout + done.stderr)
    return m.group(1) if m else "unknown"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def cpu_busy(window_s: float = 1.0) -> float | None:
    """Share (0..1) of all CPUs busy over ``window_s``, from /proc/stat."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(window_s)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total > 0 else None


def machine_description(busy_at_start: float | None = None) -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    def tool(name: str, args: list[str], pattern: str) -> str:
        try:
            return _tool_version([find_tool(name), *args], pattern)
        except BenchError:
            return "not installed"

    try:
        mem_kib = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")
            )
        )
        mem = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "unknown"
    rows = [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("load average at end (1/5/15 min)", load_average()),
        ("nproc", str(os.cpu_count())),
        (
            "CPU busy just before the bench (1 s sample)",
            "unknown" if busy_at_start is None else f"{busy_at_start:.0%}",
        ),
        ("CPU", _cpu_model()),
        ("memory", mem),
        ("kernel", platform.release()),
        ("python", platform.python_version()),
        ("aiohttp", version("aiohttp")),
        ("nginx", tool("nginx", ["-v"], r"nginx/(\S+)")),
        ("wrk", tool("wrk", ["-v"], r"wrk (\S+)")),
    ]
    return markdown_table(("machine", ""), rows)


def status(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "—"}[ok]


Log = Callable[[str], None]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
