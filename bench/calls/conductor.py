"""How many concurrent video calls one Rapport server process carries at 30 fps.

For each N in ``--n`` this drives N calls (a customer and a rep each, 640x480@30
VP8 video plus Opus audio, both ways) through one server process and measures,
over a window after a warm-up, the video frame rate every receiving client
decodes, the server's CPU and memory, and the clients' CPU. See bench/README.md.

WebRTC needs 127.0.0.2 and no way out, so run it in a private network namespace::

    unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"' \\
        .venv/bin/python bench/calls.py --n 1,2,3,4,5

Three kinds of process take part:

* the conductor (this file): makes a temporary data dir with one rep account
  per call, starts the server, primes it with one unmeasured call, starts client
  workers for each N, samples ``/proc`` and prints the results; it removes
  everything it made on the way out;
* the server: ``python -m server.cli serve``, in its own session so its CPU and
  memory (all threads, and any process it spawns) can be read from ``/proc``;
* client workers (this file with ``--worker``): each plays both sides of some
  of the calls with real aiortc peers from tests/support/clients.py.

Each server media path (``--path``) gets its own server process and the same
runs, so a second path (zero-transcode forwarding) can be compared side by side
once the server has one: add it to ``PATHS``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import datetime
import fractions
import functools
import json
import os
import platform
import re
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack
from av import VideoFrame

# `python bench/calls.py` puts bench/ first on sys.path; server/ and tests/ live at the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.config import Settings
from tests.support.clients import MediaClient, SignalingClient, ToneAudioTrack, login, start_call, wrap_up

ROOT = Path(__file__).resolve().parents[1]

# --- What is measured, and the pass rule -----------------------------------------------------------------------------

FPS = 30
WIDTH, HEIGHT = 640, 480
VIDEO_CLOCK = 90_000
SIDES = ("customer", "rep")
DEFAULT_COUNTS = (1, 2, 3, 4, 5)
DEFAULT_MEDIAN_FPS = 29.0
DEFAULT_MIN_FPS = 27.0
CANNED_LOOP_S = 4.0  # --send canned: a keyframe starts each loop, so a lost picture heals within this
CANNED_BITRATE = 500_000  # aiortc's starting bitrate, where its live encoder stays over loopback

CALL_SETUP_TIMEOUT_S = 30.0
FIRST_FRAME_TIMEOUT_S = 20.0
SERVER_START_TIMEOUT_S = 30.0
WORKER_STOP_TIMEOUT_S = 20.0
IDLE_CPU_PCT = 15.0  # the server counts as idle again between runs below this
IDLE_TIMEOUT_S = 10.0
STARTUP_IDLE_TIMEOUT_S = 90.0  # the server may load models (emotion cues) in a helper process at start
PRIME_S = 5.0  # the unmeasured first call
BUSY_OTHER_PCT = 25.0  # more than this from other processes during a window: that row understates capacity

WORKER_PASSWORD_ENV = "RAPPORT_BENCH_PASSWORD"
PR_SET_PDEATHSIG = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1

CpuSet = frozenset[int] | None


@dataclass(frozen=True)
class ServerPath:
    """One way the server can carry media between the two sides of a call; each gets its own server process."""

    name: str
    summary: str
    env: tuple[tuple[str, str], ...] = ()  # RAPPORT_* settings that select this path
    serve_args: tuple[str, ...] = ()


# Admission control would refuse calls past the capacity model: the benchmark is what measures it.
_UNCAPPED = ("RAPPORT_MAX_CALLS", "1000")

PATHS: dict[str, ServerPath] = {
    "transcode": ServerPath(
        "transcode",
        "the server terminates media: it decodes each incoming stream and re-encodes it (VP8, Opus) for the other side",
        env=(("RAPPORT_MEDIA_PATH", "transcode"), _UNCAPPED),
    ),
    "forward": ServerPath(
        "forward",
        "zero-transcode: each side's encoded VP8 and Opus frames go to the other side as they came",
        env=(("RAPPORT_MEDIA_PATH", "forward"), _UNCAPPED),
    ),
}


@dataclass(frozen=True)
class Rule:
    """N calls hold 30 fps if every call came up and the receiving directions' fps pass both bars."""

    median_fps: float = DEFAULT_MEDIAN_FPS
    min_fps: float = DEFAULT_MIN_FPS

    def holds(self, calls_up: int, n: int, median: float, minimum: float) -> bool:
        return calls_up == n and median >= self.median_fps and minimum >= self.min_fps

    def describe(self) -> str:
        return f"all calls up, median video fps >= {self.median_fps:g} and the worst direction >= {self.min_fps:g}"


@dataclass(frozen=True)
class Options:
    counts: tuple[int, ...]
    paths: tuple[str, ...]
    warmup_s: float
    window_s: float
    client_procs: int
    pin: str
    video: str
    send: str
    emotion_consent: bool  # customers agree to emotion cues: their video is analysed
    quiet_wait_s: float
    logs: Path | None
    server_settings: tuple[tuple[str, str], ...]  # --set name=value, passed as RAPPORT_NAME
    rule: Rule
    json: bool


@dataclass
class NResult:
    """One path at one N over the window. CPU% is of one core (up to 100 x cores); fps per receiving direction."""

    path: str
    n: int
    calls_up: int
    directions: int
    video_fps_min: float
    video_fps_median: float
    video_fps_max: float
    audio_fps_min: float  # 50 = every 20 ms Opus frame
    video_kbps_sent: float  # median over the client senders (what the server takes in per stream)
    video_loss_pct: float  # RTP packets the clients never received (after retransmission), all directions
    server_cpu_pct: float
    server_loop_cpu_pct: float  # the server's main thread: asyncio loop, RTP, SRTP, Python
    server_rss_mb: float  # at the end of the window
    server_rss_idle_mb: float  # before this N's calls started
    server_threads: int
    server_processes: int  # the server and what it spawned (e.g. an analysis worker): all counted as server
    clients_cpu_pct: float
    other_cpu_pct: float  # every other process on the machine (not this conductor): other people's work, daemons
    box_cpu_pct: float
    setup_s: float
    window_s: float
    holds: bool
    spoiled_runs: int = 0  # earlier tries of this N thrown away because other processes were busy (--quiet-wait)
    errors: list[str] = field(default_factory=list)
    # Server transit of video frames (frame in to RTP out), from its /metrics over the window.
    transit_p50_ms: float | None = None
    transit_p95_ms: float | None = None


