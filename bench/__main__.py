"""Run the registered benchmarks; print and save a markdown report.

    python -m bench [NAME ...] [--duration S] [--repeats N] [--connections C]

The report goes to stdout and bench/results/latest.md.  Exit status: 0 when
every benchmark ran (missed targets are reported, not fatal unless --strict),
1 when a benchmark could not run, 2 with --strict and a missed target.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

from bench import BENCHMARKS
from bench.harness import (
    RESULTS_DIR,
    BenchError,
    Section,
    Settings,
    cpu_busy,
    log,
    machine_description,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = Settings()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default all: {', '.join(BENCHMARKS)})",
    )
    p.add_argument("--duration", type=int, default=defaults.duration_s, help="seconds per wrk run")
    p.add_argument(
        "--warmup", type=int, default=defaults.warmup_s, help="seconds of warm-up per endpoint"
    )
    p.add_argument(
        "--repeats", type=int, default=defaults.repeats, help="wrk runs per figure (median)"
    )
    p.add_argument("--connections", type=int, default=defaults.connections)
    p.add_argument(
        "--starts", type=int, default=defaults.ready_starts, help="starts for time-to-ready"
    )
    p.add_argument("--seed-dir", type=Path, default=defaults.seed_dir)
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.md")
    p.add_argument(
        "--keep-tmp", action="store_true", help="keep the temporary directory (logs, data)"
    )
    p.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if min(args.repeats, args.starts, args.duration, args.warmup) < 1:
        p.error("--repeats, --starts, --duration and --warmup must be ≥ 1")
    return args


def _terminate(signum: int, frame: object) -> None:
    # Turn SIGTERM (make killed, CI timeout) into an exception so that every
    # finally block runs and the processes the benchmarks started are stopped.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    settings = replace(
        Settings(),
        duration_s=args.duration,
        warmup_s=args.warmup,
        repeats=args.repeats,
        connections=args.connections,
        ready_starts=args.starts,
        seed_dir=args.seed_dir.resolve(),
        keep_tmp=args.keep_tmp,
    )
    names = args.names or list(BENCHMARKS)
    busy_at_start = cpu_busy(1.0)
    if busy_at_start is not None and busy_at_start >= 0.2:
        log(f"warning: {busy_at_start:.0%} CPU busy before starting; figures will be noisy")
    tmp = Path(tempfile.mkdtemp(prefix="hmr-bench-"))
    sections: list[Section] = []
    broken: list[str] = []
    began = time.monotonic()
    try:
        for name in names:
            module = importlib.import_module(BENCHMARKS[name])
            workdir = tmp / name
            workdir.mkdir()
            log(f"== {name}: {module.TITLE}")
            t0 = time.monotonic()
            try:
                sections.append(module.run(settings, workdir))
            except BenchError as e:
                log(f"{name} could not run: {e}")
                broken.append(f"{name}: {e}")
            except Exception:  # noqa: BLE001 -- one broken benchmark must not stop the others
                log(f"{name} crashed:\n{traceback.format_exc()}")
                broken.append(f"{name}: crashed, see the traceback above")
            log(f"== {name} took {time.monotonic() - t0:.0f} s")
    finally:
        if settings.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    parts = ["# Benchmarks", machine_description(busy_at_start)]
    if busy_at_start is not None and busy_at_start >= 0.2:
        parts.append(
            f"**Note:** the machine was not idle when the bench started ({busy_at_start:.0%}"
            " CPU busy); absolute figures and ratios are noisier than usual."
        )
    for s in sections:
        parts.append(f"## {s.title}\n\n{s.markdown}")
        if s.failures:
            parts.append("**Targets missed:**\n\n" + "\n".join(f"- {f}" for f in s.failures))
    if broken:
        parts.append("## Did not run\n\n" + "\n".join(f"- {b}" for b in broken))
    parts.append(f"_Total bench time: {time.monotonic() - began:.0f} s._")
    report = "\n\n".join(parts) + "\n"
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    log(f"written to {args.output}")

    if broken:
        return 1
    if args.strict and any(s.failures for s in sections):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
