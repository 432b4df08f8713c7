"""Every aiortc internal the media path relies on, in one place (aiortc 1.16.0, pinned in uv.lock).

``tests/webrtc/test_seams.py`` checks each of them against the installed aiortc, so an upgrade that moves one
fails loudly there before anything subtler breaks. Nothing else in ``server/`` touches a private name of aiortc.

Receive side (``RTCRtpReceiver``):

* ``_handle_rtp_packet(packet, arrival_time_ms)``: called by the DTLS transport for every decrypted RTP packet.
  For a forwarded call :func:`tap_receiver` replaces it on the instance with what a forwarder needs of it, in
  aiortc's order: the REMB estimate (``__remote_bitrate_estimator``, sent with ``__rtcp_ssrc``), the source's
  last-seen time (``__active_ssrc``, read by ``getSynchronizationSources``), receiver statistics for RTCP RR
  (``__remote_streams``), RTX unwrapped (``__rtx_ssrc``), the NACK generator (``__nack_generator``); then the
  packet goes to the feed. No depayloading (the feed checks the payload itself), jitter buffer or decoder: in
  the profile of a forwarding worker, aiortc's own handler spent more on those and on codec-name lookups than
  on everything a forwarder needs.
* ``__codecs``: payload type → negotiated codec, filled by ``receive()``.
* ``_send_rtcp_pli(ssrc)``, ``_send_rtcp_nack(ssrc, lost)``, ``_send_rtcp(packet)``,
  ``getSynchronizationSources()``: asking upstream.
* ``packet._data``: what aiortc's jitter buffer joins into a frame, the depayloaded payload
  (:func:`depayload_for_jitter_buffer`, for the frames recording and cues take).
* ``decoder_worker`` and ``__jitter_buffer`` of a video receiver: the transcoding path's gap healing
  (:func:`server.media.forwarding.give_up_on_lost_packets`).

Send side (``RTCRtpSender``):

* ``send(parameters)``: called once the transport is up; :func:`capture_send_parameters` keeps the negotiated
  codecs, header extensions and mid, from which forwarded packets are written.
* ``_ssrc``, ``_rtx_ssrc``, ``transport._send_rtp(data)`` (SRTP-protects and sends one packet).
* ``_retransmit(seq)``: called per sequence number of a NACK; replaced per instance (:func:`on_retransmit`).
* ``_send_keyframe()``: called on a PLI/FIR; replaced per instance (:func:`on_keyframe_request`).
* ``__ntp_timestamp``, ``__rtp_timestamp``, ``__packet_count``, ``__octet_count``: what the sender's RTCP task
  writes into its sender reports; :func:`count_sent` keeps them true for forwarded packets.
* ``_next_encoded_frame(codec)``: wrapped by the transcoding path's transit metric (``server.metrics``).
"""

from __future__ import annotations

import datetime
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender, clock
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import vp8_depayload
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

AIORTC_VERSION = "1.16.0"

RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
RECEIVER_ACTIVE_SSRC = "_RTCRtpReceiver__active_ssrc"
RECEIVER_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
RECEIVER_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
RECEIVER_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
RECEIVER_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
SOURCE_REFRESH_S = 1.0  # how often a source's last-seen time is renewed (aiortc lists sources seen in 10 s)
SENDER_NTP_TIMESTAMP = "_RTCRtpSender__ntp_timestamp"
SENDER_RTP_TIMESTAMP = "_RTCRtpSender__rtp_timestamp"
SENDER_PACKET_COUNT = "_RTCRtpSender__packet_count"
SENDER_OCTET_COUNT = "_RTCRtpSender__octet_count"

OnPacket = Callable[[RtpPacket, RTCRtpCodecParameters, int], Awaitable[None]]


