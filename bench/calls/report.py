"""What a run asks for (``Options``), what it found for each path and N (``NResult``), the pass rule, and how the
results are printed: the table with its verdict, or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.calls.procstat import CPUS, cpu_split
from bench.calls.sources import FPS, HEIGHT, WIDTH
from bench.common import PATHS

DEFAULT_MEDIAN_FPS = 29.0
DEFAULT_MIN_FPS = 27.0
BUSY_OTHER_PCT = 25.0  # more than this from other processes during a window: that row understates capacity


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
    emotion_consent: bool  # customers agree to emotion cues: their video is analysed (the forward-cues path too)
    receive: str  # light: clients count and check encoded frames, decoding one in 30; full: they decode every one
    every_n: bool  # go on to larger N after one fails
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
    # Light receive mode (zero in full mode): frames missing between frames that arrived, keyframes decoded and
    # checked against the picture the other side sends (ok, bad), keyframes the clients asked for.
    video_gaps: int = 0
    picture_checks_ok: int = 0
    picture_checks_bad: int = 0
    keyframe_requests: int = 0


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


@dataclass(frozen=True)
class Fit:
    """Server CPU% over N for one path: a least-squares line through the rows that held 30 fps."""

    path: str
    points: int
    per_call_pct: float | None  # the slope: server CPU (% of one core) each added call costs
    base_pct: float | None  # the intercept: the server with no call
    r2: float | None
    largest_n: int | None  # measured: the largest N holding 30 fps

    @property
    def calls_per_core(self) -> float | None:
        return 100 / self.per_call_pct if self.per_call_pct and self.per_call_pct > 0 else None


def fit(path: str, results: Sequence[NResult]) -> Fit:
    mine = [r for r in results if r.path == path]
    points = [(float(r.n), r.server_cpu_pct) for r in mine if r.holds]
    largest = largest_holding(mine)
    if len({n for n, _ in points}) < 2:
        return Fit(path, len(points), None, None, None, largest)
    mean_n = sum(n for n, _ in points) / len(points)
    mean_cpu = sum(c for _, c in points) / len(points)
    sxx = sum((n - mean_n) ** 2 for n, _ in points)
    slope = sum((n - mean_n) * (c - mean_cpu) for n, c in points) / sxx
    base = mean_cpu - slope * mean_n
    total = sum((c - mean_cpu) ** 2 for _, c in points)
    residual = sum((c - base - slope * n) ** 2 for n, c in points)
    return Fit(path, len(points), slope, base, 1 - residual / total if total > 0 else 1.0, largest)


def _num(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def fit_table(fits: Sequence[Fit]) -> list[str]:
    lines = [
        f"{'path':<13} {'CPU per call':>12} {'base':>6} {'R2':>5} {'points':>6} {'calls/core':>10} {'largest N':>9}",
    ]
    for f in fits:
        lines.append(
            f"{f.path:<13} {_num(f.per_call_pct, '.1f') + ' %':>12} {_num(f.base_pct, '.0f') + ' %':>6} "
            f"{_num(f.r2, '.2f'):>5} {f.points:>6} {_num(f.calls_per_core, '.1f'):>10} "
            f"{'none' if f.largest_n is None else f.largest_n:>9}"
        )
    return lines


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
    ("gaps", 5, lambda r: str(r.video_gaps)),
    ("pics ok/bad", 11, lambda r: f"{r.picture_checks_ok}/{r.picture_checks_bad}"),
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
    taken = (
        "clients count and check encoded frames and decode one in 30 (light)"
        if opts.receive == "light"
        else "clients decode every frame (full)"
    )
    box = info["machine"]
    settings = ", ".join(f"{name}={value}" for name, value in opts.server_settings) or "defaults"
    return [
        f"Rapport call capacity, {info['date']}: {box['cpus']} cores ({box['cpu_model']}); {where}",
        f"server code {info['source']}; settings: {settings}",
        f"per call: {WIDTH}x{HEIGHT}@{FPS} VP8 + Opus both ways; video '{opts.video}', {sender}; "
        f"clients in up to {opts.client_procs} process(es); warm-up {opts.warmup_s:g} s, window {opts.window_s:g} s; "
        f"customers {'agree to' if opts.emotion_consent else 'are not asked for'} emotion cues "
        "(on forward-cues they agree); " + taken,
        f"CPU% = share of one core (the box has {100 * CPUS}%); srv = the server and any process it spawned; "
        "loop% = the server's main (asyncio) thread alone",
    ]


def report_text(results: Sequence[NResult], opts: Options, info: dict[str, Any]) -> str:
    lines = [*describe_setup(opts, info), "", header(), *(row(r) for r in results), "", f"Rule: {opts.rule.describe()}"]
    lines += ["", "Server CPU per call = slope of a least-squares line of srv CPU% over the N that held 30 fps:"]
    lines += fit_table([fit(name, results) for name in opts.paths])
    lines.append("")
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
        "per_call": {
            name: {**asdict(f), "calls_per_core": f.calls_per_core} for name in opts.paths for f in [fit(name, results)]
        },
    }
    return json.dumps(document, indent=2, default=str)  # --logs is a Path
