"""Prometheus metrics with ``prometheus_client``: one registry per app, bounded labels only.

Every label value comes from a fixed set (message types, error codes, sides, statuses): never a
session id, so a busy server's scrape stays the same size however many calls it has carried.

Transit is measured per outgoing video frame, from the moment the server has the frame
(reassembled, and decoded on the transcoding path) to the moment its RTP payloads are ready to
go out (after encoding on the transcoding path). Media workers run in other processes: each
counts its frames into :class:`BucketCounts` and ships the counts since its last report to the
front door, which adds them to the one ``rapport_transit_seconds`` histogram.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .config import Settings
from .http.security import is_loopback

LAG_EVERY_S = 0.25
LAG_WINDOW_S = 10.0
# Fine where forwarding lives (0.5 ms steps to 10 ms), coarser up to where transcoding under load goes.
TRANSIT_BUCKETS: tuple[float, ...] = (
    *(round(0.0005 * step, 4) for step in range(1, 21)),
    0.0125,
    0.015,
    0.0175,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
)
# Handling one signalling message: a ping is microseconds, an offer's negotiation can take a second.
SIGNALLING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIDES = ("customer", "rep")
REP_STATUSES = ("available", "away", "busy", "wrap_up")
ENDED_STATES = ("ended", "abandoned", "interrupted")
# The protocol's error codes; anything else is counted as "other" so a label can never grow.
ERROR_CODES = frozenset(
    {
        "already_taken",
        "at_capacity",
        "bad_json",
        "bad_message",
        "bad_sdp",
        "chat_full",
        "customer_absent",
        "forbidden",
        "internal",
        "negotiation_in_progress",
        "not_authenticated",
        "not_available",
        "not_in_call",
        "rate_limited",
        "rep_unavailable",
        "session_not_found",
        "snapshot_pending",
        "token_invalid",
        "too_large",
        "unknown_type",
        "wrap_up_required",
    }
)


class BucketCounts:
    """Observations in fixed buckets (the last one is +Inf) and their sum; cheap to ship between processes."""

    def __init__(self, bounds: tuple[float, ...] = TRANSIT_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def take(self) -> dict[str, Any]:
        """The counts since the last take, for the wire (a media worker's report); starts afresh."""
        taken = {"counts": self.counts, "sum": self.total}
        self.counts, self.total = [0] * (len(self.bounds) + 1), 0.0
        return taken

    def add(self, taken: dict[str, Any]) -> None:
        """Adds what a worker took; a report of another shape is refused whole."""
        counts, total = taken["counts"], float(taken["sum"])
        if len(counts) != len(self.counts) or not all(isinstance(c, int) and c >= 0 for c in counts):
            raise ValueError("transit counts do not match this server's buckets")
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, counts, strict=True)]
        self.total += total


class LiveState(Protocol):
    """What the call centre shows the scrape (it is read at scrape time, never copied)."""

    reps: dict[int, Any]

    @property
    def capacity(self) -> int: ...

    def floor(self) -> dict[str, Any]: ...

    def media_stats(self) -> list[dict[str, Any]]: ...


class _Collected:
    """Families read at scrape time: the transit histogram, the call centre's gauges and the frame counters."""

    def __init__(self, transit: BucketCounts) -> None:
        self.transit = transit
        self.live: LiveState | None = None
        self.media_path = "forward"
        # Frames of calls that have ended, so the counters keep counting up after a call goes.
        self.frames_in_retired = dict.fromkeys(SIDES, 0)
        self.frames_out_retired = dict.fromkeys(SIDES, 0)
        # Asyncio tasks of other processes (media workers), by a bounded process name; read at scrape time.
        self.process_tasks: Callable[[], dict[str, int]] | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> Iterator[Metric]:
        worker = ["worker", "path"]
        calls = GaugeMetricFamily("rapport_calls", "Calls with media in this server.", labels=worker)
        capacity = GaugeMetricFamily(
            "rapport_capacity_calls", "Calls admitted before new ones are refused.", labels=worker
        )
        waiting = GaugeMetricFamily("rapport_waiting", "Customers waiting in the queue.")
        reps = GaugeMetricFamily(
            "rapport_reps",
            "Reps the call centre has seen since it started, by status (a rep who left is away).",
            labels=["status"],
        )
        frames_in = CounterMetricFamily(
            "rapport_frames_in", "Video frames received from participants.", labels=["from"]
        )
        frames_out = CounterMetricFamily("rapport_frames_out", "Video frames sent to participants.", labels=["to"])
        transit = HistogramMetricFamily(
            "rapport_transit_seconds", "Server transit of video frames (frame in to RTP out), all media workers."
        )
        tasks = GaugeMetricFamily(
            "rapport_asyncio_tasks",
            "Asyncio tasks alive, per process: this one (front) and each media worker (as of its last report).",
            labels=["process"],
        )
        if with_samples:
            self._sample_transit(transit)
            self._sample_tasks(tasks)
            if self.live is not None:
                labels = ["0", self.media_path]
                floor = self.live.floor()
                calls.add_metric(labels, floor["active"])
                capacity.add_metric(labels, self.live.capacity)
                waiting.add_metric([], floor["waiting"])
                statuses = dict.fromkeys(REP_STATUSES, 0)
                for rep in self.live.reps.values():
                    if rep.status in statuses:
                        statuses[rep.status] += 1
                for status, count in statuses.items():
                    reps.add_metric([status], count)
                received, sent = dict(self.frames_in_retired), dict(self.frames_out_retired)
                for row in self.live.media_stats():
                    received[row["from"]] += row["video_in"]
                    sent[row["to"]] += row["video_out"]
                for side in SIDES:
                    frames_in.add_metric([side], received[side])
                    frames_out.add_metric([side], sent[side])
        yield from (calls, capacity, waiting, reps, frames_in, frames_out, transit, tasks)

    def _sample_tasks(self, family: GaugeMetricFamily) -> None:
        with contextlib.suppress(RuntimeError):  # scraped outside an event loop (a test's registry): none to count
            family.add_metric(["front"], len(asyncio.all_tasks()))
        if self.process_tasks is not None:
            for process, count in sorted(self.process_tasks().items()):
                family.add_metric([process], count)

    def _sample_transit(self, family: HistogramMetricFamily) -> None:
        counts = self.transit.counts
        cumulative = list(accumulate(counts))
        buckets = [
            (floatToGoString(bound), float(n)) for bound, n in zip(self.transit.bounds, cumulative, strict=False)
        ]
        family.add_metric([], [*buckets, ("+Inf", float(cumulative[-1]))], self.transit.total)