# --- /proc -----------------------------------------------------------------------------------------------------------


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


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {"cpus": CPUS, "cpu_model": model, "kernel": platform.release(), "python": platform.python_version()}


def source_revision() -> str:
    """The commit the server runs from, and whether its code differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "server", "emotion")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes in server/ or emotion/" if dirty else head


def in_private_netns() -> bool:
    """Only loopback in this network namespace, and 127.0.0.2 on it (aioice ignores 127.0.0.1)."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    if {line.split(":")[0].strip() for line in lines} != {"lo"}:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


# --- Child processes -------------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(cpus: CpuSet) -> Callable[[], None]:
    """Runs in the child before exec: die with the conductor, and keep to ``cpus`` (its threads inherit that)."""

    def setup() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


def spawn(
    command: Sequence[str], *, env: dict[str, str], cpus: CpuSet, stdout: IO[Any] | int, stderr: IO[Any]
) -> subprocess.Popen[bytes]:
    # Own process group: a Ctrl-C reaches only the conductor, which then stops its children in order.
    # preexec_fn is safe here: the conductor runs no threads.
    return subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_child_setup(cpus),
    )


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers, and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without RAPPORT_* settings (a user's config must not leak in), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env.update(extra)
    return env


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def cpu_split(pin: str) -> tuple[CpuSet, CpuSet]:
    """CPU sets for (server, clients)."""
    if pin == "none":
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    return frozenset(allowed[:1]), frozenset(allowed[1:])


# --- The server ------------------------------------------------------------------------------------------------------


def rep_name(index: int) -> str:
    return f"bench-rep-{index + 1:03d}"


async def _create_reps(data_dir: Path, count: int, password: str) -> None:
    from server.http.auth import hash_password
    from server.storage.migrations import migrate
    from server.storage.schema import create_engine
    from server.storage.store import Store

    engine = create_engine(Settings(data_dir=data_dir).db_url)
    try:
        await migrate(engine)
        store = Store(engine)
        hashed = hash_password(password)  # one hash for all: argon2 is slow on purpose
        for i in range(count):
            await store.create_user(rep_name(i), f"Bench Rep {i + 1}", "rep", hashed)
    finally:
        await engine.dispose()


def create_reps(data_dir: Path, count: int, password: str) -> None:
    """One rep per concurrent call (a rep takes one call at a time), straight into the server's database."""
    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_create_reps(data_dir, count, password))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``rapport serve`` on a free loopback port with the given data dir, as a child process."""

    def __init__(
        self, path: ServerPath, data_dir: Path, log_path: Path, cpus: CpuSet, settings: Sequence[tuple[str, str]]
    ) -> None:
        self.path = path
        self.settings = settings
        self.data_dir = data_dir
        self.log_path = log_path
        self.cpus = cpus
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> ServerProcess:
        command = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), *self.path.serve_args]
        settings = {f"RAPPORT_{name.upper()}": value for name, value in self.settings}
        env = clean_env(RAPPORT_CREATE_DEMO_ACCOUNTS="false", **settings, **dict(self.path.env))
        with self.log_path.open("ab") as log:
            self.proc = spawn(command, env=env, cpus=self.cpus, stdout=log, stderr=log)
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{tail(self.log_path)}")
            with contextlib.suppress(OSError), opener.open(f"{self.url}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server not healthy after {SERVER_START_TIMEOUT_S:g} s:\n{tail(self.log_path)}")

    def wait_idle(self, timeout_s: float = IDLE_TIMEOUT_S) -> float:
        """Wait until the server (with its helpers) has been idle for two seconds running: after start-up, which
        may load models in a helper process, and between runs while the last calls wind down. Returns the wait."""
        began = time.monotonic()
        quiet = 0
        while quiet < 2 and time.monotonic() - began < timeout_s:
            before = session_cpu_seconds(self.pid)
            time.sleep(1.0)
            quiet = quiet + 1 if 100 * (session_cpu_seconds(self.pid) - before) < IDLE_CPU_PCT else 0
        return time.monotonic() - began

    def wait_quiet(self, limit_s: float) -> float:
        """Wait (up to ``limit_s``) until the rest of the box uses under BUSY_OTHER_PCT; returns the seconds waited.

        On a shared machine this keeps other people's test runs out of the window; ``other%`` shows what is left.
        """
        began = time.monotonic()
        while time.monotonic() - began < limit_s:
            before = CpuSample.take(self.pid, [])
            time.sleep(1.0)
            use = CpuUse.between(before, CpuSample.take(self.pid, []))
            if use.other_pct < BUSY_OTHER_PCT:
                break
        return time.monotonic() - began

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# --- Client workers, seen from the conductor -------------------------------------------------------------------------


class WorkerDied(RuntimeError):
    pass


@dataclass(frozen=True)
class Run:
    """What every N on one server shares."""

    opts: Options
    server: ServerProcess
    password: str
    workdir: Path  # logs go here
    client_cpus: CpuSet
    canned: Path | None  # the VP8 loops, with --send canned


class Worker:
    """A client worker process: commands go in on stdin, JSON events come out on stdout."""

    def __init__(self, run: Run, indices: Sequence[int], log: Path) -> None:
        self.log_path = log
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--url", run.server.url]
        command += ["--calls", ",".join(map(str, indices)), "--video", run.opts.video]
        if run.canned is not None:
            command += ["--canned-dir", str(run.canned)]
        if run.opts.emotion_consent:
            command += ["--emotion-consent"]
        env = clean_env(**{WORKER_PASSWORD_ENV: run.password})
        with log.open("ab") as stderr:
            self.proc = spawn(command, env=env, cpus=run.client_cpus, stdout=subprocess.PIPE, stderr=stderr)
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()

    def event(self, deadline: float) -> dict[str, Any]:
        """The next JSON event line, waiting until ``deadline`` (monotonic)."""
        while True:
            line, sep, rest = self._buffer.partition(b"\n")
            if sep:
                self._buffer = rest
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if isinstance(message, dict) and "event" in message:
                        return message
                continue
            self._fill(deadline)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"worker {self.pid} sent nothing in time\n{tail(self.log_path)}")
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            if not selector.select(remaining):
                return
        chunk = os.read(self._fd, 65536)
        if not chunk:
            raise WorkerDied(f"worker {self.pid} exited ({self.proc.poll()})\n{tail(self.log_path)}")
        self._buffer += chunk

    def stop(self, *, hang_up: bool = True) -> None:
        """Ask the worker to hang up its calls and exit (or just end it); force it if it does not."""
        if hang_up and self.proc.poll() is None:
            self.send("stop")
            with contextlib.suppress(TimeoutError, WorkerDied):
                self.event(time.monotonic() + WORKER_STOP_TIMEOUT_S)
        stop_process(self.proc, grace_s=5.0)


def deal(count: int, hands: int) -> list[list[int]]:
    """Call indices 0..count-1 dealt round-robin into at most ``hands`` non-empty groups."""
    groups: list[list[int]] = [[] for _ in range(min(count, hands))]
    for i in range(count):
        groups[i % len(groups)].append(i)
    return groups


@contextlib.contextmanager
def workers_for(run: Run, n: int) -> Iterator[list[Worker]]:
    """Client processes for N calls; they hang up when done, or are simply ended on an error or Ctrl-C."""
    workers: list[Worker] = []
    completed = False
    try:
        for k, group in enumerate(deal(n, run.opts.client_procs)):
            workers.append(Worker(run, group, run.workdir / f"{run.server.path.name}-n{n}-worker{k}.log"))
        yield workers
        completed = True
    finally:
        for worker in workers:
            worker.stop(hang_up=completed)


# --- One N -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """Every call's counters at one moment: ``at[i]`` is when call i's worker read ``counts[i]``."""

    at: dict[int, float]
    counts: dict[int, dict[str, int]]

    @classmethod
    def take(cls, workers: Sequence[Worker]) -> Mark:
        for worker in workers:
            worker.send("mark")
        at: dict[int, float] = {}
        counts: dict[int, dict[str, int]] = {}
        for worker in workers:
            event = worker.event(time.monotonic() + 10.0)
            for key, values in event["calls"].items():
                at[int(key)], counts[int(key)] = float(event["t"]), values
        return cls(at, counts)


@dataclass(frozen=True)
class Window:
    n: int
    start: Mark
    end: Mark

    def up(self, i: int) -> bool:
        return i in self.start.counts and i in self.end.counts

    def deltas(self, key: str) -> list[tuple[float, float]]:
        """(increase, seconds) of counter ``key`` ("video_frames_to_{side}"...) for every call and side."""
        out: list[tuple[float, float]] = []
        for i in range(self.n):
            for side in SIDES:
                if self.up(i):
                    name = key.format(side=side)
                    out.append(
                        (
                            self.end.counts[i].get(name, 0) - self.start.counts[i].get(name, 0),
                            self.end.at[i] - self.start.at[i],
                        )
                    )
                else:
                    out.append((0.0, 1.0))  # a call that never came up delivered nothing
        return out

    def rates(self, key: str) -> list[float]:
        return [amount / seconds for amount, seconds in self.deltas(key)]

    def loss_pct(self) -> float:
        lost = sum(d for d, _ in self.deltas("video_lost_to_{side}"))
        got = sum(d for d, _ in self.deltas("video_packets_to_{side}"))
        return 100 * lost / (lost + got) if lost + got > 0 else 0.0


def measure(run: Run, n: int) -> NResult:
    """N calls, measured once; with --quiet-wait, done again from scratch while other processes spoil the window."""
    server, opts = run.server, run.opts
    quiet_until = time.monotonic() + opts.quiet_wait_s
    spoiled = 0
    while True:
        if opts.quiet_wait_s > 0:
            waited = server.wait_quiet(max(0.0, quiet_until - time.monotonic()))
            if waited > 1.5:
                progress(f"[{server.path.name}] waited {waited:.0f} s for other processes to quieten down")
        result = measure_once(run, n)
        result.spoiled_runs = spoiled
        server.wait_idle()
        if result.other_cpu_pct <= BUSY_OTHER_PCT or time.monotonic() >= quiet_until:
            return result
        # Overloaded calls must not simply run on: past ~30 s without CPU their ICE consent lapses.
        spoiled += 1
        progress(f"  other processes took {result.other_cpu_pct:.0f}% of a core during the window: doing N={n} again")


def prime(run: Run) -> None:
    """One unmeasured call first, so what the server sets up lazily on its first call (codecs, analysis models)
    is not charged to N=1."""
    began = time.monotonic()
    with workers_for(run, 1) as workers:
        workers[0].event(began + CALL_SETUP_TIMEOUT_S + FIRST_FRAME_TIMEOUT_S)
        time.sleep(PRIME_S)
    settled = run.server.wait_idle(STARTUP_IDLE_TIMEOUT_S)
    progress(f"[{run.server.path.name}] primed with one call; the server settled {settled:.0f} s after it")


def measure_once(run: Run, n: int) -> NResult:
    server, opts = run.server, run.opts
    progress(f"[{server.path.name}] N={n}: setting up {n} call(s) in {min(n, opts.client_procs)} client process(es)")
    idle_rss = rss_mb(server.pid)
    began = time.monotonic()
    with workers_for(run, n) as workers:
        deadline = began + CALL_SETUP_TIMEOUT_S + FIRST_FRAME_TIMEOUT_S * n
        ready = [worker.event(deadline) for worker in workers]
        errors = [error for event in ready for error in event["errors"]]
        setup_s = time.monotonic() - began
        progress(f"  ready in {setup_s:.1f} s ({setup_details(ready)}); warming up {opts.warmup_s:g} s, then measuring")
        time.sleep(opts.warmup_s)
        pids = [w.pid for w in workers]
        cpu_start, start = CpuSample.take(server.pid, pids), Mark.take(workers)
        time.sleep(opts.window_s)
        cpu_end, end = CpuSample.take(server.pid, pids), Mark.take(workers)
        transit = scrape_transit(server.url)
        rss, threads = rss_mb(server.pid), session_status(server.pid, "Threads")
        processes = len(session_members(server.pid))
    result = summarize(server.path.name, opts, Window(n, start, end), CpuUse.between(cpu_start, cpu_end))
    result.server_rss_mb, result.server_rss_idle_mb, result.server_threads = rss, idle_rss, threads
    result.server_processes, result.setup_s, result.errors = processes, setup_s, errors
    result.transit_p50_ms, result.transit_p95_ms = transit
    return result


def scrape_transit(url: str) -> tuple[float | None, float | None]:
    """p50 and p95 of the server's frame transit (ms) from /metrics; the server keeps the last 10 s."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None, None
    found = dict(re.findall(r'^rapport_transit_seconds\{quantile="([0-9.]+)"\} (\S+)$', text, re.MULTILINE))
    p50, p95 = found.get("0.5"), found.get("0.95")
    return (float(p50) * 1000 if p50 else None), (float(p95) * 1000 if p95 else None)


