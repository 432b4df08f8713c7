"""Python clients that speak Rapport's signalling and media, for tests and benchmarks.

They play the customer's phone and the rep's console with real aiortc peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import math
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.rtp import RtpPacket, is_rtcp
from aiortc.sdp import SessionDescription
from av import AudioFrame, VideoFrame

from server.media.healing import give_up_on_lost_packets

_ids = itertools.count(1)


@dataclass(frozen=True)
class Identity:
    """What one participant's camera and microphone send, so a receiver can tell whose media it got.

    Solid colours survive 4:2:0 chroma subsampling and VP8/H.264 at any bitrate; the tones are an
    octave apart, far beyond Opus's smearing.
    """

    name: str
    bgr: tuple[int, int, int]
    tone_hz: float


CUSTOMER = Identity("customer", (40, 40, 200), 440.0)  # red-ish, A4
REP = Identity("rep", (200, 90, 30), 880.0)  # blue-ish, A5
SUPERVISOR = Identity("supervisor", (40, 190, 40), 660.0)  # green, E5
COLOUR_TOLERANCE = 35.0  # per BGR channel, after a lossy codec round trip


def solid_frame(bgr: tuple[int, int, int], width: int = 640, height: int = 480) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = bgr
    return frame


def mean_bgr(image: np.ndarray) -> tuple[float, float, float]:
    b, g, r = (float(v) for v in image.reshape(-1, 3).mean(axis=0))
    return b, g, r


def colour_matches(seen: Sequence[float], expected: Sequence[float], tolerance: float = COLOUR_TOLERANCE) -> bool:
    return max(abs(a - b) for a, b in zip(seen, expected, strict=True)) <= tolerance


def whose_colour(seen: Sequence[float]) -> str:
    """``customer``, ``rep`` or ``nobody``: for messages that say what a receiver got instead."""
    for identity in (CUSTOMER, REP, SUPERVISOR):
        if colour_matches(seen, identity.bgr):
            return identity.name
    return "nobody"


def mono_samples(frame: AudioFrame) -> np.ndarray:
    """One audio frame as a mono float array (packed or planar, any channel count)."""
    data = frame.to_ndarray().astype(np.float32)
    if frame.format.is_planar:
        return data.mean(axis=0)
    return data.reshape(-1, len(frame.layout.channels)).mean(axis=1)


def dominant_frequency(samples: np.ndarray, rate: int = 48_000) -> float:
    """The strongest frequency in ``samples`` (Hz); 0.0 for silence."""
    if len(samples) < 256 or float(np.abs(samples).max()) < 1e-6:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def tone_matches(hz: float, expected: float, tolerance: float = 15.0) -> bool:
    return abs(hz - expected) <= tolerance


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


class SwitchingVideoTrack(PatternVideoTrack):
    """Shows ``before(t)`` until :meth:`switch`, then ``after(t)``.

    ``switched_at`` is the ``time.monotonic()`` at which the first ``after`` frame went to the sender.
    """

    def __init__(
        self, before: Callable[[float], np.ndarray], after: Callable[[float], np.ndarray], fps: int = 30
    ) -> None:
        super().__init__(fps=fps, frame_for_time=self._picture)
        self._before, self._after = before, after
        self._switch_asked = False
        self.switched_at: float | None = None
        self.switched_media_time: float | None = None

    def switch(self) -> None:
        self._switch_asked = True

    def _picture(self, t: float) -> np.ndarray:
        if not self._switch_asked:
            return self._before(t)
        if self.switched_at is None:
            self.switched_at, self.switched_media_time = time.monotonic(), t
        return self._after(t)


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

    AUDIO_KEPT = 50  # the last second of audio, for telling tones apart

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.count = 0
        self.last: Any = None
        self.times: list[float] = []
        self.audio: deque[np.ndarray] = deque(maxlen=self.AUDIO_KEPT)
        self.sample_rate = 48_000
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await self.track.recv()
                self.count += 1
                self.last = frame
                self.times.append(time.monotonic())
                if isinstance(frame, AudioFrame):
                    self.audio.append(mono_samples(frame))
                    self.sample_rate = frame.sample_rate

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
        # time.monotonic() at which each inbox message was read off the socket
        self.arrived_at: list[float] = []
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
                arrived = time.monotonic()
                async with self._new:
                    self.inbox.append(data)
                    self.arrived_at.append(arrived)
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

    def arrival_of(self, message: dict[str, Any]) -> float:
        """When ``message`` (an inbox entry) arrived, on the ``time.monotonic()`` clock."""
        return next(t for m, t in zip(self.inbox, self.arrived_at, strict=True) if m is message)

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


async def welcomed(http: aiohttp.ClientSession, base_url: str, token: str | None = None) -> SignalingClient:
    """A socket that said hello and was welcomed: as the staff member ``http`` is logged in as, or with ``token``
    as that call's customer."""
    client = SignalingClient(http, base_url)
    await client.connect()
    await client.send({"type": "hello"} if token is None else {"type": "hello", "token": token})
    await client.wait_for("welcome")
    return client


