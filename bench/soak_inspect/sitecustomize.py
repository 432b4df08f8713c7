"""Loaded into every server process by ``bench/soak.py --inspect DIR`` (this folder goes first on PYTHONPATH).

On SIGUSR1 a process writes ``DIR/<pid>-<n>.txt``: its live asyncio tasks grouped by coroutine, its threads, its
open fds, the objects gc tracks by type, and, when tracemalloc runs (``PYTHONTRACEMALLOC``, which the soak sets
with ``--inspect``), the allocations that grew since its previous dump. Diffing two dumps finds what a call left.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import os
import signal
import sys
import threading
import tracemalloc
from pathlib import Path
from types import FrameType

_DIR = os.environ.get("SOAK_INSPECT_DIR")
_state: dict[str, object] = {"n": 0, "snapshot": None}


def _coro_name(task: object) -> str:
    coro = getattr(task, "get_coro", lambda: None)()
    name = getattr(coro, "__qualname__", None) or type(coro).__name__
    frame = getattr(coro, "cr_frame", None)
    where = f" at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}" if frame is not None else ""
    return f"{name}{where}"


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _mallinfo() -> str:
    """glibc's heap: in use (uordblks + hblkhd) against free but kept (fordblks): a leak or fragmentation."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return "unavailable"
    mb = 1024 * 1024
    return (
        f"heap {info.arena / mb:.1f} MB (in use {info.uordblks / mb:.1f}, free {info.fordblks / mb:.1f}), "
        f"mmapped {info.hblkhd / mb:.1f} MB in {info.hblks} blocks"
    )


def _dump(_signum: int, _frame: FrameType | None) -> None:
    import asyncio

    assert _DIR is not None
    _state["n"] = int(str(_state["n"])) + 1
    lines: list[str] = [f"pid {os.getpid()} argv {sys.argv}"]
    tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]
    lines.append(f"\n## {len(tasks)} asyncio tasks")
    for name, count in collections.Counter(_coro_name(t) for t in tasks).most_common():
        lines.append(f"{count:5d} {name}")
    lines.append(f"\n## malloc: {_mallinfo()}")
    if tracemalloc.is_tracing():
        lines.append(f"## tracemalloc: {tracemalloc.get_traced_memory()[0] / 1024:.0f} kB traced")
    lines.append(f"## gc: {len(gc.get_objects())} objects")
    lines.append(f"\n## {threading.active_count()} threads")
    lines += sorted(t.name for t in threading.enumerate())
    lines.append("\n## fds")
    for entry in sorted(os.scandir("/proc/self/fd"), key=lambda e: int(e.name)):
        try:
            lines.append(f"{entry.name:>5} {os.readlink(entry.path)}")
        except OSError:
            pass
    lines.append("\n## gc objects by type (top 60)")
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    lines += [f"{c:8d} {name}" for name, c in counts.most_common(60)]
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap*"),
            ]
        )
        previous = _state["snapshot"]
        if isinstance(previous, tracemalloc.Snapshot):
            lines.append("\n## tracemalloc: growth since the previous dump (top 40, by traceback)")
            for stat in snapshot.compare_to(previous, "traceback")[:40]:
                lines.append(f"{stat.size_diff / 1024:+10.1f} kB {stat.count_diff:+7d} blocks")
                lines += [f"      {line}" for line in stat.traceback.format(limit=8)]
        _state["snapshot"] = snapshot
    Path(_DIR, f"{os.getpid()}-{_state['n']}.txt").write_text("\n".join(lines) + "\n")


if _DIR:
    signal.signal(signal.SIGUSR1, _dump)
