"""Python clients that speak Rapport's signalling and media, for tests and benchmarks.

They play the customer's phone and the rep's console with real aiortc peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

_ids = itertools.count(1)


class PatternVideoTrack(VideoStreamTrack):
    """A moving test picture (or the given BGR frames, looped) at a steady rate."""

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        frames: Sequence[np.ndarray] | None = None,
        frame_for_time: Callable[[float], np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._frames = list(frames) if frames else None
        self._frame_for_time = frame_for_time
        self._count = 0
        self._start: float | None = None
        self.sent = 0
        y = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
        x = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        self._base = np.dstack(
            [
                np.broadcast_to(x, (height, width)),
                np.broadcast_to(y, (height, width)),
                np.full((height, width), 128, np.uint8),
            ]
        )

    def media_time(self) -> float:
        return self._count / self.fps

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self._count / self.fps
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = self._count / self.fps
        if self._frame_for_time is not None:
            image = self._frame_for_time(t)
        elif self._frames:
            image = self._frames[self._count % len(self._frames)]
        else:
            image = np.roll(self._base, self._count * 4, axis=1)
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = int(t * 90000)
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        self.sent += 1
        return frame


class ToneAudioTrack(AudioStreamTrack):
    """A 440 Hz tone in 20 ms frames, paced in real time."""

    def __init__(self, freq: float = 440.0) -> None:
        super().__init__()
        self.freq = freq
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        rate, n = 48000, 960
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._samples / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(n) + self._samples) / rate
        pcm = (np.sin(2 * math.pi * self.freq * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, rate)
        self._samples += n
        return frame


class FrameCounter:
    """Consumes a remote track, counting frames and remembering the last one."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.count = 0
        self.last: Any = None
        self.times: list[float] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await self.track.recv()
                self.count += 1
                self.last = frame
                self.times.append(time.monotonic())

    def fps(self, window_s: float = 2.0) -> float:
        now = time.monotonic()
        return sum(1 for t in self.times if now - t <= window_s) / window_s

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class SignalingError(Exception):
    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(f"{message.get('code')}: {message.get('message')}")
        self.code = message.get("code")
        self.message = message


class SignalingClient:
    """A WebSocket client for /ws/v1 with an inbox of received messages."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.http = session
        self.base_url = base_url.rstrip("/")
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.inbox: list[dict[str, Any]] = []
        self._new = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self.closed_code: int | None = None

    async def connect(self, **kwargs: Any) -> None:
        self.ws = await self.http.ws_connect(self.base_url.replace("http", "ws", 1) + "/ws/v1", **kwargs)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = msg.json()
                async with self._new:
                    self.inbox.append(data)
                    self._new.notify_all()
        self.closed_code = self.ws.close_code
        async with self._new:
            self._new.notify_all()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool] | str, timeout: float = 10.0, *, after: int = 0
    ) -> dict[str, Any]:
        """The first message from index ``after`` on that matches (a type name or a predicate)."""
        match = (lambda m: m.get("type") == predicate) if isinstance(predicate, str) else predicate

        async def find() -> dict[str, Any]:
            async with self._new:
                while True:
                    for m in self.inbox[after:]:
                        if match(m):
                            return m
                    if self.closed_code is not None:
                        raise ConnectionError(f"socket closed ({self.closed_code}) while waiting")
                    await self._new.wait()

        return await asyncio.wait_for(find(), timeout)

    async def request(self, message: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send with an id and wait for the reply or error that names it."""
        msg_id = f"r{next(_ids)}"
        await self.send({**message, "id": msg_id})
        reply = await self.wait_for(lambda m: m.get("reply_to") == msg_id, timeout)
        if reply.get("type") == "error":
            raise SignalingError(reply)
        return reply

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


class MediaClient:
    """One participant's peer connection: sends a picture and a tone, counts what comes back."""

    def __init__(self, video: MediaStreamTrack | None = None, audio: MediaStreamTrack | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = video or PatternVideoTrack()
        self.audio = audio or ToneAudioTrack()
        self.video_sender = self.pc.addTrack(self.video)
        self.audio_sender = self.pc.addTrack(self.audio)
        self.received: dict[str, FrameCounter] = {}
        self._got_track = asyncio.Event()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.received[track.kind] = FrameCounter(track)
            self._got_track.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        assert self.pc.localDescription is not None
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def negotiate(self, signaling: SignalingClient) -> None:
        reply = await signaling.request({"type": "offer", "sdp": await self.offer()})
        await self.accept_answer(reply["sdp"])

    def frames(self, kind: str) -> int:
        counter = self.received.get(kind)
        return counter.count if counter else 0

    async def wait_frames(self, kind: str, at_least: int, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.frames(kind) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.frames(kind)} {kind} frames after {timeout}s")
            await asyncio.sleep(0.05)
        return self.frames(kind)

    async def close(self) -> None:
        for counter in self.received.values():
            await counter.stop()
        await self.pc.close()


async def login(http: aiohttp.ClientSession, base_url: str, username: str, password: str) -> str:
    """Log a staff member in on this HTTP session; returns the CSRF token."""
    async with http.post(f"{base_url}/api/v1/auth/login", json={"username": username, "password": password}) as r:
        body = await r.json()
        if r.status != 200:
            raise RuntimeError(f"login failed: {r.status} {body}")
        return str(body["csrf_token"])


async def start_call(http: aiohttp.ClientSession, base_url: str, **fields: Any) -> dict[str, Any]:
    async with http.post(f"{base_url}/api/v1/calls", json=fields) as r:
        body: dict[str, Any] = await r.json()
        if r.status != 201:
            raise RuntimeError(f"start call failed: {r.status} {body}")
        return body


async def wrap_up(http: aiohttp.ClientSession, base_url: str, session_id: str, disposition: str = "resolved") -> None:
    """Save the rep's disposition for an ended call (``http`` is the rep's logged-in session)."""
    async with http.get(f"{base_url}/api/v1/me") as r:
        csrf = (await r.json())["csrf_token"]
    async with http.post(
        f"{base_url}/api/v1/sessions/{session_id}/wrapup",
        json={"disposition": disposition, "notes": ""},
        headers={"X-CSRF-Token": csrf},
    ) as r:
        assert r.status == 200, await r.text()