def setup_details(ready: Sequence[dict[str, Any]]) -> str:
    """Where setting up took its time: the workers' preparation and the slowest call's phases."""
    prepare = max(event["prepare_s"] for event in ready)
    calls = [timings for event in ready for timings in event["timings"].values()]
    slowest: dict[str, float] = max(calls, key=lambda t: sum(t.values()), default={})
    phases = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in slowest.items())
    return f"pictures {prepare:.1f} s; slowest call: {phases}"


def summarize(path: str, opts: Options, window: Window, cpu: CpuUse) -> NResult:
    video, audio = window.rates("video_frames_to_{side}"), window.rates("audio_frames_to_{side}")
    kbps = [8 * rate / 1000 for rate in window.rates("video_bytes_from_{side}")]
    up = sum(1 for i in range(window.n) if window.up(i))
    median, minimum = statistics.median(video), min(video)
    return NResult(
        path=path,
        n=window.n,
        calls_up=up,
        directions=len(video),
        video_fps_min=minimum,
        video_fps_median=median,
        video_fps_max=max(video),
        audio_fps_min=min(audio),
        video_kbps_sent=statistics.median(kbps),
        video_loss_pct=window.loss_pct(),
        server_cpu_pct=cpu.server_pct,
        server_loop_cpu_pct=cpu.server_loop_pct,
        server_rss_mb=0.0,
        server_rss_idle_mb=0.0,
        server_threads=0,
        server_processes=0,
        clients_cpu_pct=cpu.clients_pct,
        other_cpu_pct=cpu.other_pct,
        box_cpu_pct=cpu.box_pct,
        setup_s=0.0,
        window_s=opts.window_s,
        holds=opts.rule.holds(up, window.n, median, minimum),
    )


