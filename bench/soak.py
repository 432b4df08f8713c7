"""Soak: a thousand short calls through one ``rapport serve``, and whether anything the server holds grows.

The server runs as a user runs it (``python -m server.cli serve``, SQLite in a temporary data folder, media workers
as configured by default: one per core). Calls run a few at a time, each one whole: a rep (logged in once per slot,
a new signalling socket per call) goes available; a customer ``POST /api/v1/calls`` from its own loopback address
and says hello on its socket; the rep accepts; both sides negotiate real aiortc peers (tests/support/clients.py:
a solid colour and a tone each); the rep must see the customer's colour and keep receiving frames for
``--media-seconds``; a chat line goes each way; the rep ends the call and saves the wrap-up; everything closes.

Every ``--sample-every`` calls, and quietly (no call in flight, after a short settle) every ``--table-every`` calls,
each server process (the front door, its media workers, any helper in its session) is sampled from ``/proc``:
RSS, open fds, threads, UDP sockets (fds whose inode is in ``/proc/<pid>/net/udp``), and asyncio tasks (the
``rapport_asyncio_tasks`` gauge of ``/metrics``, which the workers feed from their stats reports).

It fails (exit 1) when, after the last call and a settle: the RSS of the front door, of a media worker or of all
the server's processes together is more than ``--rss-tolerance`` above its value after the warm-up (the first
``--warmup`` calls), or the linear trend over the quiet samples after the warm-up projects more than that over the
run; or fds, threads (both net of the database pool's), asyncio tasks or UDP sockets of any process are above
their post-warm-up values (UDP sockets and tasks: above their idle values before the first call); or more than
``--max-failed`` calls failed. Runs only in a private network namespace (like bench/calls)::

    unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"' \\
        .venv/bin/python bench/soak.py --calls 1000 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: bench/ and tests/ import from the project root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.calls.client import customer_address
from bench.calls.procstat import process_status, session_members, stat_fields
from bench.common import (
    NETNS_COMMAND,
    ServerPath,
    ServerProcess,
    create_reps,
    in_private_netns,
    machine,
    progress,
    rep_name,
    source_revision,
    tail,
)
from tests.support.clients import (
    CUSTOMER,
    REP,
    Identity,
    MediaClient,
    PatternVideoTrack,
    SignalingClient,
    ToneAudioTrack,
    login,
    solid_frame,
    start_call,
    wrap_up,
)

METRICS = ("rss_kb", "fds", "threads", "tasks", "udp")
# Must come back to their baseline: fds and threads net of the database pool's (see ``ProcSample``).
COUNTS = ("other_fds", "other_threads", "tasks", "udp")
WORDS = {"other_fds": "fds (not the database's)", "other_threads": "threads (not the database's)", "tasks": "tasks"}
WORDS["udp"] = "UDP sockets"
DATABASE_FILES = re.compile(r"\.sqlite3(-wal|-shm|-journal)?$")
STEP_TIMEOUT_S = 30.0
VIDEO_SIZE = (320, 240)  # small: the clients share the box with the server
MIN_FRAMES_PER_S = 5.0  # the rep must keep receiving at least this many frames a second during the media window
INSPECT_HOOK = Path(__file__).resolve().parent / "soak_inspect"
DEFAULT_PATH = ServerPath("default", "rapport serve as configured by default (media workers, forwarding)")


# --- Sampling the server's processes ---------------------------------------------------------------------------------


@dataclass
class ProcSample:
    pid: int
    rss_kb: int
    fds: int
    threads: int
    udp: int
    # SQLAlchemy's pool (5 kept, 10 overflow) fills as load needs: each SQLite connection is an aiosqlite thread
    # and its fds on the database and its -wal and -shm files. Counted apart, so the pool filling is not a leak.
    tasks: int | None  # None: not an asyncio process the server reports on (e.g. the emotion worker)
    db_fds: int = 0
    db_conns: int = 0  # fds on the database file itself: about one a connection

    @property
    def other_fds(self) -> int:
        return self.fds - self.db_fds

    @property
    def other_threads(self) -> int:
        return self.threads - self.db_conns


@dataclass
class Sample:
    calls: int  # calls finished when it was taken
    t: float  # seconds since the first call began
    quiet: bool  # no call in flight
    procs: dict[str, ProcSample]

    def value(self, name: str, metric: str) -> float | None:
        proc = self.procs.get(name)
        value = None if proc is None else getattr(proc, metric)
        return None if value is None else float(value)

    def total(self, metric: str) -> float:
        return sum(float(getattr(p, metric) or 0) for p in self.procs.values())


def udp_inodes() -> set[str]:
    """Inodes of every UDP socket in this network namespace."""
    inodes: set[str] = set()
    for table in ("udp", "udp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9:
                    inodes.add(fields[9])
    return inodes


def fd_targets(pid: int) -> list[str]:
    targets = []
    for entry in os.scandir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            targets.append(os.readlink(entry.path))
    return targets


_SOCKET = re.compile(r"socket:\[(\d+)\]")


def process_names(server_pid: int) -> dict[int, str]:
    """The server's processes by a stable name: front, worker 0, worker 1, ... (by start time), emotion, ..."""
    names: dict[int, str] = {}
    workers = []
    for pid in session_members(server_pid):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if pid == server_pid:
                names[pid] = "front"
            elif b"server.media.worker" in cmdline:
                workers.append((int(stat_fields(pid)[19]), pid))  # field 22 of proc(5): start time
            elif b"emotion.worker" in cmdline:
                names[pid] = "emotion"
            else:
                names[pid] = f"{Path(cmdline[0].decode(errors='replace')).name} {pid}"
    for index, (_started, pid) in enumerate(sorted(workers)):
        names[pid] = f"worker {index}"
    return names


