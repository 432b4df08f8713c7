"""RTP-level forwarding: each side's RTP packets go to the other side as they are, renumbered.

A forwarded call's receivers are tapped (:func:`server.media.seams.tap_receiver`): aiortc still keeps its
receiver statistics (for RTCP receiver reports), REMB estimate, NACK generator and RTX unwrapping for the upstream
leg, but no jitter buffer, frame reassembly, decoder or re-packetisation runs. Each vetted packet goes to the
participant's :class:`RtpParticipantFeed`, which hands it to every outgoing stream of that feed
(:class:`RtpFeedTrack`, one per sender of the other peers). A stream rewrites the SSRC, payload type (the
receiving peer's numbers for the same codec), sequence number and timestamp (``server.media.rtp``), and sends it
through the sender's own SRTP session (``server.media.seams.send_rtp``).

What an SFU must do besides:

* NACK: each stream keeps the packets it sent (``RetransmissionCache``) and answers a NACK from them, as RTX when
  the peer negotiated it (the original sequence number first), else as the packet itself; a packet no longer
  held is asked of the source (its own sequence number), and aiortc's NACK generator asks for what the
  server itself missed.
* PLI/FIR from a receiving peer go upstream as a PLI to the source (throttled: ``ParticipantFeed.request_keyframe``).
* Video starts, and switches source, at a keyframe (VP8 and H.264 are recognised from the RTP payload, including
  STAP-A and FU-A); a new stream, a new source or a gate that opens asks the source for one at once.
* Sequence numbers run on without a gap and timestamps keep rising across a camera flip, a reconnect or
  re-offer (a new receiver and SSRC) and a source switch.
* Sender reports: each forwarded packet is counted in its sender's packet and octet counts, and the first packet
  of each frame pairs its RTP timestamp with the NTP time it left, so the SR aiortc sends stays consistent.
* A supervisor's gate (``server.media.assist``): closed, packets are dropped; opened, the stream restarts at a
  keyframe.

Recording and emotion cues subscribe to a feed as frame sinks: only then, and only while one is subscribed, the
feed reassembles frames from its packets (:class:`FrameAssembler`, aiortc's jitter buffer on that branch only)
and hands them on as ``av.Packet``; the cues decode those in a thread (``feeds.DecodingSink``) while consent is on.

The transcoding path (``media_path = "transcode"``) decodes and re-encodes as aiortc does; its video receivers
give up on a lost packet quickly (:func:`give_up_on_lost_packets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket
from aiortc.utils import uint16_add

from ..metrics import BucketCounts
from . import seams
from .feeds import FrameSink, ParticipantFeed, tag_codec
from .healing import GapHealingJitterBuffer, is_keyframe
from .rtp import RetransmissionCache, SentPacket, StreamRewriter, TimestampUnwrapper, keyframe_start

log = logging.getLogger(__name__)

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 to 1970


async def request_keyframe_from(receiver: Any) -> bool:
    """Send a PLI for every stream this receiver gets; False if there is none yet."""
    sources = receiver.getSynchronizationSources()
    for source in sources:
        await seams.send_pli(receiver, source.source)
    return bool(sources)


class FrameAssembler:
    """Whole frames from a feed's packets, for its frame sinks (a recorder, the cues' decoder) only.

    aiortc's jitter buffer (video: the one that gives up on a lost packet) on this branch alone; a new source
    starts a new buffer. Frames come out as ``av.Packet`` with the source's RTP time (unwrapped) as ``pts``.
    """

    def __init__(self, feed: RtpParticipantFeed) -> None:
        self.feed = feed
        self._buffer: JitterBuffer | None = None
        self._source: object = None
        self._times = TimestampUnwrapper()
        self.frames = 0

    def add(self, packet: RtpPacket, source: object, codec: str, clock_rate: int) -> None:
        if source is not self._source or self._buffer is None:
            self._source = source
            self._times = TimestampUnwrapper()
            video = self.feed.kind == "video"
            self._buffer = GapHealingJitterBuffer() if video else JitterBuffer(capacity=16, prefetch=4)
        if not seams.depayload_for_jitter_buffer(packet, codec):
            return
        pli, frame = self._buffer.add(packet)
        if pli:
            self.feed.request_keyframe()
        if frame is not None:
            self._emit(frame, codec, clock_rate)

    def _emit(self, frame: JitterFrame, codec: str, clock_rate: int) -> None:
        packet = av.Packet(frame.data)
        packet.pts = self._times.map(frame.timestamp)
        packet.time_base = Fraction(1, clock_rate)
        tag_codec(packet, codec)
        packet.is_keyframe = is_keyframe(packet, codec)
        self.frames += 1
        self.feed.deliver(packet)


class RtpSink(Protocol):
    """What a feed hands its packets to (an outgoing stream)."""

    async def forward(
        self, packet: RtpPacket, source: object, keyframe: bool, codec: str, clock_rate: int, arrived: float
    ) -> None: ...


class RtpParticipantFeed(ParticipantFeed):
    """A participant's feed on the forwarding path: RTP packets from the attached receiver, fanned out as they are.

    ``source`` is a token that changes with the receiver (a reconnect or re-offer) and with its SSRC: outgoing
    streams begin a new segment on it. Frame sinks (``subscribe``) get reassembled frames while there are any.
    """

    def __init__(self, kind: str, label: str = "") -> None:
        super().__init__(kind, label)
        self._rtp_sinks: list[RtpSink] = []
        self._receiver: RTCRtpReceiver | None = None
        self._ssrc: int | None = None
        self.source: object = None
        self._assembler: FrameAssembler | None = None
        self._codec_names: dict[str, str] = {}
        self.packets_in = 0
        self.malformed = 0
        self.nacks_relayed = 0
        self._nack_pending: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # the receiving side

    def attach_rtp(self, receiver: RTCRtpReceiver) -> None:
        if self._closed:
            return
        self.detach()
        self._receiver = receiver
        self._ssrc = None

    def detach(self) -> None:
        super().detach()
        self._receiver = None

    @property
    def attached(self) -> bool:
        return self._receiver is not None or super().attached

    def tap(self, receiver: RTCRtpReceiver) -> Callable[[RtpPacket, RTCRtpCodecParameters, int], Any]:
        """The function a tapped receiver calls with each packet (``seams.tap_receiver``)."""
        return functools.partial(self.push_rtp, receiver)

    async def push_rtp(
        self, receiver: RTCRtpReceiver, packet: RtpPacket, codec: RTCRtpCodecParameters, _ms: int
    ) -> None:
        if receiver is not self._receiver:
            return  # a replaced peer's last packets, or a receiver not attached yet
        arrived = time.monotonic()
        name = self._codec_names.get(codec.mimeType)
        if name is None:
            name = self._codec_names[codec.mimeType] = codec.mimeType.split("/")[-1].lower()
        keyframe = keyframe_start(name, packet.payload) if self.kind == "video" else bool(packet.payload)
        if keyframe is None:
            self.malformed += 1  # hostile or broken: dropped here, never seen by a peer, a recorder or a decoder
            return
        if packet.ssrc != self._ssrc:
            self._ssrc = packet.ssrc
            self.source = object()
        self.packets_in += 1
        if packet.marker or self.kind == "audio":
            self.frames_in += 1
        self.last_frame_at = arrived
        for sink in self._rtp_sinks:
            try:
                await sink.forward(packet, self.source, keyframe, name, codec.clockRate, arrived)
            except Exception:  # one broken stream must not starve the others
                log.exception("forwarding to %r failed on %s %s", sink, self.label, self.kind)
        if self._assembler is not None:
            try:
                self._assembler.add(packet, self.source, name, codec.clockRate)
            except Exception:
                log.exception("reassembling %s %s failed", self.label, self.kind)

    def deliver(self, frame: av.Packet) -> None:
        """A reassembled frame to the frame sinks (restamped like every feed's frames)."""
        self._restamp(frame)
        for sink in list(self._sinks):
            try:
                sink.push(frame)
            except Exception:
                log.exception("sink %r failed on %s %s", sink, self.label, self.kind)

    def nack_upstream(self, seq: int) -> None:
        """Ask the source for a packet an outgoing stream no longer holds (one NACK for what a tick collects)."""
        if self._receiver is None or self._ssrc is None:
            return
        if not self._nack_pending:
            asyncio.get_running_loop().call_soon(self._flush_nacks)
        self._nack_pending.add(seq)

    def _flush_nacks(self) -> None:
        lost, self._nack_pending = sorted(self._nack_pending), set()
        if self._receiver is None or self._ssrc is None or not lost:
            return
        self.nacks_relayed += len(lost)
        task = asyncio.create_task(self._send_nack(self._receiver, self._ssrc, lost))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _send_nack(receiver: RTCRtpReceiver, ssrc: int, lost: list[int]) -> None:
        with contextlib.suppress(Exception):  # a closing transport: the next NACK will do
            await seams.send_nack(receiver, ssrc, lost)

    # the sinks

    def subscribe_rtp(self, sink: RtpSink) -> None:
        self._rtp_sinks.append(sink)

    def unsubscribe_rtp(self, sink: RtpSink) -> None:
        with contextlib.suppress(ValueError):
            self._rtp_sinks.remove(sink)

    def subscribe(self, sink: FrameSink) -> None:
        super().subscribe(sink)
        if self._assembler is None:
            self._assembler = FrameAssembler(self)
            self.request_keyframe()  # a recording or a decoder starts at a keyframe: ask for one now

    def unsubscribe(self, sink: FrameSink) -> None:
        super().unsubscribe(sink)
        if not self._sinks:
            self._assembler = None  # nobody needs frames: nothing is reassembled

    async def aclose(self) -> None:
        await super().aclose()
        self._rtp_sinks.clear()
        self._assembler = None
        for task in list(self._tasks):
            task.cancel()


@dataclass
class OutCodec:
    """How one sender writes packets of one codec: the peer's payload types and header extension ids."""

    payload_type: int
    rtx_payload_type: int | None
    extensions: HeaderExtensionsMap
    mid: str | None


def out_codec(parameters: Any, codec: str) -> OutCodec | None:
    """The sender's payload type for ``codec`` (lower-case name) and its RTX, from its negotiated parameters."""
    chosen = next((c for c in parameters.codecs if c.mimeType.split("/")[-1].lower() == codec), None)
    if chosen is None:
        return None
    rtx = next(
        (
            c.payloadType
            for c in parameters.codecs
            if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == chosen.payloadType
        ),
        None,
    )
    return OutCodec(chosen.payloadType, rtx, seams.header_extensions_map(parameters), parameters.muxId)


HEADER = struct.Struct("!BBHII")


def abs_send_time(now: float) -> int:
    """The abs-send-time header extension's value: 6.18 fixed-point seconds of NTP time, 24 bits."""
    return int((now + NTP_EPOCH_OFFSET) * (1 << 18)) & 0xFFFFFF


RTX_OSN = struct.Struct("!H")


class RtpFeedTrack(MediaStreamTrack):
    """One outgoing forwarded stream: a feed's packets to one sender, renumbered, with its NACK cache.

    The sender's own loop reads this track and gets nothing (``recv`` waits until the track stops): packets go
    out through :meth:`forward`. ``is_open`` gates it (a supervisor's voice or picture): closed, packets are
    dropped; opened, it restarts at a keyframe.
    """

    def __init__(
        self,
        feed: RtpParticipantFeed,
        is_open: Callable[[], bool] | None = None,
        transit: BucketCounts | None = None,
    ) -> None:
        super().__init__()
        self.kind = feed.kind
        self.feed = feed
        self.is_open = is_open
        self.transit = transit
        self.rewriter: StreamRewriter | None = None
        self.cache = RetransmissionCache()
        self.sender: RTCRtpSender | None = None
        self._codec: tuple[str, OutCodec] | None = None
        self._ssrc = 0
        self._rtx_ssrc = 0
        self._rtx_seq = 0
        self._extensions = HeaderExtensions()
        self._stopped = asyncio.Event()
        self.frames_out = 0
        self.packets_out = 0
        self.dropped = 0
        self.withheld = 0
        self.unmapped = 0
        self.retransmitted = 0
        self.nacks_unanswered = 0
        feed.subscribe_rtp(self)

    @property
    def gated(self) -> bool:
        return self.is_open is not None

    def bind(self, sender: RTCRtpSender) -> None:
        """Send through ``sender``: its SSRCs, its NACKs answered here, its PLI/FIR relayed to the source."""
        self.sender = sender
        self._ssrc, self._rtx_ssrc = seams.sender_ssrcs(sender)
        self._rtx_seq = (self._rtx_ssrc >> 8) % 0x8000
        seams.on_retransmit(sender, self._retransmit)
        seams.on_keyframe_request(sender, self.feed.request_keyframe)
        if self.rewriter is not None:
            self.rewriter.restart()
        self.feed.request_keyframe()  # a new consumer starts at a keyframe: ask for one at once

    def flush(self) -> None:
        """The gate closed (or the stream must stop): the next packet out begins a new segment."""
        if self.rewriter is not None:
            self.rewriter.restart()

    async def recv(self) -> Any:
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        self.feed.unsubscribe_rtp(self)
        super().stop()
        self._stopped.set()

    def _out(self, codec: str) -> OutCodec | None:
        if self._codec is not None and self._codec[0] == codec:
            return self._codec[1]
        parameters = seams.send_parameters(self.sender) if self.sender is not None else None
        if parameters is None:
            return None  # not started yet: its transport is still connecting
        found = out_codec(parameters, codec)
        if found is None:
            self.unmapped += 1
            return None
        self._codec = (codec, found)
        return found

    async def forward(
        self, packet: RtpPacket, source: object, keyframe: bool, codec: str, clock_rate: int, arrived: float
    ) -> None:
        if self.is_open is not None and not self.is_open():
            self.withheld += 1
            if self.rewriter is not None:
                self.rewriter.restart()
            return
        out = self._out(codec)
        if out is None:
            self.dropped += 1
            return
        rewriter = self.rewriter
        if rewriter is None or rewriter.clock_rate != clock_rate:
            rewriter = self.rewriter = StreamRewriter(self.kind, clock_rate)
        numbers = rewriter.rewrite(source, packet.sequence_number, packet.timestamp, keyframe, arrived)
        if numbers is None:
            self.dropped += 1
            if rewriter.waiting:
                self.feed.request_keyframe()
            return
        seq, ts = numbers
        first_of_frame = seq == rewriter.highest_seq and ts != self._last_ts
        extensions = self._extensions
        extensions.mid = out.mid
        now = time.time()
        extensions.abs_send_time = abs_send_time(now)
        extensions.audio_level = packet.extensions.audio_level
        sent = SentPacket(seq, ts, packet.marker, packet.payload, packet.extensions.audio_level)
        data = self._serialize(out.payload_type, sent, self._ssrc, out.extensions)
        self.cache.put(sent)
        assert self.sender is not None
        try:
            await seams.send_rtp(self.sender, data)
        except ConnectionError:
            self.dropped += 1
            return
        self.packets_out += 1
        if packet.marker or self.kind == "audio":
            self.frames_out += 1
            if self.transit is not None and self.kind == "video":
                self.transit.observe(time.monotonic() - arrived)
        if first_of_frame:
            self._last_ts = ts
        seams.count_sent(self.sender, len(packet.payload), ts if first_of_frame else None)

    _last_ts: int | None = None

    def _serialize(self, payload_type: int, sent: SentPacket, ssrc: int, extensions: HeaderExtensionsMap) -> bytes:
        profile, values = extensions.set(self._extensions)
        first = 0x80 | (0x10 if values else 0)
        header = HEADER.pack(first, (sent.marker << 7) | payload_type, sent.sequence_number, sent.timestamp, ssrc)
        if values:
            header += struct.pack("!HH", profile, len(values) >> 2) + values
        return header + sent.payload

    async def _retransmit(self, seq: int) -> None:
        """A NACK asked for ``seq``: resend it from the cache (as RTX when negotiated), or ask the source."""
        sent = self.cache.get(seq)
        codec = self._codec[1] if self._codec is not None else None
        if sent is None or codec is None or self.sender is None:
            upstream = self.rewriter.upstream_seq(seq) if self.rewriter is not None else None
            if upstream is None:
                self.nacks_unanswered += 1
            else:
                self.feed.nack_upstream(upstream)
            return
        self._extensions.mid = codec.mid
        self._extensions.abs_send_time = abs_send_time(time.time())
        self._extensions.audio_level = sent.audio_level
        if codec.rtx_payload_type is not None:
            rtx = SentPacket(self._rtx_seq, sent.timestamp, sent.marker, RTX_OSN.pack(seq) + sent.payload)
            self._rtx_seq = uint16_add(self._rtx_seq, 1)
            data = self._serialize(codec.rtx_payload_type, rtx, self._rtx_ssrc, codec.extensions)
        else:
            data = self._serialize(codec.payload_type, sent, self._ssrc, codec.extensions)
        self.retransmitted += 1
        with contextlib.suppress(ConnectionError):
            await seams.send_rtp(self.sender, data)
