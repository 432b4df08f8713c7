"""A client worker of the calls bench: plays both sides of some calls with real aiortc peers.

The conductor starts it as ``python -m bench.calls.client`` (``worker_command``) and talks to it over pipes:
it reads commands on stdin (``mark``: report every call's counters; ``stop``: hang up and exit) and writes one JSON
event a line on stdout (``ready``, ``mark``, ``done``). The reps' password comes in the environment, not argv.

``--receive light`` (the default) counts and checks the encoded frames each client receives and decodes one in 30
(receive.py, which lists the aiortc internals it relies on); ``--receive full`` decodes every frame, as a browser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCRtpSender

from bench.calls import receive
from bench.calls.sources import (
    CannedAudioTrack,
    canned_tone,
    image_source,
    picture_count,
    read_canned_loop,
    video_track,
)
from bench.common import rep_name
from tests.support.clients import MediaClient, SignalingClient, ToneAudioTrack, login, start_call, wrap_up

SIDES = ("customer", "rep")
CALL_SETUP_TIMEOUT_S = 30.0
FIRST_FRAME_TIMEOUT_S = 20.0
WORKER_PASSWORD_ENV = "RAPPORT_BENCH_PASSWORD"
PROFILE_ENV = "BENCH_CLIENT_PROFILE"  # a directory: each worker writes its cProfile there (client-<pid>.prof)
_PROFILE: list[cProfile.Profile] = []


def worker_command(
    url: str, indices: Sequence[int], video: str, canned: Path | None, emotion_consent: bool, receive_mode: str
) -> list[str]:
    """The command line of a worker for calls ``indices`` (see ``main``)."""
    command = [sys.executable, "-m", "bench.calls.client", "--url", url]
    command += ["--calls", ",".join(map(str, indices)), "--video", video, "--receive", receive_mode]
    if canned is not None:
        command += ["--canned-dir", str(canned)]
    if emotion_consent:
        command += ["--emotion-consent"]
    return command


def prefer_vp8(media: MediaClient) -> None:
    """Offer VP8 only (aiortc would also offer H.264): the benchmark is about VP8, and canned frames are VP8."""
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    vp8 = [c for c in capabilities if c.mimeType.lower() in ("video/vp8", "video/rtx")]
    for transceiver in media.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(vp8)


def customer_address(index: int) -> str:
    """A loopback source address per customer, as if each were a different phone (POST /calls is limited per
    address)."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


async def _quietly(awaitable: Any, timeout: float = 5.0) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, timeout)


