"""Keeping the C heap small: few heaps, and freed memory given back to the system.

A publish at 100x the real data builds and drops files of tens of megabytes and hundreds of
thousands of small objects, in several threads. Python frees them, but glibc keeps the freed
pages in its heaps (one per thread) for later use, so the process's resident memory stays at its
peak: measured, 280 MiB after one text publish where 125 MiB was in use. `malloc_trim(0)` hands
every free page of every heap back, in milliseconds. On a C library without it (musl, macOS),
nothing is done.

glibc also gives every thread that allocates its own heap, up to eight per core. Each keeps
the pages it freed, and what stays alive in one pins its pages, so a process whose threads
take turns building large things (the writer's load, a publish's gzip threads, the reads'
snapshot loads) ends far above what it uses: measured at 100x the real data, `hmr all` after
three applies held 242-265 MiB with the default heaps and 216-227 MiB with two, its start and
apply times within their run-to-run noise (the threads here mostly run zlib, hashing and I/O).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Mapping

_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(_LIBC), name)
    except (OSError, AttributeError):
        return None
    return function


_LIBC = ctypes.util.find_library("c") or "libc.so.6"
_trim = _libc_function("malloc_trim")
_mallopt = _libc_function("mallopt")


def limit_heaps(environ: Mapping[str, str], heaps: int = 2) -> bool:
    """Let the C library use at most `heaps` heaps, unless `MALLOC_ARENA_MAX` (glibc's own
    setting, which it has read already) says otherwise. Call it before threads start; False
    where the C library has no such setting."""
    if _mallopt is None or "MALLOC_ARENA_MAX" in environ:
        return False
    return bool(_mallopt(_M_ARENA_MAX, heaps))


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where the C library cannot."""
    if _trim is None:
        return False
    _trim(0)
    return True
