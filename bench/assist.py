"""Supervisor assist: what a listening supervisor costs the server, and how soon a frustrated call reaches the floor.

1. **CPU per listener.** N calls (a customer and a rep each, real aiortc peers offering the pages' four sections,
   replaying canned 640x480@30 VP8 and sending Opus) go through one ``rapport serve`` process on the forwarding
   path, the default. The calls run in one client process, the supervisors in another, so no client's decoding
   is charged to the server. Windows alternate: no supervisor, then a supervisor listening to every call (each
   receives the customer's and the rep's audio and video, two of each, and sends its own camera and microphone
   as the supervisor page does), then none again, and so on. The server's CPU (``/proc``, the whole process
   session, as bench/calls does) is read over each window; a listener's cost is the difference divided by N.
2. **Flag to floor.** A server in this process with emotion cues from a fake detector that reads the frame's
   colour (tests/support/fakes.py: red is an angry face), a supervisor socket watching the floor, and one call
   whose customer's camera turns red, then grey, again and again. For every raised flag, until the supervisor's
   socket reads the first ``floor.update`` that lists the call with why "frustration": from the server raising
   it (its event sink, the webhooks', hears of the flag just after the floor push is due), from the rep's socket
   reading the ``emotion.update`` that raises it, and from the first red frame leaving for the encoder.

WebRTC needs 127.0.0.2 and no way out, so run it in a private network namespace::

    unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"' \\
        .venv/bin/python bench/assist.py            # about 2 minutes; --calls 2 --rounds 2 --flags 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

# `python bench/assist.py` puts bench/ first on sys.path; server/ and tests/ live at the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calls.client import (
    WORKER_PASSWORD_ENV,
    BenchCall,
    emit,
    prefer_vp8,
    stdin_reader,
)
from bench.calls.conductor import STARTUP_IDLE_TIMEOUT_S, Worker, wait_idle
from bench.calls.procstat import CpuSample, CpuUse
from bench.calls.report import BUSY_OTHER_PCT
from bench.calls.sources import picture_count, video_track, write_canned_loops
from bench.common import (
    NETNS_COMMAND,
    PATHS,
    ServerProcess,
    clean_env,
    create_staff,
    in_private_netns,
    machine,
    progress,
    rep_name,
    source_revision,
    spawn,
    tail,
)
from server.config import Settings
from tests.support.clients import MediaClient, SignalingClient, ToneAudioTrack, login, solid_frame
from tests.support.fakes import GREY, RED

VIDEO = "faces"
SETUP_TIMEOUT_S = 60.0
FLAG_TIMEOUT_S = 20.0
KINDS = ("video", "audio")


def supervisor_name(index: int) -> str:
    return f"bench-sup-{index + 1:03d}"


# --- Client workers (this file, run with --worker) -------------------------------------------------------------------


class PageCall(BenchCall):
    """A bench call whose two sides offer the four sections every page offers now (slot 1 for a third party)."""

    async def start(self) -> None:
        await self._rep_ready()
        self.session_id = await self._customer_waiting()
        await self.signaling["rep"].request({"type": "call.accept", "session_id": self.session_id})
        await self.signaling["customer"].wait_for("call.accepted")
        for side, picture in (("customer", 2 * self.index), ("rep", 2 * self.index + 1)):
            video = video_track(self.video, picture % picture_count(self.video), self.canned)
            self.media[side] = MediaClient(video=video, audio=ToneAudioTrack(), third_party=True)
            prefer_vp8(self.media[side])
        await asyncio.gather(*(self.media[side].negotiate(self.signaling[side]) for side in self.media))
        for media in self.media.values():
            await media.wait_frames("video", 1, SETUP_TIMEOUT_S)
        self.up = True


@dataclass
class Listener:
    """A supervisor who opens one call in listen mode, as the supervisor page does."""

    index: int
    url: str
    password: str
    canned: Path
    session_id: str
    media: MediaClient | None = None

    def __post_init__(self) -> None:
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.signaling = SignalingClient(self.http, self.url)

    async def start(self) -> None:
        await login(self.http, self.url, supervisor_name(self.index), self.password)
        await self.signaling.connect()
        await self.signaling.send({"type": "hello"})
        await self.signaling.wait_for("welcome")
        await self.signaling.request({"type": "assist.start", "session_id": self.session_id, "mode": "listen"})
        # The page sends its own camera and microphone on slot 0 in every mode; in listen the server drops them.
        picture = (100 + self.index) % picture_count(VIDEO)
        self.media = MediaClient(
            video=video_track(VIDEO, picture, self.canned), audio=ToneAudioTrack(660.0), third_party=True
        )
        prefer_vp8(self.media)
        await self.media.negotiate(self.signaling)
        for kind in KINDS:
            for slot in (0, 1):  # slot 0: the customer; slot 1: the rep
                await self.media.wait_frames(kind, 1, SETUP_TIMEOUT_S, slot=slot)

    def counters(self) -> dict[str, int]:
        assert self.media is not None
        return {f"{kind}_{slot}": self.media.frames(kind, slot) for kind in KINDS for slot in (0, 1)}

    async def close(self) -> None:
        if self.signaling.ws is not None and not self.signaling.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.signaling.request({"type": "assist.leave"}), 5.0)
        if self.media is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.media.close(), 5.0)
        with contextlib.suppress(Exception):
            await self.signaling.close()
        await self.http.close()


async def call_counters(call: BenchCall) -> dict[str, int]:
    return {f"{kind}_to_{side}": media.frames(kind) for side, media in call.media.items() for kind in KINDS}


async def work(args: argparse.Namespace) -> None:
    """A worker: set up its calls or listeners, report counters on "mark", hang up on "stop" (or stdin closing)."""
    password = os.environ[WORKER_PASSWORD_ENV]
    commands = await stdin_reader()
    calls: list[BenchCall] = []
    listeners: list[Listener] = []
    try:
        if args.worker == "calls":
            calls = [PageCall(i, args.url, password, VIDEO, args.canned) for i in range(args.count)]
            for call in calls:
                call.prepare()
                await asyncio.wait_for(call.start(), SETUP_TIMEOUT_S)
            emit("ready", session_ids=[c.session_id for c in calls])
        else:
            sessions = args.sessions.split(",")
            listeners = [Listener(i, args.url, password, args.canned, s) for i, s in enumerate(sessions)]
            for listener in listeners:
                await asyncio.wait_for(listener.start(), SETUP_TIMEOUT_S)
            emit("ready")
        while line := (await commands.readline()).decode().strip():
            if line == "mark":
                counts = [await call_counters(c) for c in calls] + [lsn.counters() for lsn in listeners]
                emit("mark", t=time.monotonic(), counts=counts)
            elif line == "stop":
                break
    finally:
        for listener in listeners:
            await listener.close()
        for call in calls:
            await call.close()
    emit("done")


class AssistWorker(Worker):
    """A worker process of this bench (the calls bench's pipe protocol: ready, mark, stop, done)."""

    def __init__(self, args: Sequence[str], password: str, log: Path) -> None:
        self.log_path = log
        command = [sys.executable, str(Path(__file__).resolve()), *args]
        with log.open("ab") as stderr:
            self.proc = spawn(
                command,
                env=clean_env(**{WORKER_PASSWORD_ENV: password}),
                cpus=None,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._buffer = b""

    def mark(self) -> tuple[float, list[dict[str, int]]]:
        self.send("mark")
        event = self.event(time.monotonic() + 10.0)
        return float(event["t"]), event["counts"]


@contextlib.contextmanager
def worker(args: Sequence[str], password: str, log: Path) -> Iterator[AssistWorker]:
    """A worker, hung up and ended on the way out (simply ended after an error)."""
    proc = AssistWorker(args, password, log)
    done = False
    try:
        yield proc
        done = True
    finally:
        proc.stop(hang_up=done)


# --- Part 1: CPU per listener ----------------------------------------------------------------------------------------


@dataclass
class CpuWindow:
    listeners: int
    server_pct: float
    clients_pct: float
    other_pct: float
    party_video_fps_min: float  # the worst decoding direction of every call's two parties
    listener_video_fps_min: float | None = None  # the worst of the listeners' video streams (customer's, rep's)
    listener_audio_fps_min: float | None = None  # ... and audio streams (50 = every 20 ms Opus frame)


def rates(before: list[dict[str, int]], after: list[dict[str, int]], seconds: float, prefix: str) -> list[float]:
    return [(b[k] - a[k]) / seconds for a, b in zip(before, after, strict=True) for k in a if k.startswith(prefix)]


def wait_quiet(server_sid: int, client_sids: Sequence[int], limit_s: float) -> None:
    """Up to ``limit_s``: until other processes (not ours) use under BUSY_OTHER_PCT of a core for a second."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        before = CpuSample.take(server_sid, client_sids)
        time.sleep(1.0)
        if CpuUse.between(before, CpuSample.take(server_sid, client_sids)).other_pct < BUSY_OTHER_PCT:
            return


def window(
    server: ServerProcess, calls: AssistWorker, listeners: AssistWorker | None, seconds: float, quiet_s: float
) -> CpuWindow:
    workers = [calls] + ([listeners] if listeners is not None else [])
    sids = [w.pid for w in workers]
    wait_quiet(server.pid, sids, quiet_s)
    cpu_start = CpuSample.take(server.pid, sids)
    marks_start = [w.mark() for w in workers]
    time.sleep(seconds)
    cpu_end = CpuSample.take(server.pid, sids)
    marks_end = [w.mark() for w in workers]
    cpu = CpuUse.between(cpu_start, cpu_end)
    (t0, c0), (t1, c1) = marks_start[0], marks_end[0]
    result = CpuWindow(
        listeners=0,
        server_pct=cpu.server_pct,
        clients_pct=cpu.clients_pct,
        other_pct=cpu.other_pct,
        party_video_fps_min=min(rates(c0, c1, t1 - t0, "video")),
    )
    if listeners is not None:
        (t0, c0), (t1, c1) = marks_start[1], marks_end[1]
        result.listeners = len(c0)
        result.listener_video_fps_min = min(rates(c0, c1, t1 - t0, "video"))
        result.listener_audio_fps_min = min(rates(c0, c1, t1 - t0, "audio"))
    return result


def listener_cpu(opts: argparse.Namespace, tmp: Path) -> list[CpuWindow]:
    """N calls through a server process; windows without and with a listener on every call, alternating."""
    password = secrets.token_urlsafe(18)
    data_dir = tmp / "data"
    accounts = [(rep_name(i), f"Bench Rep {i + 1}", "rep") for i in range(opts.calls)]
    accounts += [(supervisor_name(i), f"Bench Supervisor {i + 1}", "supervisor") for i in range(opts.calls)]
    create_staff(data_dir, accounts, password)
    canned = write_canned_loops(tmp / "canned", VIDEO)
    # Media only: no emotion analysis worker, no recording; the forwarding path (the default) pinned all the same.
    settings = (("emotion_cues", "false"), ("recording_policy", "never"))
    windows: list[CpuWindow] = []
    log = tmp / "server.log"
    try:
        with ServerProcess(PATHS["forward"], data_dir, log, None, settings) as server:
            progress(
                f"server pid {server.pid} on {server.url}; settled in {wait_idle(server, STARTUP_IDLE_TIMEOUT_S):.0f} s"
            )
            common = ["--url", server.url, "--canned", str(canned)]
            args = ["--worker", "calls", "--count", str(opts.calls), *common]
            with worker(args, password, tmp / "calls.log") as calls:
                ready = calls.event(time.monotonic() + SETUP_TIMEOUT_S * opts.calls)
                sessions = ",".join(ready["session_ids"])
                progress(f"{opts.calls} call(s) up; warming up {opts.warmup:g} s")
                time.sleep(opts.warmup)
                for r in range(opts.rounds):
                    windows.append(window(server, calls, None, opts.seconds, opts.quiet_wait))
                    progress(f"  round {r + 1}: no listener: server {windows[-1].server_pct:.1f}%")
                    args = ["--worker", "listeners", "--sessions", sessions, *common]
                    with worker(args, password, tmp / f"listeners-{r}.log") as listeners:
                        listeners.event(time.monotonic() + SETUP_TIMEOUT_S * opts.calls)
                        time.sleep(opts.warmup)
                        windows.append(window(server, calls, listeners, opts.seconds, opts.quiet_wait))
                    progress(f"  round {r + 1}: {opts.calls} listening: server {windows[-1].server_pct:.1f}%")
                    time.sleep(2.0)  # the supervisors' peers wind down before the next quiet window
    except BaseException:
        progress(f"the server's log ends:\n{tail(log, 30)}")
        for name in ("calls.log", "listeners-0.log"):
            progress(f"{name} ends:\n{tail(tmp / name, 20)}")
        raise
    return windows


# --- Part 2: flag to floor -------------------------------------------------------------------------------------------


class ColourCamera:
    """The customer's camera: grey (a neutral face to the fake detector) until told red (an angry one)."""

    def __init__(self) -> None:
        from tests.support.clients import PatternVideoTrack

        self.frames = {"grey": solid_frame(GREY, 320, 240), "red": solid_frame(RED, 320, 240)}
        self.colour = "grey"
        self.asked: str | None = None
        self.changed_at = 0.0  # time.monotonic() when the first frame of the asked colour went to the encoder
        self.track = PatternVideoTrack(width=320, height=240, frame_for_time=self._frame)

    def show(self, colour: str) -> None:
        self.asked = colour

    def _frame(self, _t: float) -> np.ndarray:
        if self.asked is not None:
            self.colour, self.asked, self.changed_at = self.asked, None, time.monotonic()
        return self.frames[self.colour]


@dataclass
class FlagRun:
    raised_to_floor_s: float  # the server raises the flag -> the supervisor reads the floor entry
    flag_to_floor_s: float  # the rep reads the raised flag -> the supervisor reads the floor entry
    frame_to_floor_s: float  # the first red frame goes to the encoder -> the supervisor reads the floor entry
    frame_to_flag_s: float


def lists_frustration(message: dict[str, Any], session_id: str) -> bool:
    if message.get("type") != "floor.update":
        return False
    return any(e["session_id"] == session_id and "frustration" in e["why"] for e in message["floor"]["attention"])


async def flag_to_floor(opts: argparse.Namespace, tmp: Path) -> list[FlagRun]:
    from tests.support.server import REP_AND_SUPERVISOR, running_with_cues

    settings = Settings(
        data_dir=tmp / "cues-data",
        create_demo_accounts=False,
        emotion_cues=True,
        recording_policy="never",
        compose_recordings=False,
    )
    runs: list[FlagRun] = []
    raised_at: list[float] = []
    async with running_with_cues(settings, "tests.support.fakes:ColourDetector", REP_AND_SUPERVISOR) as rapport:
        # When the server raises a flag: its event sink (webhooks) hears of it just after the floor push is due.
        center = rapport.center
        sink = center.on_event

        async def timed(event: str, data: dict[str, Any]) -> None:
            if event == "emotion.flag" and data.get("flag") == "raised":
                raised_at.append(time.monotonic())
            if sink is not None:
                await sink(event, data)

        center.on_event = timed
        http, _csrf = await rapport.staff_session("sup1")
        supervisor = SignalingClient(http, rapport.url)
        await supervisor.connect()
        await supervisor.send({"type": "hello"})
        await supervisor.wait_for("welcome")
        rep = await rapport.rep("rep1")
        customer, call = await rapport.customer(reason="complaint", emotion_consent=True)
        session_id = call["session_id"]
        await rep.request({"type": "call.accept", "session_id": session_id})
        camera = ColourCamera()
        customer_media = MediaClient(video=camera.track, audio=ToneAudioTrack(), third_party=True)
        rep_media = MediaClient(
            video=ColourCamera().track, audio=ToneAudioTrack(), third_party=True
        )  # grey: never analysed
        rapport.media += [customer_media, rep_media]
        await customer_media.negotiate(customer)
        await rep_media.negotiate(rep)
        await rep.wait_for("emotion.update", timeout=SETUP_TIMEOUT_S)
        try:
            for i in range(opts.flags):
                rep_at, sup_at = len(rep.inbox), len(supervisor.inbox)
                camera.show("red")
                raised = await rep.wait_for(
                    lambda m: m["type"] == "emotion.update" and m["flag"] == "raised", FLAG_TIMEOUT_S, after=rep_at
                )
                entry = await supervisor.wait_for(
                    lambda m: lists_frustration(m, session_id), FLAG_TIMEOUT_S, after=sup_at
                )
                floor_at, flag_at = supervisor.arrival_of(entry), rep.arrival_of(raised)
                runs.append(
                    FlagRun(
                        floor_at - raised_at[-1],
                        floor_at - flag_at,
                        floor_at - camera.changed_at,
                        flag_at - camera.changed_at,
                    )
                )
                progress(
                    f"  flag {i + 1}: raised -> floor {1000 * runs[-1].raised_to_floor_s:.1f} ms, "
                    f"rep's flag -> floor {1000 * runs[-1].flag_to_floor_s:.1f} ms, "
                    f"red frame -> floor {runs[-1].frame_to_floor_s:.2f} s"
                )
                # Calm again, and off the floor, before the next one.
                rep_at, sup_at = len(rep.inbox), len(supervisor.inbox)
                camera.show("grey")
                await rep.wait_for(
                    lambda m: m["type"] == "emotion.update" and m["flag"] == "cleared", FLAG_TIMEOUT_S, after=rep_at
                )
                await supervisor.wait_for(
                    lambda m: m["type"] == "floor.update" and not lists_frustration(m, session_id),
                    FLAG_TIMEOUT_S,
                    after=sup_at,
                )
                await asyncio.sleep(0.5)  # off the floor push's 4/s limit, as a flag out of the blue would be
        finally:
            await supervisor.close()
            await http.close()
    return runs


# --- The report ------------------------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def per_listener(windows: list[CpuWindow], calls: int) -> tuple[list[float], bool]:
    """Each round's added server CPU per listener (its listening window minus the window before it), and whether
    they are all from rounds where other processes kept quiet (else all rounds, spoiled ones too)."""
    rounds = list(zip(windows[::2], windows[1::2], strict=True))
    clean = [(b, w) for b, w in rounds if max(b.other_pct, w.other_pct) <= BUSY_OTHER_PCT]
    return [(w.server_pct - b.server_pct) / calls for b, w in (clean or rounds)], bool(clean)


def report(opts: argparse.Namespace, windows: list[CpuWindow], flags: list[FlagRun], info: dict[str, Any]) -> str:
    base = [w for w in windows if w.listeners == 0]
    listening = [w for w in windows if w.listeners > 0]
    base_pct = statistics.median(w.server_pct for w in base)
    listen_pct = statistics.median(w.server_pct for w in listening)
    added, clean = per_listener(windows, opts.calls)
    lines = [
        f"supervisor assist, server {info['server']}, {info['machine']['cpus']} cores, forward path, "
        f"{opts.calls} call(s), {opts.rounds} round(s) of {opts.seconds:g} s windows",
        "",
        "window        listeners  srv CPU%  party fps min  listener fps min (video/audio)  cli CPU%  other%",
    ]
    for w in windows:
        heard = "-" if w.listeners == 0 else f"{fmt(w.listener_video_fps_min)} / {fmt(w.listener_audio_fps_min)}"
        name = "listening" if w.listeners else "no listener"
        lines.append(
            f"{name:<13} {w.listeners:>9}  {w.server_pct:>8.1f}  {w.party_video_fps_min:>13.1f}  {heard:>30}"
            f"  {w.clients_pct:>8.0f}  {w.other_pct:>6.0f}"
        )
    rounds = ", ".join(f"{v:.1f}" for v in added)
    figures = [
        (f"server CPU, {opts.calls} call(s), no listener (% of a core)", f"{base_pct:.1f} (median of windows)"),
        (f"server CPU, {opts.calls} call(s), a listener on each", f"{listen_pct:.1f} (median of windows)"),
        (
            "added server CPU per listener (forwarding only)",
            f"{statistics.median(added):.1f} (median of rounds: {rounds}"
            f"{')' if clean else '; every round had other processes busy)'}",
        ),
        ("  for comparison: server CPU per call", f"{base_pct / opts.calls:.1f}"),
    ]
    if flags:
        raised_ms = [1000 * r.raised_to_floor_s for r in flags]
        flag_ms = [1000 * r.flag_to_floor_s for r in flags]
        frame_s = [r.frame_to_floor_s for r in flags]
        figures += [
            (
                "server raises the flag -> supervisor reads the floor",
                f"p50 {statistics.median(raised_ms):.1f} ms, max {max(raised_ms):.1f} ms (n={len(flags)})",
            ),
            (
                "rep reads the flag -> supervisor reads the floor",
                f"p50 {statistics.median(flag_ms):.1f} ms, max {max(flag_ms):.1f} ms (< 0: the floor came first)",
            ),
            (
                "red frame to the encoder -> supervisor reads the floor",
                f"p50 {statistics.median(frame_s):.2f} s, max {max(frame_s):.2f} s",
            ),
        ]
    lines += ["", f"{'figure':<56}value", *(f"{label:<56}{value}" for label, value in figures)]
    busy = [i + 1 for i, w in enumerate(windows) if w.other_pct > BUSY_OTHER_PCT]
    if busy:
        lines.append(f"note: other processes took over {BUSY_OTHER_PCT:g}% of a core in window(s) {busy}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--calls", type=int, default=2, help="concurrent calls, each with its own listener (default 2)")
    add("--rounds", type=int, default=3, help="no-listener/listening window pairs (default 3)")
    add("--seconds", type=float, default=10.0, help="measuring window (default 10)")
    add("--warmup", type=float, default=4.0, help="seconds of flowing media before each window (default 4)")
    add("--quiet-wait", type=float, default=60.0, help="before each window, wait up to this for other processes")
    add("--flags", type=int, default=10, help="frustration flags raised for the flag-to-floor figure (default 10)")
    add("--json", action="store_true", help="print JSON instead of the table")
    # A client worker's own options (the conductor starts it).
    add("--worker", choices=("calls", "listeners"), help=argparse.SUPPRESS)
    add("--url", help=argparse.SUPPRESS)
    add("--count", type=int, default=0, help=argparse.SUPPRESS)
    add("--sessions", help=argparse.SUPPRESS)
    add("--canned", type=Path, help=argparse.SUPPRESS)
    return parser


def main() -> int:
    opts = build_parser().parse_args()
    if opts.worker is not None:
        asyncio.run(work(opts))
        return 0
    if opts.calls < 1 or opts.rounds < 1 or opts.flags < 1:
        raise SystemExit("--calls, --rounds and --flags must be at least 1")
    if not in_private_netns():
        raise SystemExit(f"run inside a private network namespace with 127.0.0.2 on lo:\n  {NETNS_COMMAND} ...")
    info: dict[str, Any] = {"machine": machine(), "server": source_revision()}
    with tempfile.TemporaryDirectory(prefix="rapport-assist-") as name:
        tmp = Path(name)
        progress(f"CPU per listener: {opts.calls} call(s), forward path")
        windows = listener_cpu(opts, tmp)
        progress(f"flag to floor: {opts.flags} flags in one call, fake colour detector")
        flags = asyncio.run(flag_to_floor(opts, tmp))
    if opts.json:
        out = {**info, "options": {k: v for k, v in vars(opts).items() if k in ("calls", "rounds", "seconds", "flags")}}
        print(
            json.dumps({**out, "windows": [asdict(w) for w in windows], "flags": [asdict(f) for f in flags]}, indent=2)
        )
    else:
        print(report(opts, windows, flags, info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