@dataclass
class BenchCall:
    """One call: a rep (logged in, available) and a customer, both with aiortc media through the server."""

    index: int
    url: str
    password: str
    video: str
    canned: Path | None
    emotion_consent: bool = False
    receive_mode: str = "light"
    media: dict[str, MediaClient] = field(default_factory=dict, init=False)
    lights: dict[str, dict[str, receive.LightReceiver]] = field(default_factory=dict, init=False)  # per side, kind
    up: bool = field(default=False, init=False)
    session_id: str | None = field(default=None, init=False)
    timings: dict[str, float] = field(default_factory=dict, init=False)  # seconds per setup phase

    def __post_init__(self) -> None:
        self.rep_http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.customer_http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(customer_address(self.index), 0))
        )
        self.signaling = {
            "rep": SignalingClient(self.rep_http, self.url),
            "customer": SignalingClient(self.customer_http, self.url),
        }
        self._lap_at = time.monotonic()

    def picture(self, side: str) -> int:
        return (2 * self.index + SIDES.index(side)) % picture_count(self.video)

    def other(self, side: str) -> str:
        return SIDES[1 - SIDES.index(side)]

    def prepare(self) -> None:
        """Ready this call's pictures now, before any media flows."""
        for side in SIDES:
            if self.canned is not None:
                read_canned_loop(self.canned, self.video, self.picture(side))
                canned_tone()
            else:
                image_source(self.video, self.picture(side)).prepare()
        if self.receive_mode == "light":
            receive.reference_thumbnails(self.video)

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
            audio = CannedAudioTrack() if self.canned is not None else ToneAudioTrack()
            self.media[side] = MediaClient(video=video, audio=audio)
            prefer_vp8(self.media[side])
            if self.receive_mode == "light":
                receivers = [(t.kind, t.receiver) for t in self.media[side].pc.getTransceivers()]
                expected = receive.Expected.of(self.video, self.picture(self.other(side)))
                self.lights[side] = receive.install(receivers, expected)
        await asyncio.gather(*(self.media[side].negotiate(self.signaling[side]) for side in SIDES))
        self._lap("negotiate")
        for side in SIDES:
            await self.wait_first_frame(side)
        self._lap("first_frames")
        self.up = True

    async def wait_first_frame(self, side: str) -> None:
        if self.receive_mode == "full":
            await self.media[side].wait_frames("video", 1, FIRST_FRAME_TIMEOUT_S)
            return
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        while self.lights[side]["video"].frames < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no video frame reached the {side} in {FIRST_FRAME_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)

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
        """Per side: frames received (decoded, or in light mode counted), video packets received and lost, video
        bytes sent; in light mode also keyframes, frames missing between frames, pictures checked ok and bad."""
        out: dict[str, int] = {}
        for side, media in self.media.items():
            if side in self.lights:
                for kind, light in self.lights[side].items():
                    for name, value in light.counters().items():
                        out[f"{kind}_{name}_to_{side}"] = value
            else:
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
        for lights in self.lights.values():
            await _quietly(receive.stop(lights))
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
    url: str,
    indices: Sequence[int],
    video: str,
    canned: Path | None,
    password: str,
    emotion_consent: bool = False,
    receive_mode: str = "light",
) -> None:
    """The worker: set the calls up, report counters on "mark", hang up on "stop" (or when stdin closes)."""
    commands = await stdin_reader()
    calls = [BenchCall(i, url, password, video, canned, emotion_consent, receive_mode) for i in indices]
    try:
        began = time.monotonic()
        for call in calls:
            call.prepare()
        prepare_s = round(time.monotonic() - began, 2)
        errors = await start_calls(calls)
        timings = {str(c.index): c.timings for c in calls}
        emit("ready", up=[c.index for c in calls if c.up], errors=errors, prepare_s=prepare_s, timings=timings)
        bad_logged = 0
        while line := (await commands.readline()).decode().strip():
            if line == "mark":
                now = time.monotonic()
                emit("mark", t=now, calls={str(c.index): await c.counters() for c in calls if c.up})
                bad = [
                    f"call {c.index + 1}, to {side}: {why}"
                    for c in calls
                    for side, lights in c.lights.items()
                    for why in lights["video"].bad
                ]
                for why in bad[bad_logged:]:
                    print(f"picture check failed: {why}", file=sys.stderr, flush=True)
                bad_logged = len(bad)
            elif line == "stop":
                break
    finally:
        for call in calls:
            await call.close()
    if _PROFILE:  # before "done": the conductor ends the process soon after it
        _PROFILE[0].disable()
        _PROFILE[0].dump_stats(Path(os.environ[PROFILE_ENV]) / f"client-{os.getpid()}.prof")
    emit("done")


def call_indices(text: str) -> list[int]:
    try:
        return [int(i) for i in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of call indices: {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.calls.client",
        description="A client worker of the calls bench; the conductor (python -m bench.calls) starts it.",
    )
    parser.add_argument("--url", required=True, help="the server")
    parser.add_argument("--calls", type=call_indices, required=True, help="call indices, e.g. 0,2,4")
    parser.add_argument("--video", choices=("faces", "pattern"), default="faces")
    parser.add_argument("--canned-dir", type=Path, help="the conductor's VP8 loops (--send canned)")
    parser.add_argument("--emotion-consent", action="store_true")
    parser.add_argument("--receive", choices=receive.RECEIVE_MODES, default="light")
    args = parser.parse_args(argv)
    password = os.environ[WORKER_PASSWORD_ENV]
    job = work(args.url, args.calls, args.video, args.canned_dir, password, args.emotion_consent, args.receive)
    if os.environ.get(PROFILE_ENV):
        _PROFILE.append(cProfile.Profile())
        _PROFILE[0].enable()
    asyncio.run(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
