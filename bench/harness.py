"""Shared pieces for the benchmarks: processes, ports, wrk, statistics, tables.

Every helper here is bounded in time (deadlines on every wait loop, timeouts on
every subprocess) and every process started through :class:`Processes` is
terminated when its ``with`` block ends, whatever happens inside.
"""

from __future__ import annotations

import asyncio
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
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

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


@dataclass(frozen=True)
class Target:
    """One target of the issues, as measured: a row of the report's summary."""

    figure: str
    measured: str
    target: str
    ok: bool | None  # None: not measured (benchmark skipped or not run)


@dataclass
class Section:
    """What one benchmark hands back: a markdown block and the targets it missed.

    ``targets`` lists the targets it checked, for the summary at the end of the report; when a
    benchmark leaves it empty the summary reads them from its tables (rows with PASS or FAIL,
    see :func:`scrape_targets`).
    """

    name: str
    title: str
    markdown: str
    failures: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


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


async def ms_until_served(
    session: Any, url: str, since: float, timeout_s: float, interval_s: float
) -> float | None:
    """Poll `url` (aiohttp session) until it answers 200: milliseconds from `since` (a
    perf_counter time) to that answer, None after `timeout_s`; a status other than 404 is a
    BenchError."""
    while True:
        async with session.get(url) as resp:
            await resp.read()
            seen = time.perf_counter()
            if resp.status == 200:
                return (seen - since) * 1000
            if resp.status != 404:
                raise BenchError(f"GET {url}: {resp.status}")
        if seen - since > timeout_s:
            return None
        await asyncio.sleep(interval_s)


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM and RSS split in RssAnon / RssFile (KiB) from /proc/<pid>/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
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


class OtherCpu:
    """CPU time used by processes that are not the bench's own while a benchmark runs.

    A thread samples /proc every ``interval`` seconds.  A process is the bench's own when it
    descends from this process or when its command line or environment (or an ancestor's)
    mentions ``own_marker`` (the bench's temporary directory: what ``deploy/local.py up`` starts
    runs detached, outside our process tree, with ``HMR_DATA_DIR`` under it).  Everything else (another user's tests, a second bench)
    is "other": when it used a noticeable share of the CPU the figures of that benchmark are
    noisy, and the report says so.  A lower bound: a process living less than one interval
    is missed.
    """

    def __init__(self, own_marker: str, interval: float = 0.5) -> None:
        self.own_marker = own_marker
        self.interval = interval
        self._tick = os.sysconf("SC_CLK_TCK")
        self._first: dict[tuple[int, int], int] = {}
        self._last: dict[tuple[int, int], int] = {}
        self._foreign: set[tuple[int, int]] = set()
        self._verdict: dict[tuple[int, int], bool] = {}  # (pid, start time) -> the bench's own
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self.seconds = 0.0  # wall time sampled

    def _scan(self, initial: bool) -> None:
        procs: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, starttime, ticks)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            rest = stat[stat.rfind(")") + 2 :].split()
            # fields after the command: state ppid ... utime(12) stime(13) ... starttime(20)
            procs[int(entry)] = (int(rest[1]), int(rest[19]), int(rest[11]) + int(rest[12]))
        own_pid = os.getpid()
        marker = self.own_marker.encode()

        def is_own(pid: int, depth: int = 0) -> bool:
            if pid == own_pid:
                return True
            if pid <= 1 or pid not in procs or depth > 64:
                return False
            key = (pid, procs[pid][1])
            if key not in self._verdict:
                marked = False
                for part in ("cmdline", "environ"):
                    try:
                        with open(f"/proc/{pid}/{part}", "rb") as f:
                            marked = marker in f.read()
                    except OSError:
                        pass
                    if marked:
                        break
                self._verdict[key] = marked or is_own(procs[pid][0], depth + 1)
            return self._verdict[key]

        for pid, (_ppid, start, ticks) in procs.items():
            key = (pid, start)
            if key not in self._first:
                # alive when we started: count from now; born since: count from its start
                self._first[key] = ticks if initial else 0
            self._last[key] = ticks
            if not is_own(pid):
                self._foreign.add(key)
            else:
                self._foreign.discard(key)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._scan(initial=False)
            except (OSError, ValueError, IndexError):
                pass

    def __enter__(self) -> OtherCpu:
        self._started = time.monotonic()
        try:
            self._scan(initial=True)
            self._thread = threading.Thread(target=self._run, name="other-cpu", daemon=True)
            self._thread.start()
        except (OSError, ValueError, IndexError):
            self._thread = None
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            try:
                self._scan(initial=False)
            except (OSError, ValueError, IndexError):
                pass
        self.seconds = time.monotonic() - self._started

    @property
    def cpu_seconds(self) -> float:
        ticks = sum(self._last[k] - self._first[k] for k in self._foreign)
        return max(0, ticks) / self._tick

    @property
    def cores(self) -> float:
        """Average number of cores the other processes kept busy."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


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


#: which column of a table holds the measured value of a target row, by header, in order
_MEASURED_HEADERS = ("measured", "ratio", "a/b", "body bytes", "latency", "time")
_STATUS = re.compile(r"\b(PASS|FAIL)\b")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def scrape_targets(markdown: str) -> list[Target]:
    """The target rows of a section's markdown tables: every row with a PASS or FAIL cell.

    The measured value is the first column whose header names it (``measured``, ``ratio``,
    ``A/B``, ``body bytes``, ``latency``, ``time``); the target is the text before ``: PASS`` in
    the status cell, else the ``target`` column.
    """
    found: list[Target] = []
    header: list[str] | None = None
    previous = ""
    for line in markdown.splitlines():
        if not line.lstrip().startswith("|"):
            header, previous = None, ""
            continue
        if re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", line.strip()):
            header = _cells(previous)
            continue
        previous = line
        if header is None:
            continue
        row = _cells(line)
        status_at = next((i for i, c in enumerate(row) if _STATUS.search(c)), None)
        if status_at is None:
            continue
        cell = row[status_at]
        ok = _STATUS.search(cell).group(1) == "PASS"  # type: ignore[union-attr]
        lower = [h.lower() for h in header]
        target = cell[: cell.rfind(":")].strip() if ":" in cell else ""
        if not target and "target" in lower and lower.index("target") < len(row):
            target = row[lower.index("target")]
        measured = ""
        for key in _MEASURED_HEADERS:
            at = next((i for i, h in enumerate(lower) if key in h), None)
            if at is not None and at < len(row) and at != status_at:
                measured = row[at]
                if re.fullmatch(r"[0-9.,]+", measured):
                    measured += f" {header[at]}"  # a bare number says nothing without its unit
                break
        found.append(Target(row[0], measured, target, ok))
    return found


Log = Callable[[str], None]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
