"""A media worker gives freed heap back to the system after a call (bench/soak.py found its RSS creeping)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from server.media.worker import release_free_heap


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_freed_memory_below_memory_still_in_use_goes_back_to_the_system() -> None:
    try:
        ctypes.CDLL(None).malloc_trim  # noqa: B018
    except AttributeError:
        pytest.skip("not glibc: release_free_heap does nothing here")
    # 4 kB blocks come from malloc's heap (not mmap); keeping every 16th pins the heap's top, as a live call's
    # buffers do, so free() alone cannot shrink it.
    blocks = [bytearray(4096) for _ in range(16_384)]  # 64 MB, touched
    kept = blocks[::16]
    del blocks
    before = rss_kb()
    release_free_heap()
    after = rss_kb()
    assert before - after > 30_000, f"RSS {before} kB -> {after} kB: the free pages stayed resident"
    assert len(kept) == 1024