def spoiled(result: NResult) -> bool:
    """Other processes took enough CPU during the window that a failure says nothing about Rapport."""
    return result.other_cpu_pct > BUSY_OTHER_PCT


def largest_holding(results: Sequence[NResult]) -> int | None:
    """The largest N that holds with every smaller measured N holding too (a lucky pass above a failure is no
    capacity); a failure while other processes were busy is inconclusive and skipped."""
    best = None
    for result in sorted(results, key=lambda r: r.n):
        if result.holds:
            best = result.n
        elif not spoiled(result):
            break
    return best


def run_path(path: ServerPath, opts: Options, workdir: Path, canned: Path | None) -> list[NResult]:
    """Every N on a fresh server for this path."""
    server_cpus, client_cpus = cpu_split(opts.pin)
    password = secrets.token_urlsafe(18)
    data_dir = workdir / f"data-{path.name}"
    create_reps(data_dir, max(opts.counts), password)
    results = []
    log = workdir / f"server-{path.name}.log"
    with ServerProcess(path, data_dir, log, server_cpus, opts.server_settings) as server:
        progress(f"[{path.name}] server pid {server.pid} on {server.url}: {path.summary}")
        progress(f"[{path.name}] server settled in {server.wait_idle(STARTUP_IDLE_TIMEOUT_S):.0f} s")
        run = Run(opts, server, password, workdir, client_cpus, canned)
        prime(run)
        for n in opts.counts:
            results.append(measure(run, n))
            progress(f"  {header()}\n  {row(results[-1])}")
    return results


# --- Output ----------------------------------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


