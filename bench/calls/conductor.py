"""The conductor of the calls bench: a server per media path, client workers per N, the window, the verdict.

For each N in ``--n`` it drives N calls (a customer and a rep each, 640x480@30 VP8 video plus Opus audio, both
ways) through one server process and measures, over a window after a warm-up, the video frame rate every receiving
client decodes, the server's CPU and memory, and the clients' CPU. See bench/README.md.

Three kinds of process take part:

* the conductor (this module): makes a temporary data dir with one rep account per call, starts the server,
  primes it with one unmeasured call, starts client workers for each N, samples ``/proc`` (procstat.py) and
  prints the results (report.py); it removes everything it made on the way out;
* the server: ``python -m server.cli serve`` (bench/common.py), in its own session so its CPU and memory (all
  threads, and any process it spawns) can be read from ``/proc``;
* client workers (``python -m bench.calls.client``): each plays both sides of some of the calls with real aiortc
  peers from tests/support/clients.py, showing the pictures of sources.py.

Each server media path (``--path``) gets its own server process and the same runs: see ``PATHS`` in
bench/common.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import re
import secrets
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.calls import receive
from bench.calls.client import CALL_SETUP_TIMEOUT_S, FIRST_FRAME_TIMEOUT_S, SIDES, WORKER_PASSWORD_ENV, worker_command
from bench.calls.procstat import (
    CpuSample,
    CpuUse,
    cpu_split,
    rss_mb,
    session_cpu_seconds,
    session_members,
    session_status,
)
from bench.calls.report import (
    BUSY_OTHER_PCT,
    DEFAULT_MEDIAN_FPS,
    DEFAULT_MIN_FPS,
    NResult,
    Options,
    Rule,
    describe_setup,
    header,
    report_json,
    report_text,
    row,
)
from bench.calls.report import spoiled as is_spoiled
from bench.calls.sources import write_canned_loops
from bench.common import (
    NETNS_COMMAND,
    PATHS,
    CpuSet,
    ServerPath,
    ServerProcess,
    clean_env,
    create_reps,
    in_private_netns,
    machine,
    progress,
    source_revision,
    spawn,
    stop_process,
    tail,
)
from server.config import Settings

DEFAULT_COUNTS = (1, 2, 4, 6, 8, 10, 12, 16)  # 10: the transit goal is measured there
WORKER_STOP_TIMEOUT_S = 20.0
IDLE_CPU_PCT = 15.0  # the server counts as idle again between runs below this
IDLE_TIMEOUT_S = 10.0
STARTUP_IDLE_TIMEOUT_S = 90.0  # the server may load models (emotion cues) in a helper process at start
PRIME_S = 5.0  # the unmeasured first call


# --- The server, seen from /proc -------------------------------------------------------------------------------------


def wait_idle(server: ServerProcess, timeout_s: float = IDLE_TIMEOUT_S) -> float:
    """Wait until the server (with its helpers) has been idle for two seconds running: after start-up, which
    may load models in a helper process, and between runs while the last calls wind down. Returns the wait."""
    began = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - began < timeout_s:
        before = session_cpu_seconds(server.pid)
        time.sleep(1.0)
        quiet = quiet + 1 if 100 * (session_cpu_seconds(server.pid) - before) < IDLE_CPU_PCT else 0
    return time.monotonic() - began


def wait_quiet(server: ServerProcess, limit_s: float) -> float:
    """Wait (up to ``limit_s``) until the rest of the box uses under BUSY_OTHER_PCT; returns the seconds waited.

    On a shared machine this keeps other people's test runs out of the window; ``other%`` shows what is left.
    """
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        before = CpuSample.take(server.pid, [])
        time.sleep(1.0)
        use = CpuUse.between(before, CpuSample.take(server.pid, []))
        if use.other_pct < BUSY_OTHER_PCT:
            break
    return time.monotonic() - began


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
    """A client worker process (bench/calls/client.py): commands go in on stdin, JSON events come out on stdout."""

    def __init__(self, run: Run, indices: Sequence[int], log: Path) -> None:
        self.log_path = log
        consent = run.opts.emotion_consent or run.server.path.customers_consent
        command = worker_command(run.server.url, indices, run.opts.video, run.canned, consent, run.opts.receive)
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


# --- The server's transit histogram ----------------------------------------------------------------------------------

TRANSIT_BUCKET = re.compile(r'^rapport_transit_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.MULTILINE)


def scrape_transit(url: str) -> dict[float, float]:
    """The server's ``rapport_transit_seconds`` histogram from /metrics: cumulative count per upper bound (s).
    Empty if the scrape fails."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    return {float(bound): float(count) for bound, count in TRANSIT_BUCKET.findall(text)}


