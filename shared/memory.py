"""Giving freed heap memory back to the operating system.

A publish at 100x the real data builds and drops files of tens of megabytes and hundreds of
thousands of small objects, in several threads. Python frees them, but glibc keeps the freed
pages in its heaps (one per thread) for later use, so the process's resident memory stays at its
peak: measured, 280 MiB after one text publish where 125 MiB was in use. `malloc_trim(0)` hands
every free page of every heap back, in milliseconds. On a C library without it (musl, macOS),
nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_trim = _malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where the C library cannot."""
    if _trim is None:
        return False
    _trim(0)
    return True
