"""CPU, memory and threads from ``/proc``: of one process, of a whole session, and of the box.

Every child the conductor starts leads its own session, and what it spawns stays in it, so a session's figures are
those of the server (with e.g. its analysis worker) or of one client worker. bench/emotion.py reads a single
process's CPU time from here too.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import CpuSet

CLK_TCK = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


def stat_fields(pid: int, tid: int | None = None) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on: the name before it may hold spaces."""
    text = Path(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system time of a process (every thread, live or finished), or of one of its threads."""
    fields = stat_fields(pid, tid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15 of proc(5)


@dataclass(frozen=True)
class Proc:
    pid: int
    sid: int  # session: a child we start leads its own, and what it spawns stays in it
    jiffies: int  # utime + stime + cutime + cstime: its own CPU and its reaped children's


def processes() -> list[Proc]:
    """Every live process on the machine (this is a network namespace only: /proc shows them all)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat_fields(int(entry.name))
                found.append(Proc(int(entry.name), int(fields[3]), sum(int(v) for v in fields[11:15])))
    return found


def session_members(sid: int) -> list[int]:
    return [p.pid for p in processes() if p.sid == sid]


def session_cpu_seconds(sid: int) -> float:
    """CPU time of a whole session: its live processes, plus the children they have already reaped."""
    return sum(p.jiffies for p in processes() if p.sid == sid) / CLK_TCK


def session_status(sid: int, key: str) -> int:
    """A number from /proc/<pid>/status (e.g. VmRSS in kB, Threads), summed over the session's processes."""
    total = 0
    for pid in session_members(sid):
        with contextlib.suppress(OSError, KeyError):
            total += process_status(pid, key)
    return total


def process_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    raise KeyError(key)


def rss_mb(sid: int) -> float:
    return session_status(sid, "VmRSS") / 1024


def box_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def cpu_split(pin: str) -> tuple[CpuSet, CpuSet]:
    """CPU sets for (server, clients)."""
    if pin == "none":
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    return frozenset(allowed[:1]), frozenset(allowed[1:])


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds at one moment: the server's session, the clients' sessions, and everything else."""

    at: float
    server_s: float
    server_loop_s: float
    clients_s: float
    other_s: float
    box_busy: int
    box_total: int

    @classmethod
    def take(cls, server_sid: int, client_sids: Sequence[int]) -> CpuSample:
        busy, total = box_jiffies()
        server = clients = other = 0
        for proc in processes():
            if proc.sid == server_sid:
                server += proc.jiffies
            elif proc.sid in client_sids:
                clients += proc.jiffies
            elif proc.pid != os.getpid():  # the conductor itself is not "other"
                other += proc.jiffies
        loop = cpu_seconds(server_sid, server_sid)
        return cls(time.monotonic(), server / CLK_TCK, loop, clients / CLK_TCK, other / CLK_TCK, busy, total)


@dataclass(frozen=True)
class CpuUse:
    """Shares of one core over an interval (100 = one core busy)."""

    server_pct: float
    server_loop_pct: float
    clients_pct: float
    other_pct: float  # every other process: someone's tests, system daemons, kernel threads
    box_pct: float  # /proc/stat: all cores busy, whoever ran (its ticks need not add up to the above exactly)

    @classmethod
    def between(cls, a: CpuSample, b: CpuSample) -> CpuUse:
        def pct(seconds: float) -> float:
            return 100 * seconds / (b.at - a.at)

        return cls(
            server_pct=pct(b.server_s - a.server_s),
            server_loop_pct=pct(b.server_loop_s - a.server_loop_s),
            clients_pct=pct(b.clients_s - a.clients_s),
            other_pct=max(0.0, pct(b.other_s - a.other_s)),
            box_pct=(b.box_busy - a.box_busy) / max(1, b.box_total - a.box_total) * CPUS * 100,
        )