def transit_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The q-quantile (ms) of the frames counted between two scrapes, interpolated inside its bucket as
    Prometheus's histogram_quantile does; None without frames."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]  # still cumulative: frames of the window up to b
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    i = next(i for i, count in enumerate(counts) if count >= rank)
    lower, below = (bounds[i - 1], counts[i - 1]) if i else (0.0, 0.0)
    if math.isinf(bounds[i]):  # above the largest bound: all one can say is "at least"
        return 1000 * lower
    inside = counts[i] - below
    return 1000 * (lower + (bounds[i] - lower) * ((rank - below) / inside if inside else 1.0))


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

    def total(self, key: str) -> int:
        return round(sum(d for d, _ in self.deltas(key)))

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
            waited = wait_quiet(server, max(0.0, quiet_until - time.monotonic()))
            if waited > 1.5:
                progress(f"[{server.path.name}] waited {waited:.0f} s for other processes to quieten down")
        result = measure_once(run, n)
        result.spoiled_runs = spoiled
        wait_idle(server)
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
    settled = wait_idle(run.server, STARTUP_IDLE_TIMEOUT_S)
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
        transit_start = scrape_transit(server.url)
        cpu_start, start = CpuSample.take(server.pid, pids), Mark.take(workers)
        time.sleep(opts.window_s)
        cpu_end, end = CpuSample.take(server.pid, pids), Mark.take(workers)
        transit_end = scrape_transit(server.url)
        rss, threads = rss_mb(server.pid), session_status(server.pid, "Threads")
        processes = len(session_members(server.pid))
    result = summarize(server.path.name, opts, Window(n, start, end), CpuUse.between(cpu_start, cpu_end))
    result.server_rss_mb, result.server_rss_idle_mb, result.server_threads = rss, idle_rss, threads
    result.server_processes, result.setup_s, result.errors = processes, setup_s, errors
    result.transit_p50_ms = transit_quantile(transit_start, transit_end, 0.5)
    result.transit_p95_ms = transit_quantile(transit_start, transit_end, 0.95)
    return result


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
        video_gaps=window.total("video_gaps_to_{side}"),
        picture_checks_ok=window.total("video_checks_ok_to_{side}"),
        picture_checks_bad=window.total("video_checks_bad_to_{side}"),
        keyframe_requests=window.total("video_plis_to_{side}"),
    )


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
        progress(f"[{path.name}] server settled in {wait_idle(server, STARTUP_IDLE_TIMEOUT_S):.0f} s")
        run = Run(opts, server, password, workdir, client_cpus, canned)
        prime(run)
        for n in opts.counts:
            results.append(measure(run, n))
            progress(f"  {header()}\n  {row(results[-1])}")
            if not opts.every_n and not results[-1].holds and not is_spoiled(results[-1]):
                progress(f"[{path.name}] N={n} does not hold 30 fps: larger N skipped (--every-n measures them)")
                break
    return results


# --- The conductor ---------------------------------------------------------------------------------------------------


def _stop_on_signal(_signum: int, _frame: object) -> None:
    # Cleanup runs in finally blocks from here on; a second Ctrl-C must not cut it short.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def conduct(opts: Options) -> int:
    if not in_private_netns():
        progress(
            "python -m bench.calls needs a private network namespace with 127.0.0.2 on lo; run it as\n"
            f"  {NETNS_COMMAND} .venv/bin/python -m bench.calls ..."
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
        prog="python -m bench.calls",
        description="Concurrent 640x480@30 calls through one Rapport server: fps, server CPU and memory per N.",
        epilog="Run it inside a private network namespace; see bench/README.md.",
    )
    add = parser.add_argument
    add("--n", type=positive_ints, default=DEFAULT_COUNTS, help="call counts (default 1,2,4,6,8,10,12,16)")
    add("--seconds", type=float, default=10.0, help="measuring window per N (default 10)")
    add("--warmup", type=float, default=4.0, help="seconds of flowing media before the window (default 4)")
    add(
        "--path",
        type=path_names,
        default=("forward", "forward-cues", "transcode"),
        help=f"server media path(s): {', '.join(PATHS)} (default forward,forward-cues,transcode)",
    )
    add(
        "--receive",
        choices=receive.RECEIVE_MODES,
        default="light",
        help="light: clients count and check encoded frames, decoding one in 30 (default); full: they decode all",
    )
    add("--every-n", action="store_true", help="measure every N even after one fails to hold 30 fps")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        receive=args.receive,
        every_n=args.every_n,
        quiet_wait_s=args.quiet_wait,
        logs=args.logs,
        server_settings=tuple(args.set),
        rule=Rule(args.median_fps, args.min_fps),
        json=args.json,
    )
    return conduct(opts)


if __name__ == "__main__":
    sys.exit(main())