class Metrics:
    """The app's registry and every metric in it; the call centre and the signalling endpoint record into it."""

    def __init__(self) -> None:
        # Its own registry, not prometheus_client's global one: several apps in one process must not collide.
        self.registry = CollectorRegistry()
        self.transit = BucketCounts()
        self._collected = _Collected(self.transit)
        self.registry.register(self._collected)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory, open fds
        self.signalling = Histogram(
            "rapport_signalling_seconds",
            "Time to handle one signalling message, by message type (unknown types are 'other').",
            ["type"],
            buckets=SIGNALLING_BUCKETS,
            registry=self.registry,
        )
        self.signalling_errors = Counter(
            "rapport_signalling_errors",
            "Error replies sent on the WebSocket, by code.",
            ["code"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "rapport_refusals", "Calls refused because the server was full.", ["where"], registry=self.registry
        )
        self.refusals.labels("customer")  # shown as 0 before the first refusal
        self.calls_answered = Counter(
            "rapport_calls_answered", "Calls a rep accepted and the server opened media for.", registry=self.registry
        )
        self.calls_ended = Counter(
            "rapport_calls_ended", "Calls that ended, by their final state.", ["state"], registry=self.registry
        )
        self.loop_lag = Gauge(
            "rapport_event_loop_lag_seconds",
            f"How late the event loop ran a timer: the worst of the last {LAG_WINDOW_S:g} s.",
            registry=self.registry,
        )
        self._lags: deque[float] = deque(maxlen=int(LAG_WINDOW_S / LAG_EVERY_S))
        self._lag_task: asyncio.Task[None] | None = None

    def watch(self, live: LiveState, media_path: str) -> None:
        """The call centre whose calls, queue and reps the gauges show."""
        self._collected.live, self._collected.media_path = live, media_path

    def watch_processes(self, tasks: Callable[[], dict[str, int]]) -> None:
        """Where the other processes' asyncio task counts come from (the media workers' last reports)."""
        self._collected.process_tasks = tasks

    def refused(self, where: str) -> None:
        self.refusals.labels(where).inc()

    def handled(self, message_type: str, seconds: float) -> None:
        """``message_type`` must come from the protocol's own set (the endpoint passes "other" otherwise)."""
        self.signalling.labels(message_type).observe(seconds)

    def error_sent(self, code: str) -> None:
        self.signalling_errors.labels(code if code in ERROR_CODES else "other").inc()

    def call_ended(self, state: str, media_stats: dict[str, dict[str, Any]] | None) -> None:
        """A call left the centre: its state, and its media's last frame counts so the counters keep them."""
        self.calls_ended.labels(state if state in ENDED_STATES else "other").inc()
        for side in SIDES:
            stats = (media_stats or {}).get(side, {})
            self._collected.frames_in_retired[side] += int(stats.get("video_in", 0))
            self._collected.frames_out_retired[side] += int(stats.get("video_out", 0))

    async def start(self) -> None:
        self._lag_task = asyncio.create_task(self._watch_loop(), name="loop-lag")

    async def aclose(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            planned = loop.time() + LAG_EVERY_S
            await asyncio.sleep(LAG_EVERY_S)
            self._lags.append(max(0.0, loop.time() - planned))
            self.loop_lag.set(max(self._lags))


METRICS = web.AppKey("metrics", Metrics)


def require_metrics_access(request: web.Request, settings: Settings) -> None:
    """``/metrics`` shows how busy the server is: only with the ``metrics_token`` (Bearer) or from a loopback
    peer that is not a proxy passing a request on (a forwarding header means the real client is somewhere else)."""
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if header:
        expected = settings.metrics_token
        if kind.lower() == "bearer" and expected and hmac.compare_digest(token.strip().encode(), expected.encode()):
            return
        raise web.HTTPUnauthorized(text="wrong metrics token", headers={"WWW-Authenticate": "Bearer"})
    forwarded = any(name in request.headers for name in ("X-Forwarded-For", "Forwarded", "X-Real-IP"))
    if is_loopback(request.remote) and not forwarded:
        return
    if settings.metrics_token:
        raise web.HTTPUnauthorized(
            text="send the metrics token: Authorization: Bearer <metrics_token>", headers={"WWW-Authenticate": "Bearer"}
        )
    raise web.HTTPForbidden(text="metrics are served to loopback only; set metrics_token to read them from elsewhere")


def measure_transit(sender: Any, track: Any, counts: BucketCounts) -> None:
    """Time each frame from the feed to its RTP payloads (wraps this sender's private step)."""
    original = sender._next_encoded_frame

    async def timed(codec: Any) -> Any:
        result = await original(codec)
        if result is not None and track.last_in is not None:
            counts.observe(time.monotonic() - track.last_in)
        return result

    sender._next_encoded_frame = timed