COLUMNS: tuple[tuple[str, int, Callable[[NResult], str]], ...] = (
    ("path", 10, lambda r: r.path),
    ("N", 3, lambda r: str(r.n)),
    ("up", 3, lambda r: str(r.calls_up)),
    ("fps min", 8, lambda r: f"{r.video_fps_min:.1f}"),
    ("fps med", 8, lambda r: f"{r.video_fps_median:.1f}"),
    ("fps max", 8, lambda r: f"{r.video_fps_max:.1f}"),
    ("audio/s", 8, lambda r: f"{r.audio_fps_min:.1f}"),
    ("kbps", 5, lambda r: f"{r.video_kbps_sent:.0f}"),
    ("loss%", 6, lambda r: f"{r.video_loss_pct:.1f}"),
    ("srv CPU%", 9, lambda r: f"{r.server_cpu_pct:.0f}"),
    ("transit p50/p95 ms", 19, lambda r: _ms(r.transit_p50_ms) + " / " + _ms(r.transit_p95_ms)),
    ("loop%", 6, lambda r: f"{r.server_loop_cpu_pct:.0f}"),
    ("RSS MB", 7, lambda r: f"{r.server_rss_mb:.0f}"),
    ("idle MB", 8, lambda r: f"{r.server_rss_idle_mb:.0f}"),
    ("thr", 4, lambda r: str(r.server_threads)),
    ("cli CPU%", 9, lambda r: f"{r.clients_cpu_pct:.0f}"),
    ("other%", 7, lambda r: f"{r.other_cpu_pct:.0f}"),
    ("holds", 6, lambda r: "yes" if r.holds else "no*" if spoiled(r) else "no"),
)


def _line(cells: Sequence[str]) -> str:
    return " ".join(
        f"{cell:<{width}}" if i == 0 else f"{cell:>{width}}"
        for i, (cell, (_, width, _)) in enumerate(zip(cells, COLUMNS, strict=True))
    )


def header() -> str:
    return _line([name for name, _, _ in COLUMNS])


def row(result: NResult) -> str:
    return _line([cell(result) for _, _, cell in COLUMNS])


def describe_setup(opts: Options, info: dict[str, Any]) -> list[str]:
    server_cpus, client_cpus = cpu_split(opts.pin)
    if server_cpus is None:
        where = "server and clients share all cores"
    else:
        where = f"server pinned to CPU {sorted(server_cpus)}, clients to {sorted(client_cpus or ())}"
    sender = "encoded live by each client" if opts.send == "encode" else "pre-encoded once and replayed"
    box = info["machine"]
    settings = ", ".join(f"{name}={value}" for name, value in opts.server_settings) or "defaults"
    return [
        f"Rapport call capacity, {info['date']}: {box['cpus']} cores ({box['cpu_model']}); {where}",
        f"server code {info['source']}; settings: {settings}",
        f"per call: {WIDTH}x{HEIGHT}@{FPS} VP8 + Opus both ways; video '{opts.video}', {sender}; "
        f"clients in up to {opts.client_procs} process(es); warm-up {opts.warmup_s:g} s, window {opts.window_s:g} s; "
        f"customers {'agree to' if opts.emotion_consent else 'are not asked for'} emotion cues",
        f"CPU% = share of one core (the box has {100 * CPUS}%); srv = the server and any process it spawned; "
        "loop% = the server's main (asyncio) thread alone",
    ]


def report_text(results: Sequence[NResult], opts: Options, info: dict[str, Any]) -> str:
    lines = [*describe_setup(opts, info), "", header(), *(row(r) for r in results), "", f"Rule: {opts.rule.describe()}"]
    for name in opts.paths:
        best = largest_holding([r for r in results if r.path == name])
        unsure = [str(r.n) for r in results if r.path == name and spoiled(r) and not r.holds]
        aside = f" (inconclusive, skipped: N={', '.join(unsure)})" if unsure else ""
        lines.append(f"Largest N holding 30 fps, path {name}: {best if best is not None else 'none'}{aside}")
    baseline = largest_holding([r for r in results if r.path == "transcode"])
    forward = largest_holding([r for r in results if r.path == "forward"])
    if baseline and forward is not None:
        lines.append(
            f"Ratio: the forwarding path carries {forward / baseline:.1f}x the transcoding "
            "path's calls at 30 fps"
            + (" (it held at the largest N tried: raise --n to find its limit)" if forward == max(opts.counts) else "")
        )
    helpers = max((r.server_processes for r in results), default=1)
    if helpers > 1:
        lines.append(f"The server ran as up to {helpers} processes; srv CPU%, RSS and threads add them all up.")
    busy = [f"{r.path} N={r.n}" for r in results if spoiled(r)]
    if busy:
        lines.append(
            f"Note: other processes took over {BUSY_OTHER_PCT:g}% of a core during {', '.join(busy)}; those rows "
            "understate capacity (a failure there, no*, is inconclusive and skipped): rerun on a quiet machine."
        )
    lines += [f"  {r.path} N={r.n}: {error}" for r in results for error in r.errors]
    return "\n".join(lines)


def report_json(results: Sequence[NResult], opts: Options, info: dict[str, Any]) -> str:
    document = {
        **info,
        "options": asdict(opts),
        "rule": opts.rule.describe(),
        "paths": {name: PATHS[name].summary for name in opts.paths},
        "results": [{**asdict(r), "inconclusive": spoiled(r) and not r.holds} for r in results],
        "largest_n": {name: largest_holding([r for r in results if r.path == name]) for name in opts.paths},
    }
    return json.dumps(document, indent=2)


# --- The conductor ---------------------------------------------------------------------------------------------------


def _stop_on_signal(_signum: int, _frame: object) -> None:
    # Cleanup runs in finally blocks from here on; a second Ctrl-C must not cut it short.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def conduct(opts: Options) -> int:
    if not in_private_netns():
        progress(
            "bench/calls.py needs a private network namespace with 127.0.0.2 on lo; run it as\n"
            '  unshare -rn sh -c \'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"\' '
            ".venv/bin/python bench/calls.py ..."
        )
        return 2
    if opts.pin == "split" and len(os.sched_getaffinity(0)) < 2:
        progress("--pin split needs at least 2 cores")
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "source": source_revision(),
    }
    progress("\n".join(describe_setup(opts, info)))
    results: list[NResult] = []
    status = 0
    try:
        with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
            try:
                canned = write_canned_loops(Path(tmp) / "canned", opts.video) if opts.send == "canned" else None
                for name in opts.paths:
                    results += run_path(PATHS[name], opts, Path(tmp), canned)
            finally:
                if opts.logs is not None:
                    save_logs(Path(tmp), opts.logs)
    except KeyboardInterrupt:
        progress("interrupted: server and clients stopped, temporary files removed")
        return 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        progress(f"benchmark failed: {exc}")
        status = 1
    if results or status == 0:
        print(report_json(results, opts, info) if opts.json else report_text(results, opts, info), flush=True)
    return status


