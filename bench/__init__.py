"""`make bench`: performance checks of the services against their targets.

Each benchmark is a module with ``NAME``, ``TITLE`` and
``run(settings: harness.Settings, workdir: Path) -> harness.Section``; list it
in BENCHMARKS to have ``python -m bench`` run it (in this order).
"""

BENCHMARKS: dict[str, str] = {
    "read-api": "bench.read_api",
    "write-queue": "bench.write_queue",
    "stats": "bench.stats",
    "replica": "bench.replica",
    "growth": "bench.growth",
    "peer": "bench.peer",
    "deployed": "bench.deployed",
    "access-log": "bench.access_log",
}
