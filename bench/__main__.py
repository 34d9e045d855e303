"""Run the registered benchmarks; print and save a markdown report.

    python -m bench [NAME ...] [--duration S] [--repeats N] [--connections C]

The report goes to stdout and bench/results/latest.md.  Exit status: 0 when
every benchmark ran (missed targets are reported, not fatal unless --strict),
1 when a benchmark could not run, 2 with --strict and a missed target.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    OtherCpu,
    Section,
    Settings,
    Target,
    cpu_busy,
    log,
    machine_description,
    markdown_table,
    scrape_targets,
    status,
)

#: every target of the issues, by the benchmark that measures it; the summary lists each one,
#: measured or not (a benchmark skipped, broken or not registered shows as "not measured")
EXPECTED_TARGETS: dict[str, list[str]] = {
    "read-api": [
        "read-api category reads ≥ 30% of nginx static (same bytes)",
        "read-api RSS ≤ 80 MB with the real dataset",
        "read-api start → first answer ≤ 0.5 s",
    ],
    "write-queue": ["apply → visible on the reads ≤ 1 s"],
    "replica": ["worker library warm refresh receives 0 body bytes"],
    "deployed": ["deployed topology: category reads ≥ 95% of nginx static"],
}


NOISY_CORES = 0.25  # other processes' CPU above which a benchmark's figures are called noisy


def summary(
    names: list[str],
    sections: list[Section],
    broken: dict[str, str],
    elapsed: dict[str, float],
    other: dict[str, float],
) -> str:
    """The final table: every target of the issues with its measured value and status."""
    by_name = {s.name: s for s in sections}
    rows = []
    order = list(dict.fromkeys([*BENCHMARKS, *EXPECTED_TARGETS]))
    for name in order:
        section = by_name.get(name)
        targets = (section.targets or scrape_targets(section.markdown)) if section else []
        if not targets and name in EXPECTED_TARGETS:
            if section is not None:
                why = "ran, but reported no target row"
            elif name in broken:
                why = f"did not run: {broken[name].splitlines()[0]}"
            elif name not in BENCHMARKS:
                why = f"not measured: bench/{name.replace('-', '_')}.py is not registered"
            elif name not in names:
                why = "not measured: not selected on the command line"
            else:
                why = "not measured"
            targets = [Target(t, why, "", None) for t in EXPECTED_TARGETS[name]]
        for t in targets:
            rows.append((name, t.figure, t.measured, t.target or "—", status(t.ok)))
    if not rows:
        return ""
    failed = sum(1 for r in rows if r[-1] == "FAIL")
    passed = sum(1 for r in rows if r[-1] == "PASS")
    unmeasured = len(rows) - failed - passed
    runs = markdown_table(
        ("benchmark", "time", "other processes' CPU (cores, average)"),
        [
            (
                n,
                f"{elapsed[n]:.0f} s",
                f"{other.get(n, 0.0):.2f}"
                + (" — noisy" if other.get(n, 0.0) >= NOISY_CORES else ""),
            )
            for n in names
            if n in elapsed
        ],
    )
    return (
        "## Summary: targets\n\n"
        + markdown_table(("benchmark", "figure", "measured", "target", "status"), rows)
        + f"\n\n{passed} passed, {failed} failed, {unmeasured} not measured.\n\n"
        + runs
        + "\n\nOther processes' CPU: processes outside the bench's own process tree "
        "(sampled every 0.5 s), e.g. tests or a second bench running at the same time; above "
        f"{NOISY_CORES:.2f} cores a benchmark is marked noisy."
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
    broken: dict[str, str] = {}
    elapsed: dict[str, float] = {}
    other: dict[str, float] = {}  # cores kept busy by processes not the bench's own
    began = time.monotonic()
    try:
        for name in names:
            module = importlib.import_module(BENCHMARKS[name])
            workdir = tmp / name
            workdir.mkdir()
            log(f"== {name}: {module.TITLE}")
            other_cpu = OtherCpu(str(tmp))
            t0 = time.monotonic()
            try:
                with other_cpu:
                    sections.append(module.run(settings, workdir))
            except BenchError as e:
                log(f"{name} could not run: {e}")
                broken[name] = str(e) or "error"
            except Exception:  # noqa: BLE001 -- one broken benchmark must not stop the others
                log(f"{name} crashed:\n{traceback.format_exc()}")
                broken[name] = "crashed, see the traceback in the bench's output"
            elapsed[name] = time.monotonic() - t0
            other[name] = other_cpu.cores
            log(
                f"== {name} took {elapsed[name]:.0f} s"
                + (f"; other processes kept {other[name]:.2f} cores busy" if other[name] else "")
            )
    finally:
        if settings.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    parts = [
        "# Benchmarks",
        machine_description(busy_at_start),
        f"Benchmarks: {', '.join(names)}. Defaults for every wrk figure: {settings.duration_s} s "
        f"per run, median of {settings.repeats} runs after {settings.warmup_s} s warm-up, "
        f"{settings.connections} connections (`python -m bench --help` to raise them). Every "
        "ratio compares with a reference measured in the same run, on this machine.",
    ]
    if busy_at_start is not None and busy_at_start >= 0.2:
        parts.append(
            f"**Note:** the machine was not idle when the bench started ({busy_at_start:.0%}"
            " CPU busy); absolute figures and ratios are noisier than usual."
        )
    for s in sections:
        parts.append(f"## {s.title}\n\n{s.markdown}")
        if other.get(s.name, 0.0) >= NOISY_CORES:
            parts.append(
                f"**Noisy:** other processes (not the bench's own) kept {other[s.name]:.2f} cores "
                f"busy on average while this benchmark ran, on a {os.cpu_count()}-core machine; "
                "its absolute figures and ratios are not reliable."
            )
        if s.failures:
            parts.append("**Targets missed:**\n\n" + "\n".join(f"- {f}" for f in s.failures))
    if broken:
        parts.append("## Did not run\n\n" + "\n".join(f"- {n}: {b}" for n, b in broken.items()))
    table = summary(names, sections, broken, elapsed, other)
    if table:
        parts.append(table)
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
