"""Freed heap memory goes back to the system after a publish or a snapshot switch."""

from __future__ import annotations

import platform

import pytest

from shared.memory import limit_heaps, release_free_memory


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_small_blocks_are_returned_to_the_system() -> None:
    """Many mid-sized blocks (below glibc's mmap threshold, like a publish's entries) freed
    leave the process at its peak until the heap is trimmed; then most of them are returned."""
    assert release_free_memory()
    blocks = [bytes(64 * 1024) for _ in range(2000)]  # 125 MiB, from the heap
    last = blocks[-1]  # alive, on top of the freed ones: the heap cannot simply shrink
    del blocks
    before = _rss_kib()
    assert release_free_memory()
    assert before - _rss_kib() > 64 * 1024  # more than half of it is back
    assert len(last) == 64 * 1024


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="M_ARENA_MAX is glibc's")
def test_the_heap_limit_yields_to_an_explicit_malloc_arena_max() -> None:
    """`hmr` sets two heaps unless the operator set glibc's own MALLOC_ARENA_MAX, which glibc
    has already applied and which must not be overridden."""
    assert limit_heaps({"MALLOC_ARENA_MAX": "4"}) is False
    assert limit_heaps({}) is True
