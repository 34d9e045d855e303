"""Freed heap memory goes back to the system after a publish or a snapshot switch."""

from __future__ import annotations

import platform

import pytest

from shared.memory import release_free_memory


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
