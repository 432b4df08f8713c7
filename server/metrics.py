"""Prometheus metrics: calls, frame rates, server transit latency, CPU, refusals and event-loop lag.

Transit is measured per outgoing video frame, from the moment the server has the
frame (reassembled, and decoded on the transcoding path) to the moment its RTP
payloads are ready to go out (after encoding on the transcoding path). It is a
rolling summary over the last ``WINDOW_S`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import time
from collections import deque
from typing import Any

from aiohttp import web

from .config import Settings
from .http.security import is_loopback

WINDOW_S = 10.0
LAG_EVERY_S = 0.25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Rolling:
    """Samples of the last ``window_s`` seconds, with quantiles."""

    def __init__(self, window_s: float = WINDOW_S, limit: int = 200_000) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=limit)
        self._fresh: deque[float] = deque(maxlen=5000)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float, now: float | None = None) -> None:
        self._samples.append((now if now is not None else time.monotonic(), value))
        self._fresh.append(value)
        self.count += 1
        self.total += value

    def take_fresh(self) -> list[float]:
        """Values observed since the last call (a media worker reports them to the front door)."""
        values = list(self._fresh)
        self._fresh.clear()
        return values

    def quantile(self, q: float, now: float | None = None) -> float | None:
        cutoff = (now if now is not None else time.monotonic()) - self.window_s
        values = sorted(v for t, v in self._samples if t >= cutoff)
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]


class Metrics:
    def __init__(self) -> None:
        self.transit = Rolling()
        self.loop_lag = Rolling()
        self.refusals: dict[str, int] = {}
        self._lag_task: asyncio.Task[None] | None = None

    def refused(self, where: str) -> None:
        self.refusals[where] = self.refusals.get(where, 0) + 1

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
            self.loop_lag.observe(max(0.0, loop.time() - planned))


def require_metrics_access(request: web.Request, settings: Settings) -> None:
    """``/metrics`` names sessions: only with the ``metrics_token`` (Bearer) or from a loopback peer that is
    not a proxy passing a request on (a forwarding header means the real client is somewhere else)."""
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


def process_cpu_seconds() -> float:
    with open("/proc/self/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def render(metrics: Metrics, floor: dict[str, Any], media: list[dict[str, Any]], capacity: int, path: str) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float | None]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is not None:
                lines.append(f"{name}{labels} {value:.6g}")

    worker = f'{{worker="0",path="{path}"}}'
    metric("rapport_calls", "gauge", "Calls with media in this worker.", [(worker, floor["active"])])
    metric("rapport_waiting", "gauge", "Customers waiting in the queue.", [("", floor["waiting"])])
    metric("rapport_capacity_calls", "gauge", "Calls admitted before new ones are refused.", [(worker, capacity)])
    metric(
        "rapport_refusals_total",
        "counter",
        "Calls refused because the server was full.",
        [(f'{{where="{k}"}}', v) for k, v in sorted(metrics.refusals.items())] or [('{where="customer"}', 0)],
    )
    metric(
        "rapport_frames_out_total",
        "counter",
        "Video frames sent to participants.",
        [(f'{{session="{m["session_id"]}",to="{m["to"]}"}}', m["video_out"]) for m in media],
    )
    metric(
        "rapport_frames_in_total",
        "counter",
        "Video frames received from participants.",
        [(f'{{session="{m["session_id"]}",from="{m["from"]}"}}', m["video_in"]) for m in media],
    )
    quantiles: list[tuple[str, float | None]] = [
        (f'{{quantile="{q}"}}', metrics.transit.quantile(q)) for q in (0.5, 0.95, 0.99)
    ]
    metric(
        "rapport_transit_seconds",
        "summary",
        f"Server transit of video frames (frame in to RTP out), last {WINDOW_S:g} s.",
        [*quantiles, ("_count", None)],
    )
    lines.append(f"rapport_transit_seconds_count {metrics.transit.count}")
    lines.append(f"rapport_transit_seconds_sum {metrics.transit.total:.6g}")
    metric(
        "rapport_event_loop_lag_seconds",
        "summary",
        f"How late the event loop runs timers, last {WINDOW_S:g} s.",
        [(f'{{quantile="{q}"}}', metrics.loop_lag.quantile(q)) for q in (0.5, 0.99)],
    )
    metric("process_cpu_seconds_total", "counter", "CPU time of the server process.", [("", process_cpu_seconds())])
    return "\n".join(lines) + "\n"


def measure_transit(sender: Any, track: Any, rolling: Rolling) -> None:
    """Time each frame from the feed to its RTP payloads (wraps this sender's private step)."""
    original = sender._next_encoded_frame

    async def timed(codec: Any) -> Any:
        result = await original(codec)
        if result is not None and track.last_in is not None:
            rolling.observe(time.monotonic() - track.last_in)
        return result

    sender._next_encoded_frame = timed