_TASKS = re.compile(r'^rapport_asyncio_tasks\{process="([^"]+)"\} ([0-9.e+]+)$', re.MULTILINE)


async def task_counts(http: aiohttp.ClientSession, url: str) -> dict[str, int]:
    """Asyncio tasks per server process, from /metrics (loopback needs no token): front, worker 0, ..."""
    async with http.get(f"{url}/metrics") as reply:
        text = await reply.text()
    return {name: int(float(value)) for name, value in _TASKS.findall(text)}


async def take_sample(
    http: aiohttp.ClientSession, server: ServerProcess, calls: int, began: float, quiet: bool
) -> Sample:
    tasks = await task_counts(http, server.url)
    udp = udp_inodes()
    procs: dict[str, ProcSample] = {}
    for pid, name in process_names(server.pid).items():
        with contextlib.suppress(OSError, KeyError):
            targets = fd_targets(pid)
            sockets = [m.group(1) for t in targets if (m := _SOCKET.fullmatch(t))]
            procs[name] = ProcSample(
                pid=pid,
                rss_kb=process_status(pid, "VmRSS"),
                fds=len(targets),
                threads=process_status(pid, "Threads"),
                udp=sum(1 for inode in sockets if inode in udp),
                db_fds=sum(1 for t in targets if DATABASE_FILES.search(t)),
                db_conns=sum(1 for t in targets if t.endswith(".sqlite3")),
                tasks=tasks.get(name),
            )
    return Sample(calls, round(time.monotonic() - began, 1), quiet, procs)


# --- One call --------------------------------------------------------------------------------------------------------


def media_for(identity: Identity) -> MediaClient:
    width, height = VIDEO_SIZE
    video = PatternVideoTrack(width, height, frames=[solid_frame(identity.bgr, width, height)])
    return MediaClient(video=video, audio=ToneAudioTrack(identity.tone_hz), identity=identity)


def chat_line(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: message.get("type") == "chat.message" and message.get("text") == text


async def _quietly(awaitable: Any, timeout: float = 5.0) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, timeout)


@dataclass
class Slot:
    """One rep account and its logged-in HTTP session; takes one call at a time."""

    index: int
    url: str
    password: str
    http: aiohttp.ClientSession | None = None

    async def rep_http(self) -> aiohttp.ClientSession:
        if self.http is None:
            self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            await login(self.http, self.url, rep_name(self.index), self.password)
        return self.http

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None


@dataclass
class CallResult:
    number: int
    ok: bool
    seconds: float
    rep_fps: float = 0.0
    error: str = ""