def save_logs(workdir: Path, destination: Path) -> None:
    """Copy the server's and the workers' logs out of the temporary directory before it goes."""
    destination.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy2(log, destination / log.name)
    progress(f"logs saved in {destination}")


# --- Pictures: what the clients' cameras show ------------------------------------------------------------------------

ImageAt = Callable[[float], np.ndarray]  # media time (s) -> yuv420p planes, HEIGHT * 3 / 2 rows of WIDTH


def to_yuv(bgr: np.ndarray) -> np.ndarray:
    return VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p").to_ndarray()


def picture_count(video: str) -> int:
    """How many different pictures the participants show (they take turns)."""
    if video == "pattern":
        return 1
    from tests.support import faces

    return len(faces.people())


class FacePoses:
    """A person on a wall, swaying a few pixels like a hand-held phone (tests/support/faces.py).

    The sway moves in whole pixels, so there are few distinct poses: each is drawn and converted to
    yuv420p once (``prepare``), which leaves the clients only the work a camera client has.
    """

    def __init__(self, picture: int) -> None:
        from tests.support import faces

        who = faces.people()[picture]
        self.clip = faces.make_clip([(who, 1.0)], width=WIDTH, height=HEIGHT)
        self._poses: dict[tuple[int, int, int, int], np.ndarray] = {}

    def __call__(self, t: float) -> np.ndarray:
        key = self.clip.face_box_at(t)  # one segment: the box moves exactly when the picture does
        if key not in self._poses:
            self._poses[key] = to_yuv(self.clip.frame_at(t))
        return self._poses[key]

    def prepare(self, seconds: float = 10.0) -> None:
        for i in range(round(seconds * FPS)):
            self(i / FPS)


