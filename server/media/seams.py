"""Every aiortc internal the media path relies on, in one place (aiortc 1.16.0, pinned in uv.lock).

``tests/webrtc/test_seams.py`` checks each of them against the installed aiortc, so an upgrade that moves one
fails loudly there before anything subtler breaks. Nothing else in ``server/`` touches a private name of aiortc.

Receive side (``RTCRtpReceiver``):

* ``_handle_rtp_packet(packet, arrival_time_ms)``: called by the DTLS transport for every decrypted RTP packet.
  aiortc keeps its REMB estimate, receiver statistics (RTCP RR), RTX unwrapping, NACK generator and depayloading
  there, then hands the packet to ``__jitter_buffer.add(packet) -> (pli, frame)``. :func:`tap_receiver` puts a
  :class:`ReceiverTap` in the jitter buffer's place, which keeps the vetted packet and returns no frame (so nothing
  is reassembled or decoded), and wraps ``_handle_rtp_packet`` on the instance to hand that packet on.
* ``__codecs``: payload type → negotiated codec, filled by ``receive()``.
* ``_send_rtcp_pli(ssrc)``, ``_send_rtcp_nack(ssrc, lost)``, ``getSynchronizationSources()``: asking upstream.
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

import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender, clock
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

AIORTC_VERSION = "1.16.0"

RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
SENDER_NTP_TIMESTAMP = "_RTCRtpSender__ntp_timestamp"
SENDER_RTP_TIMESTAMP = "_RTCRtpSender__rtp_timestamp"
SENDER_PACKET_COUNT = "_RTCRtpSender__packet_count"
SENDER_OCTET_COUNT = "_RTCRtpSender__octet_count"

OnPacket = Callable[[RtpPacket, RTCRtpCodecParameters, int], Awaitable[None]]


class ReceiverTap:
    """Stands where a receiver's jitter buffer was: keeps the packet aiortc vetted, reassembles nothing."""

    def __init__(self) -> None:
        self.pending: RtpPacket | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self.pending = packet
        return False, None


def tap_receiver(receiver: RTCRtpReceiver, on_packet: OnPacket) -> ReceiverTap:
    """From now on every RTP packet of ``receiver`` goes to ``on_packet(packet, codec, arrival_ms)`` after aiortc's
    own bookkeeping (stats for RTCP RR, NACK generator, RTX unwrapped), never to a jitter buffer or decoder.

    Call it before the receiver gets packets (from the peer connection's ``track`` event)."""
    tap = ReceiverTap()
    setattr(receiver, RECEIVER_JITTER_BUFFER, tap)
    original = receiver._handle_rtp_packet
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, RECEIVER_CODECS)

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        await original(packet, arrival_time_ms)
        vetted = tap.pending
        if vetted is None:
            return  # disabled, unknown payload type, padding-only RTX, undecodable payload: aiortc dropped it
        tap.pending = None
        codec = codecs.get(vetted.payload_type)
        if codec is not None:
            await on_packet(vetted, codec, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
    return tap


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