async def one_call(slot: Slot, number: int, media_seconds: float) -> CallResult:
    """One whole call (see the module's docstring); what went wrong, if anything, in ``error``."""
    began = time.monotonic()
    rep_http = await slot.rep_http()
    customer_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(customer_address(number), 0)))
    rep, customer = SignalingClient(rep_http, slot.url), SignalingClient(customer_http, slot.url)
    media: dict[str, MediaClient] = {}
    session_id: str | None = None
    step = "rep ready"
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            await rep.connect()
            await rep.send({"type": "hello"})
            await rep.wait_for("welcome")
            await rep.request({"type": "rep.status", "status": "available"})
            step = "customer joins"
            call = await start_call(customer_http, slot.url, reason="other", name=f"Soak customer {number + 1}")
            session_id = str(call["session_id"])
            await customer.connect()
            await customer.send({"type": "hello", "token": call["token"]})
            await customer.wait_for("welcome")
            step = "accept"
            await rep.request({"type": "call.accept", "session_id": session_id})
            await customer.wait_for("call.accepted")
            step = "negotiate"
            media = {"customer": media_for(CUSTOMER), "rep": media_for(REP)}
            await asyncio.gather(media["customer"].negotiate(customer), media["rep"].negotiate(rep))
            step = "first frames"
            await media["rep"].wait_to_see(CUSTOMER, timeout=STEP_TIMEOUT_S)
            await media["customer"].wait_frames("video", 1, STEP_TIMEOUT_S)
        step = "media"
        before = media["rep"].frames("video")
        await asyncio.sleep(media_seconds)
        rep_fps = (media["rep"].frames("video") - before) / media_seconds
        if rep_fps < MIN_FRAMES_PER_S:
            raise RuntimeError(f"the rep received {rep_fps:.1f} frames/s during the call")
        async with asyncio.timeout(STEP_TIMEOUT_S):
            step = "chat"
            for sender, receiver, text in ((customer, rep, f"hello from {number}"), (rep, customer, f"hi {number}")):
                after = len(receiver.inbox)
                await sender.request({"type": "chat.send", "text": text})
                await receiver.wait_for(chat_line(text), after=after)
            step = "end"
            await rep.send({"type": "call.end", "reason": "resolved"})
            await customer.wait_for("call.ended")
            step = "wrap-up"
            await wrap_up(rep_http, slot.url, session_id)
            session_id = None
        return CallResult(number, True, round(time.monotonic() - began, 2), round(rep_fps, 1))
    except Exception as exc:
        return CallResult(
            number, False, round(time.monotonic() - began, 2), error=f"{step}: {type(exc).__name__}: {exc}"
        )
    finally:
        if session_id is not None:  # a failed call: end it and save its wrap-up, or the rep cannot take the next
            if rep.ws is not None and not rep.ws.closed:
                await _quietly(rep.send({"type": "call.end", "reason": "resolved"}))
            await _quietly(asyncio.sleep(0.5))
            await _quietly(wrap_up(rep_http, slot.url, session_id))
        for client in media.values():
            await _quietly(client.close())
        for socket in (rep, customer):
            await _quietly(socket.close())
        await customer_http.close()


# --- The run ---------------------------------------------------------------------------------------------------------


@dataclass
class Options:
    calls: int = 1000
    concurrency: int = 4
    media_seconds: float = 3.0
    sample_every: int = 10
    table_every: int = 100
    warmup: int = 100
    settle_s: float = 30.0
    rss_tolerance: float = 0.05
    max_failed: float = 0.01
    settings: list[tuple[str, str]] = field(default_factory=list)
    logs: Path | None = None
    inspect: Path | None = None
    tracemalloc: int = 0
    json: bool = False


@dataclass
class Run:
    opts: Options
    server: ServerProcess
    http: aiohttp.ClientSession
    began: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    results: list[CallResult] = field(default_factory=list)
    idle: Sample | None = None

    def inspect(self) -> None:
        """``--inspect``: every server process dumps its tasks, threads, fds, objects (and allocations) to a file."""
        if self.opts.inspect is not None:
            for pid in session_members(self.server.pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGUSR1)

    async def sample(self, *, quiet: bool) -> Sample:
        taken = await take_sample(self.http, self.server, len(self.results), self.began, quiet)
        self.samples.append(taken)
        return taken


async def run_batch(run: Run, slots: list[Slot], first: int, last: int) -> None:
    """Calls ``first`` .. ``last - 1``, ``len(slots)`` at a time; a busy sample every ``sample_every`` calls."""
    numbers = iter(range(first, last))

    async def worker(slot: Slot) -> None:
        for number in numbers:
            result = await one_call(slot, number, run.opts.media_seconds)
            run.results.append(result)
            if not result.ok:
                progress(f"  call {number + 1} failed: {result.error}")
            if len(run.results) % run.opts.sample_every == 0 and len(run.results) % run.opts.table_every:
                await run.sample(quiet=False)

    await asyncio.gather(*(worker(slot) for slot in slots))