def tap_receiver(receiver: RTCRtpReceiver, on_packet: OnPacket) -> None:
    """From now on every RTP packet of ``receiver`` goes to ``on_packet(packet, codec, arrival_ms)`` after the
    bookkeeping the upstream leg needs (REMB, RTCP RR statistics, RTX unwrapped, NACKs), never to a depayloader,
    jitter buffer or decoder. Padding-only packets (bandwidth probes) stop here.

    Call it before the receiver gets packets (from the peer connection's ``track`` event)."""
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, RECEIVER_CODECS)
    active: dict[int, datetime.datetime] = getattr(receiver, RECEIVER_ACTIVE_SSRC)
    streams: dict[int, StreamStatistics] = getattr(receiver, RECEIVER_REMOTE_STREAMS)
    rtx_ssrcs: dict[int, int] = getattr(receiver, RECEIVER_RTX_SSRC)
    nacks: NackGenerator | None = getattr(receiver, RECEIVER_NACK_GENERATOR)
    estimator: RemoteBitrateEstimator | None = getattr(receiver, RECEIVER_BITRATE_ESTIMATOR)
    seen_at: dict[int, float] = {}
    rtx_of: dict[int, tuple[RTCRtpCodecParameters, int | None]] = {}  # payload type -> (codec, apt if RTX)

    def apt_of(payload_type: int, codec: RTCRtpCodecParameters) -> int | None:
        """None if ``codec`` is not RTX, else the payload type it repairs (-1: none usable, so dropped)."""
        known = rtx_of.get(payload_type)
        if known is None or known[0] is not codec:  # first seen, or renegotiated
            apt: int | None = None
            if codec.mimeType.lower().endswith("/rtx"):
                given = codec.parameters.get("apt")
                apt = given if isinstance(given, int) else -1
            known = rtx_of[payload_type] = (codec, apt)
        return known[1]

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not receiver._enabled:
            return
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = getattr(receiver, RECEIVER_RTCP_SSRC)
            if remb is not None and rtcp_ssrc is not None:
                feedback = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))
                await receiver._send_rtcp(feedback)
        now = time.monotonic()
        if now - seen_at.get(packet.ssrc, -SOURCE_REFRESH_S) >= SOURCE_REFRESH_S:  # a datetime per packet costs
            seen_at[packet.ssrc] = now
            active[packet.ssrc] = clock.current_datetime()
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        apt = apt_of(packet.payload_type, codec)
        if apt is not None:
            original_ssrc = rtx_ssrcs.get(packet.ssrc)
            if original_ssrc is None or len(packet.payload) < 2 or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
        if nacks is not None and nacks.add(packet):
            await receiver._send_rtcp_nack(packet.ssrc, sorted(nacks.missing))
        if packet.payload:
            await on_packet(packet, codec, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


def depayload_for_jitter_buffer(packet: RtpPacket, codec: str) -> bool:
    """Give ``packet`` the frame data aiortc's jitter buffer joins into frames (``packet._data``), as aiortc's
    receiver does before its buffer; ``codec`` is the lower-case name. False if the payload does not parse."""
    try:
        if codec == "vp8":
            data = vp8_depayload(packet.payload)
        elif codec == "h264":
            data = h264_depayload(packet.payload)
        else:
            data = packet.payload
    except ValueError:
        return False
    packet._data = data  # type: ignore[attr-defined]
    return True


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    await receiver._send_rtcp_pli(media_ssrc)


async def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> None:
    await receiver._send_rtcp_nack(media_ssrc, lost)


_SEND_PARAMETERS: weakref.WeakKeyDictionary[RTCRtpSender, RTCRtpSendParameters] = weakref.WeakKeyDictionary()


def capture_send_parameters(sender: RTCRtpSender) -> None:
    """Keep what ``sender`` negotiated when the peer connection starts it (call before setLocalDescription)."""
    original = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        _SEND_PARAMETERS[sender] = parameters
        await original(parameters)

    sender.send = send  # type: ignore[method-assign]


def send_parameters(sender: RTCRtpSender) -> RTCRtpSendParameters | None:
    """The parameters ``sender`` was started with; None until its transport is up."""
    return _SEND_PARAMETERS.get(sender)


def header_extensions_map(parameters: RTCRtpSendParameters) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    return extensions


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The sender's media SSRC and its RTX SSRC (both in our answer's a=ssrc lines)."""
    return sender._ssrc, sender._rtx_ssrc


async def send_rtp(sender: RTCRtpSender, data: bytes) -> None:
    """SRTP-protect and send one serialized RTP packet on the sender's transport (ConnectionError if not up)."""
    await sender.transport._send_rtp(data)


def on_retransmit(sender: RTCRtpSender, handler: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """A NACK's sequence numbers reach ``handler`` one by one instead of aiortc's own (empty) history."""
    sender._retransmit = handler  # type: ignore[method-assign,assignment]


def on_keyframe_request(sender: RTCRtpSender, handler: Callable[[], None]) -> None:
    """A PLI/FIR at this sender calls ``handler`` too (after aiortc's own flag for its encoder)."""
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()
        handler()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


def ntp_now() -> int:
    return clock.current_ntp_time()


def count_sent(sender: Any, octets: int, rtp_timestamp: int | None) -> None:
    """One more packet of ``octets`` payload bytes sent; with ``rtp_timestamp``, the first packet of a frame sent
    now, which pairs that RTP time with the NTP time in the next sender report."""
    sender._RTCRtpSender__packet_count += 1
    sender._RTCRtpSender__octet_count += octets
    if rtp_timestamp is not None:
        sender._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()
        sender._RTCRtpSender__rtp_timestamp = rtp_timestamp


def sender_report_state(sender: Any) -> tuple[int, int, int, int]:
    """(ntp, rtp timestamp, packets, octets) as the next sender report will carry them."""
    return (
        getattr(sender, SENDER_NTP_TIMESTAMP),
        getattr(sender, SENDER_RTP_TIMESTAMP),
        getattr(sender, SENDER_PACKET_COUNT),
        getattr(sender, SENDER_OCTET_COUNT),
    )