class ScrollingPattern:
    """tests/support/clients.py's PatternVideoTrack picture: a colour gradient scrolling 4 px a frame."""

    def __init__(self) -> None:
        y = np.linspace(0, 255, HEIGHT, dtype=np.uint8)[:, None]
        x = np.linspace(0, 255, WIDTH, dtype=np.uint8)[None, :]
        planes = [np.broadcast_to(x, (HEIGHT, WIDTH)), np.broadcast_to(y, (HEIGHT, WIDTH)), np.full_like(x, 128)]
        self._base = np.dstack(np.broadcast_arrays(*planes))
        self._shifts: dict[int, np.ndarray] = {}

    def __call__(self, t: float) -> np.ndarray:
        shift = round(t * FPS) * 4 % WIDTH
        if shift not in self._shifts:
            self._shifts[shift] = to_yuv(np.ascontiguousarray(np.roll(self._base, shift, axis=1)))
        return self._shifts[shift]

    def prepare(self) -> None:
        for i in range(WIDTH // 4):
            self(i / FPS)


@functools.cache
def image_source(video: str, picture: int) -> FacePoses | ScrollingPattern:
    """One source per picture, shared by the tracks that show it."""
    return FacePoses(picture) if video == "faces" else ScrollingPattern()


def encode_loop(image_at: ImageAt) -> list[bytes]:
    """CANNED_LOOP_S of a picture as VP8 frames, with aiortc's realtime settings and a keyframe first."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.bit_rate = CANNED_BITRATE
    codec.thread_count = 1  # the conductor stays single-threaded (it forks children)
    frames = round(CANNED_LOOP_S * FPS)
    codec.gop_size = frames
    codec.qmin, codec.qmax = 2, 56
    rate = str(CANNED_BITRATE)
    codec.options = {
        **{"bufsize": rate, "minrate": rate, "maxrate": rate, "cpu-used": "-6", "deadline": "realtime"},
        **{"lag-in-frames": "0", "noise-sensitivity": "4", "overshoot-pct": "15", "partitions": "0"},
        **{"static-thresh": "1", "undershoot-pct": "100"},
    }
    loop = []
    for i in range(frames):
        frame = VideoFrame.from_ndarray(image_at(i / FPS), format="yuv420p")
        frame.pts, frame.time_base = i, fractions.Fraction(1, FPS)
        if i == 0:
            frame.pict_type = av.video.frame.PictureType.I
        loop.append(b"".join(bytes(packet) for packet in codec.encode(frame)))
    if not all(loop):
        raise RuntimeError("the VP8 encoder held frames back; canned video needs one packet per frame")
    return loop


def canned_file(directory: Path, video: str, picture: int) -> Path:
    return directory / f"{video}-{picture}.vp8"


def write_canned_loops(directory: Path, video: str) -> Path:
    """Encode every picture's loop once, in the conductor before anything is timed, for the workers to replay."""
    directory.mkdir()
    began = time.monotonic()
    for picture in range(picture_count(video)):
        frames = encode_loop(image_source(video, picture))
        data = b"".join(struct.pack(">I", len(frame)) + frame for frame in frames)
        canned_file(directory, video, picture).write_bytes(data)
    progress(f"encoded {picture_count(video)} VP8 loop(s) of {CANNED_LOOP_S:g} s in {time.monotonic() - began:.1f} s")
    return directory


@functools.cache
def read_canned_loop(directory: Path, video: str, picture: int) -> list[bytes]:
    data = canned_file(directory, video, picture).read_bytes()
    frames, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from(">I", data, at)
        frames.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return frames


# --- Client worker: tracks -------------------------------------------------------------------------------------------


class PacedTrack(VideoStreamTrack):
    """Video at FPS in real time; subclasses make the item for frame number ``count``."""

    def __init__(self) -> None:
        super().__init__()
        self._count = 0
        self._began: float | None = None

    async def recv(self) -> Any:
        if self._began is None:
            self._began = time.monotonic()
        delay = self._began + self._count / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        item = self.make(self._count)
        item.pts, item.time_base = self._count * VIDEO_CLOCK // FPS, fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return item

    def make(self, count: int) -> Any:
        raise NotImplementedError


class LiveTrack(PacedTrack):
    """Raw frames, which aiortc encodes (VP8) as a browser would: the realistic client, and the costly one."""

    def __init__(self, image_at: ImageAt) -> None:
        super().__init__()
        self._image_at = image_at

    def make(self, count: int) -> VideoFrame:
        return VideoFrame.from_ndarray(self._image_at(count / FPS), format="yuv420p")


class CannedTrack(PacedTrack):
    """Ready VP8 frames: aiortc only packetizes them, so the client spends nothing on encoding.

    It ignores the server's keyframe requests and bitrate estimates; the loop's own keyframe heals losses.
    """

    def __init__(self, loop: Sequence[bytes]) -> None:
        super().__init__()
        self._frames = loop

    def make(self, count: int) -> av.Packet[Any]:
        return av.Packet(self._frames[count % len(self._frames)])


def video_track(video: str, picture: int, canned: Path | None) -> MediaStreamTrack:
    if canned is not None:
        return CannedTrack(read_canned_loop(canned, video, picture))
    return LiveTrack(image_source(video, picture))


def prefer_vp8(media: MediaClient) -> None:
    """Offer VP8 only (aiortc would also offer H.264): the benchmark is about VP8, and canned frames are VP8."""
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    vp8 = [c for c in capabilities if c.mimeType.lower() in ("video/vp8", "video/rtx")]
    for transceiver in media.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(vp8)


# --- Client worker: calls --------------------------------------------------------------------------------------------


def customer_address(index: int) -> str:
    """A loopback source address per customer, as if each were a different phone (POST /calls is limited per
    address)."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


async def _quietly(awaitable: Any, timeout: float = 5.0) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, timeout)


class BenchCall:
    """One call: a rep (logged in, available) and a customer, both with aiortc media through the server."""

    def __init__(
        self, index: int, url: str, password: str, video: str, canned: Path | None, emotion_consent: bool = False
    ) -> None:
        self.index = index
        self.emotion_consent = emotion_consent
        self.url = url
        self.password = password
        self.video = video
        self.canned = canned
        self.rep_http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.customer_http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(customer_address(index), 0))
        )
        self.signaling = {
            "rep": SignalingClient(self.rep_http, url),
            "customer": SignalingClient(self.customer_http, url),
        }
        self.media: dict[str, MediaClient] = {}
        self.up = False
        self.session_id: str | None = None
        self.timings: dict[str, float] = {}
        self._lap_at = time.monotonic()

    def picture(self, side: str) -> int:
        return (2 * self.index + SIDES.index(side)) % picture_count(self.video)

    def prepare(self) -> None:
        """Ready this call's pictures now, before any media flows."""
        for side in SIDES:
            if self.canned is not None:
                read_canned_loop(self.canned, self.video, self.picture(side))
            else:
                image_source(self.video, self.picture(side)).prepare()

    async def start(self) -> None:
        self._lap()
        await self._rep_ready()
        self._lap("rep")
        session_id = self.session_id = await self._customer_waiting()
        self._lap("customer")
        await self.signaling["rep"].request({"type": "call.accept", "session_id": session_id})
        await self.signaling["customer"].wait_for("call.accepted")
        self._lap("accept")
        for side in SIDES:
            video = video_track(self.video, self.picture(side), self.canned)
            self.media[side] = MediaClient(video=video, audio=ToneAudioTrack())
            prefer_vp8(self.media[side])
        await asyncio.gather(*(self.media[side].negotiate(self.signaling[side]) for side in SIDES))
        self._lap("negotiate")
        for media in self.media.values():
            await media.wait_frames("video", 1, FIRST_FRAME_TIMEOUT_S)
        self._lap("first_frames")
        self.up = True

    def _lap(self, phase: str | None = None) -> None:
        """Time the setup phases (shown when setting up is slow)."""
        now = time.monotonic()
        if phase is not None:
            self.timings[phase] = round(now - self._lap_at, 2)
        self._lap_at = now

    async def _rep_ready(self) -> None:
        rep = self.signaling["rep"]
        await login(self.rep_http, self.url, rep_name(self.index), self.password)
        await rep.connect()
        await rep.send({"type": "hello"})
        await rep.wait_for("welcome")
        await rep.request({"type": "rep.status", "status": "available"})

    async def _customer_waiting(self) -> str:
        customer = self.signaling["customer"]
        call = await start_call(
            self.customer_http,
            self.url,
            reason="other",
            name=f"Bench customer {self.index + 1}",
            emotion_consent=self.emotion_consent,
        )
        await customer.connect()
        await customer.send({"type": "hello", "token": call["token"]})
        await customer.wait_for("welcome")
        return str(call["session_id"])

    async def counters(self) -> dict[str, int]:
        """Per side: frames decoded, video packets received and lost, video bytes sent."""
        out: dict[str, int] = {}
        for side, media in self.media.items():
            out[f"video_frames_to_{side}"] = media.frames("video")
            out[f"audio_frames_to_{side}"] = media.frames("audio")
            for stats in (await media.pc.getStats()).values():
                if getattr(stats, "kind", None) != "video":
                    continue
                if stats.type == "inbound-rtp":
                    out[f"video_packets_to_{side}"] = stats.packetsReceived
                    out[f"video_lost_to_{side}"] = stats.packetsLost
                elif stats.type == "outbound-rtp":
                    out[f"video_bytes_from_{side}"] = stats.bytesSent
        return out

    async def close(self) -> None:
        rep, customer = self.signaling["rep"], self.signaling["customer"]
        if rep.ws is not None and not rep.ws.closed:
            await _quietly(rep.send({"type": "call.end", "reason": "resolved"}))
            await _quietly(customer.wait_for("call.ended"))
            # The same rep account takes the next N's call: it needs its disposition saved first.
            if self.session_id is not None:
                await _quietly(wrap_up(self.rep_http, self.url, self.session_id))
        for media in self.media.values():
            await _quietly(media.close())
        for client in (rep, customer):
            await _quietly(client.close())
        await self.rep_http.close()
        await self.customer_http.close()


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def start_calls(calls: Sequence[BenchCall]) -> list[str]:
    """Set the calls up one after another (as customers trickle in); returns what went wrong."""
    errors = []
    for call in calls:
        try:
            await asyncio.wait_for(call.start(), CALL_SETUP_TIMEOUT_S)
        except Exception as exc:
            errors.append(f"call {call.index + 1}: {type(exc).__name__}: {exc}")
    return errors


async def work(
    url: str, indices: Sequence[int], video: str, canned: Path | None, password: str, emotion_consent: bool = False
) -> None:
    """The worker: set the calls up, report counters on "mark", hang up on "stop" (or when stdin closes)."""
    commands = await stdin_reader()
    calls = [BenchCall(i, url, password, video, canned, emotion_consent) for i in indices]
    try:
        began = time.monotonic()
        for call in calls:
            call.prepare()
        prepare_s = round(time.monotonic() - began, 2)
        errors = await start_calls(calls)
        timings = {str(c.index): c.timings for c in calls}
        emit("ready", up=[c.index for c in calls if c.up], errors=errors, prepare_s=prepare_s, timings=timings)
        while line := (await commands.readline()).decode().strip():
            if line == "mark":
                now = time.monotonic()
                emit("mark", t=now, calls={str(c.index): await c.counters() for c in calls if c.up})
            elif line == "stop":
                break
    finally:
        for call in calls:
            await call.close()
    emit("done")


# --- Command line ----------------------------------------------------------------------------------------------------


def positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give call counts of at least 1, e.g. 1,2,4")
    return tuple(sorted(set(values)))


def server_setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or name.strip() not in {f.name for f in dataclasses.fields(Settings)}:
        raise argparse.ArgumentTypeError(f"give NAME=VALUE with NAME a field of server.config.Settings: {text!r}")
    return name.strip(), value


def path_names(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not names or any(name not in PATHS for name in names):
        raise argparse.ArgumentTypeError(f"paths are {', '.join(PATHS)}; got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Concurrent 640x480@30 calls through one Rapport server: fps, server CPU and memory per N.",
        epilog="Run it inside a private network namespace; see bench/README.md.",
    )
    add = parser.add_argument
    add("--n", type=positive_ints, default=DEFAULT_COUNTS, help="call counts (default 1,2,3,4,5)")
    add("--seconds", type=float, default=10.0, help="measuring window per N (default 10)")
    add("--warmup", type=float, default=4.0, help="seconds of flowing media before the window (default 4)")
    add("--path", type=path_names, default=("transcode", "forward"), help=f"server media path(s): {', '.join(PATHS)}")
    add("--client-procs", type=int, default=2, help="client processes; calls are dealt among them (default 2)")
    add(
        "--pin",
        choices=("none", "split"),
        default="none",
        help="none: all processes share every core (default); split: server on the first core, clients on the rest",
    )
    add(
        "--video",
        choices=("faces", "pattern"),
        default="faces",
        help="faces: a real face swaying on a wall (default); pattern: the scrolling test gradient",
    )
    add(
        "--send",
        choices=("canned", "encode"),
        default="canned",
        help="canned: clients replay VP8 encoded once, so they cost little (default); encode: clients encode live",
    )
    add(
        "--emotion-consent",
        action="store_true",
        help="customers agree to emotion cues, so their video is analysed (default: they are not asked)",
    )
    add(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="on a shared machine: per N, wait up to this many seconds for other processes to go quiet, and "
        "do the N again while they spoil its window (default 0: off)",
    )
    add(
        "--set",
        type=server_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting for the run (RAPPORT_NAME), e.g. --set emotion_cues=false; repeatable",
    )
    add("--logs", type=Path, help="copy the server's and clients' logs to this directory at the end")
    add("--median-fps", type=float, default=DEFAULT_MEDIAN_FPS, help="pass bar for the median direction (29)")
    add("--min-fps", type=float, default=DEFAULT_MIN_FPS, help="pass bar for the worst direction (27)")
    add("--json", action="store_true", help="print the results as JSON instead of a table")
    add("--worker", action="store_true", help=argparse.SUPPRESS)
    add("--url", help=argparse.SUPPRESS)
    add("--calls", help=argparse.SUPPRESS)
    add("--canned-dir", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        indices = [int(i) for i in args.calls.split(",")]
        canned = Path(args.canned_dir) if args.canned_dir else None
        password = os.environ[WORKER_PASSWORD_ENV]
        asyncio.run(work(args.url, indices, args.video, canned, password, args.emotion_consent))
        return 0
    if args.client_procs < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--client-procs must be at least 1, --seconds above 0 and --warmup at least 0")
    opts = Options(
        counts=args.n,
        paths=args.path,
        warmup_s=args.warmup,
        window_s=args.seconds,
        client_procs=args.client_procs,
        pin=args.pin,
        video=args.video,
        send=args.send,
        emotion_consent=args.emotion_consent,
        quiet_wait_s=args.quiet_wait,
        logs=args.logs,
        server_settings=tuple(args.set),
        rule=Rule(args.median_fps, args.min_fps),
        json=args.json,
    )
    return conduct(opts)


if __name__ == "__main__":
    sys.exit(main())