async def settle(run: Run, baseline: Sample, limit_s: float) -> Sample:
    """Quiet samples once a second until the counts are back to ``baseline`` (or ``limit_s`` passed); its RSS is
    the median of that one and two more."""
    deadline = time.monotonic() + limit_s
    while True:
        await asyncio.sleep(1.0)
        sample = await take_sample(run.http, run.server, len(run.results), run.began, True)
        if not over_baseline(sample, baseline) or time.monotonic() > deadline:
            break
    # RSS: the median of three samples a second apart (a helper's transient buffers must not decide a verdict).
    more = [sample]
    for _ in range(2):
        await asyncio.sleep(1.0)
        more.append(await take_sample(run.http, run.server, len(run.results), run.began, True))
    for name, proc in sample.procs.items():
        rss = sorted(m.procs[name].rss_kb for m in more if name in m.procs)
        proc.rss_kb = rss[len(rss) // 2]
    run.samples.append(sample)
    return sample


def over_baseline(sample: Sample, baseline: Sample) -> list[str]:
    """Which counts of which process are above ``baseline``'s, e.g. ``worker 0 udp 4 > 0``."""
    over = []
    for name, proc in sample.procs.items():
        for metric in COUNTS:
            now, then = getattr(proc, metric), baseline.value(name, metric)
            if now is not None and then is not None and now > then:
                over.append(f"{name} {WORDS[metric]} {now} > {then:g}")
    return over


async def idle_sample(run: Run, limit_s: float = 60.0) -> Sample:
    """The first sample, once every media worker has reported its task count (they start after the front door)."""
    deadline = time.monotonic() + limit_s
    while True:
        await asyncio.sleep(1.0)
        sample = await take_sample(run.http, run.server, 0, run.began, True)
        workers = [p for name, p in sample.procs.items() if name.startswith("worker")]
        if (workers and all(p.tasks is not None for p in workers)) or time.monotonic() > deadline:
            run.samples.append(sample)
            return sample


async def soak(opts: Options, server: ServerProcess, password: str) -> Run:
    async with aiohttp.ClientSession() as http:
        run = Run(opts, server, http)
        run.idle = await idle_sample(run)
        run.inspect()
        print_header(run.idle)
        slots = [Slot(i, server.url, password) for i in range(opts.concurrency)]
        try:
            done = 0
            while done < opts.calls:
                upto = min(opts.calls, done + opts.table_every)
                await run_batch(run, slots, done, upto)
                done = upto
                for slot in slots:  # the reps log out (their keep-alive connections go), to log in again
                    await slot.aclose()
                # Quiet: every call of the batch has ended; let the server finish closing them.
                last = await settle(run, run.idle, 3.0 if done < opts.calls else opts.settle_s)
                run.inspect()
                print_row(last, run)
        finally:
            for slot in slots:
                await slot.aclose()
        return run


# --- Verdict and report ----------------------------------------------------------------------------------------------


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def quiet_checkpoints(run: Run) -> list[Sample]:
    """The last quiet sample at each number of calls done (each batch's, and the final settled one)."""
    by_calls: dict[int, Sample] = {}
    for sample in run.samples:
        if sample.quiet:
            by_calls[sample.calls] = sample
    return [by_calls[c] for c in sorted(by_calls)]


def verdict(run: Run) -> tuple[list[str], dict[str, Any]]:
    """What failed (empty: passed), and the figures behind it."""
    opts = run.opts
    checkpoints = quiet_checkpoints(run)
    assert run.idle is not None and checkpoints
    final = checkpoints[-1]
    warm = next((s for s in checkpoints if s.calls >= opts.warmup), checkpoints[0])
    after = [s for s in checkpoints if s.calls >= warm.calls]
    failures = []
    figures: dict[str, Any] = {"warmup_calls": warm.calls, "final_calls": final.calls, "processes": {}}
    if set(final.procs) != set(run.idle.procs) or any(
        final.procs[n].pid != run.idle.procs[n].pid for n in final.procs if n in run.idle.procs
    ):
        failures.append(f"the server's processes changed: {sorted(run.idle.procs)} -> {sorted(final.procs)}")
    # RSS per process that carries calls (the front door, each media worker), and of all the server's processes
    # together: a helper that carries none here (the emotion worker: no customer consents) swings by a few MB
    # with no work at all, counted in the total.
    units = [n for n in final.procs if n == "front" or n.startswith("worker ")] + ["all"]

    def rss(sample: Sample, unit: str) -> float | None:
        return sample.total("rss_kb") if unit == "all" else sample.value(unit, "rss_kb")

    for name in units:
        rss_warm, rss_final = rss(warm, name), rss(final, name)
        if not rss_warm or rss_final is None:
            continue
        trend = slope([(s.calls, v) for s in after if (v := rss(s, name)) is not None])
        projected = trend * (final.calls - warm.calls)
        growth = (rss_final - rss_warm) / rss_warm
        figures["processes"][name] = {
            "rss_kb_warm": rss_warm,
            "rss_kb_final": rss_final,
            "rss_growth": round(growth, 4),
            "rss_trend_kb_per_100_calls": round(trend * 100, 1),
            "rss_trend_projected": round(projected / rss_warm, 4),
        }
        if growth > opts.rss_tolerance:
            failures.append(
                f"{name}: RSS {rss_final / 1024:.1f} MB after {final.calls} calls, {growth:+.1%} on "
                f"{rss_warm / 1024:.1f} MB after {warm.calls} (limit {opts.rss_tolerance:+.0%})"
            )
        if projected / rss_warm > opts.rss_tolerance:
            failures.append(
                f"{name}: RSS trend {trend * 100:+.0f} kB per 100 calls after the warm-up, "
                f"{projected / rss_warm:+.1%} over the run (limit {opts.rss_tolerance:+.0%})"
            )
    failures += [f"after the last call: {o} (after the warm-up)" for o in over_baseline(final, warm)]
    for name, proc in final.procs.items():
        for metric in ("udp", "tasks"):
            now, idle = getattr(proc, metric), run.idle.value(name, metric)
            if now is not None and idle is not None and now > idle:
                failures.append(f"after the last call: {name} {metric} {now} > {idle:g} (idle, before any call)")
    failed = [r for r in run.results if not r.ok]
    figures["calls"] = len(run.results)
    figures["failed"] = len(failed)
    if len(failed) > opts.max_failed * max(1, len(run.results)):
        failures.append(f"{len(failed)} of {len(run.results)} calls failed (limit {opts.max_failed:.1%})")
    seconds = [r.seconds for r in run.results if r.ok]
    figures["call_seconds_median"] = sorted(seconds)[len(seconds) // 2] if seconds else None
    fps = [r.rep_fps for r in run.results if r.ok]
    figures["rep_fps_median"] = sorted(fps)[len(fps) // 2] if fps else None
    return failures, figures


def _cell(proc: ProcSample | None) -> str:
    if proc is None:
        return "-"
    tasks = "-" if proc.tasks is None else str(proc.tasks)
    return f"{proc.rss_kb / 1024:6.1f} {proc.fds:4d} {proc.db_fds:3d} {proc.threads:3d} {tasks:>4} {proc.udp:3d}"


_NAMES: list[str] = []


def print_header(idle: Sample) -> None:
    _NAMES[:] = sorted(idle.procs, key=lambda n: (n != "front", n))
    progress("per process: RSS MB, fds (of which on the database), threads, asyncio tasks, UDP sockets")
    progress(f"{'calls':>6} {'min':>5}  " + "  ".join(f"{n:<30}" for n in _NAMES))
    progress(f"{'idle':>6} {0:5.1f}  " + "  ".join(f"{_cell(idle.procs.get(n)):<30}" for n in _NAMES))


def print_row(sample: Sample, run: Run) -> None:
    failed = sum(1 for r in run.results if not r.ok)
    cells = "  ".join(f"{_cell(sample.procs.get(n)):<30}" for n in _NAMES)
    progress(f"{sample.calls:>6} {sample.t / 60:5.1f}  {cells}" + (f"  ({failed} failed)" if failed else ""))


def report_text(run: Run, failures: list[str], figures: dict[str, Any]) -> str:
    lines = [
        f"soak: {figures['calls']} calls ({figures['failed']} failed), {run.opts.concurrency} at a time, "
        f"{run.opts.media_seconds:g} s of media each; median call {figures['call_seconds_median']} s, "
        f"the rep received a median {figures['rep_fps_median']} frames/s",
        f"RSS after {figures['warmup_calls']} calls (warm-up) -> after {figures['final_calls']}, and the linear trend "
        "after the warm-up:",
    ]
    for name, f in figures["processes"].items():
        lines.append(
            f"  {name:<10} {f['rss_kb_warm'] / 1024:7.1f} MB -> {f['rss_kb_final'] / 1024:7.1f} MB "
            f"({f['rss_growth']:+.1%}); trend {f['rss_trend_kb_per_100_calls']:+.0f} kB per 100 calls "
            f"({f['rss_trend_projected']:+.1%} over the run)"
        )
    lines.append("FAIL:\n  " + "\n  ".join(failures) if failures else "PASS: no growth")
    return "\n".join(lines)


# --- Command line ----------------------------------------------------------------------------------------------------


def setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name.strip().lower(), value.strip()


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000, help="calls in all (default 1000)")
    parser.add_argument("--concurrency", type=int, default=4, help="calls at a time (default 4)")
    parser.add_argument("--media-seconds", type=float, default=3.0, help="media per call after the first frames")
    parser.add_argument("--sample-every", type=int, default=10, help="a sample every this many calls")
    parser.add_argument("--table-every", type=int, default=100, help="a quiet sample and a row every this many")
    parser.add_argument("--warmup", type=int, default=100, help="calls before the RSS reference")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds the counts may take to come back")
    parser.add_argument("--rss-tolerance", type=float, default=0.05, help="RSS growth allowed after the warm-up")
    parser.add_argument("--max-failed", type=float, default=0.01, help="share of calls allowed to fail")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="NAME=VALUE", dest="settings")
    parser.add_argument("--logs", type=Path, help="keep the server's log in this folder")
    parser.add_argument(
        "--inspect",
        type=Path,
        metavar="DIR",
        help="each server process writes its tasks, threads, fds and objects to DIR at every row (SIGUSR1)",
    )
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES", help="with --inspect: trace allocations too"
    )
    parser.add_argument("--json", action="store_true", help="print every sample and the verdict as JSON")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.concurrency < 1 or args.table_every < 1 or args.sample_every < 1:
        parser.error("--calls, --concurrency, --table-every and --sample-every must be at least 1")
    return Options(
        calls=args.calls,
        concurrency=args.concurrency,
        media_seconds=args.media_seconds,
        sample_every=args.sample_every,
        table_every=args.table_every,
        warmup=min(args.warmup, args.calls),
        settle_s=args.settle,
        rss_tolerance=args.rss_tolerance,
        max_failed=args.max_failed,
        settings=args.settings,
        logs=args.logs,
        inspect=args.inspect,
        tracemalloc=args.tracemalloc,
        json=args.json,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if not in_private_netns():
        progress(f"run me in a private network namespace:\n  {NETNS_COMMAND} .venv/bin/python bench/soak.py")
        return 2
    with tempfile.TemporaryDirectory(prefix="rapport-soak-") as tmp:
        workdir = opts.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        data_dir, log = Path(tmp) / "data", workdir / "soak-server.log"
        password = secrets.token_urlsafe(18)
        if opts.inspect is not None:  # bench/soak_inspect/sitecustomize.py, in every process the server starts
            opts.inspect.mkdir(parents=True, exist_ok=True)
            os.environ["SOAK_INSPECT_DIR"] = str(opts.inspect.resolve())
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(INSPECT_HOOK), os.environ.get("PYTHONPATH")]))
            if opts.tracemalloc:
                os.environ["PYTHONTRACEMALLOC"] = str(opts.tracemalloc)
        create_reps(data_dir, opts.concurrency, password)
        progress(f"soak: {opts.calls} calls, {opts.concurrency} at a time, on {source_revision()}")
        with ServerProcess(DEFAULT_PATH, data_dir, log, None, opts.settings) as server:
            try:
                run = asyncio.run(soak(opts, server, password))
            except Exception:
                progress(f"server log:\n{tail(log, 30)}")
                raise
        failures, figures = verdict(run)
    if opts.json:
        document = {
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
            "machine": machine(),
            "revision": source_revision(),
            "idle": asdict(run.idle) if run.idle else None,
            "samples": [asdict(s) for s in run.samples],
            "failed_calls": [asdict(r) for r in run.results if not r.ok],
            "figures": figures,
            "failures": failures,
        }
        print(json.dumps(document, indent=1))
    else:
        print(report_text(run, failures, figures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