class MediaClient:
    """One participant's peer connection: sends a picture and a tone, counts what comes back."""

    def __init__(
        self,
        video: MediaStreamTrack | None = None,
        audio: MediaStreamTrack | None = None,
        *,
        identity: Identity | None = None,
        heal_lost_video: bool = False,
        third_party: bool = False,
    ) -> None:
        # With an identity: its colour and its tone, unless a track is given.
        self.identity = identity
        if video is None and identity is not None:
            video = PatternVideoTrack(frames=[solid_frame(identity.bgr)])
        if audio is None and identity is not None:
            audio = ToneAudioTrack(identity.tone_hz)
        self.video = video or PatternVideoTrack()
        self.audio = audio or ToneAudioTrack()
        self.heal_lost_video = heal_lost_video
        # As the pages do (docs/protocol.md, "Supervisor assist"): a second audio and video section, receive
        # only, for the third party; what arrives there is counted in ``third``.
        self.third_party = third_party
        self.received: dict[str, FrameCounter] = {}
        self.third: dict[str, FrameCounter] = {}
        self._got_track = asyncio.Event()
        # media.restart: the server moved the call's media, so this client offers again on a new connection.
        self.restarts = 0
        self.restart_errors: list[str] = []
        self._negotiation = asyncio.Lock()
        self._signaling: SignalingClient | None = None
        self._follower: asyncio.Task[None] | None = None
        self.pc = self._new_pc()

    def _new_pc(self) -> RTCPeerConnection:
        # Max-bundle with a third-party slot, as browsers bundle (aiortc's "balanced" leaves a second section of
        # a kind on a transport that is never connected).
        policy = RTCBundlePolicy.MAX_BUNDLE if self.third_party else RTCBundlePolicy.BALANCED
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=policy))
        self.video_sender = pc.addTrack(self.video)
        self.audio_sender = pc.addTrack(self.audio)
        if self.third_party:
            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
        if self.heal_lost_video:
            # Like a browser, unlike aiortc (which waits for 512 more packets): skip a lost packet, ask for a keyframe.
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    give_up_on_lost_packets(transceiver.receiver)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if pc is not self.pc:
                return
            same_kind = [t for t in pc.getTransceivers() if t.kind == track.kind]
            slot = next(i for i, t in enumerate(same_kind) if t.receiver.track is track)
            counters = self.received if slot == 0 else self.third
            old = counters.get(track.kind)
            if old is not None:
                old._task.cancel()
            counters[track.kind] = FrameCounter(track)
            self._got_track.set()

        return pc

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        assert self.pc.localDescription is not None
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def negotiate(self, signaling: SignalingClient) -> None:
        """Offer over ``signaling``; from then on, offer again on a new connection whenever it says media.restart."""
        if self._follower is None:
            self._signaling = signaling
            self._follower = asyncio.create_task(self._follow_restarts(signaling, len(signaling.inbox)))
        async with self._negotiation:
            await self._offer_over(signaling)

    async def _offer_over(self, signaling: SignalingClient) -> None:
        pc = self.pc
        reply = await signaling.request({"type": "offer", "sdp": await self.offer()})
        if pc is self.pc:  # else a restart replaced this connection meanwhile: the answer is stale
            await self.accept_answer(reply["sdp"])

    async def _follow_restarts(self, signaling: SignalingClient, after: int) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                message = await signaling.wait_for("media.restart", timeout=None, after=after)
                after = next(i for i, m in enumerate(signaling.inbox) if m is message) + 1
                try:
                    await self.restart()
                except SignalingError as exc:  # like call.js: the error is shown, the next restart tries again
                    self.restart_errors.append(str(exc))

    async def restart(self) -> None:
        """A new peer connection with the same tracks, offered over the signalling it negotiated on (as call.js).

        After the offer under way, if any: a restart asked meanwhile makes that one stale.
        """
        assert self._signaling is not None, "negotiate first"
        async with self._negotiation:
            old, self.pc = self.pc, self._new_pc()
            self.restarts += 1
            await old.close()
            await self._offer_over(self._signaling)

    def _counter(self, kind: str, slot: int) -> FrameCounter | None:
        return (self.received if slot == 0 else self.third).get(kind)

    def frames(self, kind: str, slot: int = 0) -> int:
        counter = self._counter(kind, slot)
        return counter.count if counter else 0

    async def wait_frames(self, kind: str, at_least: int, timeout: float = 15.0, *, slot: int = 0) -> int:
        deadline = time.monotonic() + timeout
        while self.frames(kind, slot) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.frames(kind, slot)} {kind} frames (slot {slot}) after {timeout}s")
            await asyncio.sleep(0.05)
        return self.frames(kind, slot)

    def seen_bgr(self, slot: int = 0) -> tuple[float, float, float] | None:
        """Mean colour of the last decoded video frame (of slot 1: the third party's)."""
        counter = self._counter("video", slot)
        if counter is None or counter.last is None:
            return None
        return mean_bgr(counter.last.to_ndarray(format="bgr24"))

    def heard_hz(self, seconds: float = 0.5, slot: int = 0) -> float:
        """Dominant frequency of the last ``seconds`` of decoded audio."""
        counter = self._counter("audio", slot)
        if counter is None or not counter.audio:
            return 0.0
        samples = np.concatenate(list(counter.audio))[-int(seconds * counter.sample_rate) :]
        return dominant_frequency(samples, counter.sample_rate)

    async def wait_to_see(
        self, expected: Identity, timeout: float = 10.0, *, slot: int = 0
    ) -> tuple[float, float, float]:
        """Until the decoded picture has ``expected``'s colour; AssertionError says whose it has instead."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.seen_bgr(slot)
            if seen is not None and colour_matches(seen, expected.bgr):
                return seen
            if time.monotonic() > deadline:
                who = "no picture" if seen is None else f"{whose_colour(seen)}'s colour {tuple(round(v) for v in seen)}"
                raise AssertionError(
                    f"expected to see the {expected.name}'s colour {expected.bgr} (slot {slot}), decoded {who}"
                )
            await asyncio.sleep(0.05)

    async def wait_to_hear(self, expected: Identity, timeout: float = 10.0, *, slot: int = 0) -> float:
        """Until the decoded audio's dominant tone is ``expected``'s; AssertionError says what it heard."""
        deadline = time.monotonic() + timeout
        while True:
            hz = self.heard_hz(slot=slot)
            if tone_matches(hz, expected.tone_hz):
                return hz
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected to hear the {expected.name}'s {expected.tone_hz} Hz (slot {slot}), heard {hz:.0f} Hz"
                )
            await asyncio.sleep(0.05)

    async def wait_to_see_and_hear(self, expected: Identity, timeout: float = 10.0, *, slot: int = 0) -> None:
        await self.wait_to_see(expected, timeout, slot=slot)
        await self.wait_to_hear(expected, timeout, slot=slot)

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        for counter in [*self.received.values(), *self.third.values()]:
            await counter.stop()
        await self.pc.close()


class RtpBurstLoss:
    """Loses a burst of video RTP packets on one transport for good: each packet and every retransmission of it.

    ``outgoing`` patches what ``transport`` sends (before SRTP), ``incoming`` what reaches it (after SRTP):
    a loss NACK cannot repair, as when a burst outlasts the sender's retransmission history. ``sdp`` is the
    description that names the video payload types (media and RTX) the transport carries.
    """

    def __init__(self, sdp: str, direction: str, transport: Any) -> None:
        if direction not in ("outgoing", "incoming"):
            raise ValueError(f"direction is outgoing or incoming, not {direction!r}")
        video = next(m for m in SessionDescription.parse(sdp).media if m.kind == "video")
        self.media_types = {c.payloadType for c in video.rtp.codecs if c.name.lower() != "rtx"}
        self.rtx_types = {c.payloadType for c in video.rtp.codecs if c.name.lower() == "rtx"}
        self.lost: set[int] = set()  # sequence numbers lost, never to arrive
        self.retransmissions_lost = 0
        self._to_lose = 0
        self._burst_done = asyncio.Event()
        if direction == "outgoing":
            send_rtp = transport._send_rtp

            async def lossy_send(data: bytes) -> None:
                if not self._loses(data):
                    await send_rtp(data)

            transport._send_rtp = lossy_send
        else:
            handle_rtp = transport._handle_rtp_data

            async def lossy_handle(data: bytes, arrival_time_ms: int) -> None:
                if not self._loses(data):
                    await handle_rtp(data, arrival_time_ms)

            transport._handle_rtp_data = lossy_handle

    def lose_next(self, packets: int) -> None:
        self._to_lose = packets
        self._burst_done.clear()

    async def wait_burst(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._burst_done.wait(), timeout)

    def _loses(self, data: bytes) -> bool:
        if is_rtcp(data):
            return False
        packet = RtpPacket.parse(data)
        if packet.payload_type in self.media_types:
            if self._to_lose > 0:
                self._to_lose -= 1
                self.lost.add(packet.sequence_number)
                if self._to_lose == 0:
                    self._burst_done.set()
                return True
            return packet.sequence_number in self.lost  # resent without RTX: same sequence number
        if packet.payload_type in self.rtx_types and len(packet.payload) >= 2:
            if int.from_bytes(packet.payload[:2], "big") in self.lost:  # RFC 4588: the original sequence number
                self.retransmissions_lost += 1
                return True
        return False


class VideoPacketLoss(RtpBurstLoss):
    """``RtpBurstLoss`` on a client's leg: ``outgoing`` loses what the client sends, ``incoming`` what reaches it."""

    def __init__(self, client: MediaClient, direction: str) -> None:
        description = client.pc.remoteDescription
        assert description is not None, "negotiate first"
        if direction == "outgoing":
            transport = client.video_sender.transport
        else:
            transport = next(r for r in client.pc.getReceivers() if r.track.kind == "video").transport
        super().__init__(description.sdp, direction, transport)


class VideoSendLog:
    """When each of a client's video RTP packets left it (``time.monotonic()``), for wall-clock latencies.

    aiortc's sender sends all of a frame's packets before it takes the next frame from the track,
    so the first packet sent after a frame was handed over is that frame's.
    """

    def __init__(self, client: MediaClient) -> None:
        description = client.pc.remoteDescription
        assert description is not None, "negotiate first"
        video = next(m for m in SessionDescription.parse(description.sdp).media if m.kind == "video")
        media_types = {c.payloadType for c in video.rtp.codecs if c.name.lower() != "rtx"}
        self.sent_at: list[float] = []
        transport = client.video_sender.transport
        send_rtp = transport._send_rtp

        async def logged_send(data: bytes) -> None:
            await send_rtp(data)
            if not is_rtcp(data) and data[1] & 0x7F in media_types:
                self.sent_at.append(time.monotonic())

        transport._send_rtp = logged_send  # type: ignore[method-assign]

    def first_sent_after(self, handed_at: float) -> float | None:
        return next((t for t in self.sent_at if t >= handed_at), None)


def loopback_webrtc_available() -> bool:
    """127.0.0.2 can be bound here: aioice skips 127.0.0.1, so loopback WebRTC needs it (the Makefile's netns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


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
