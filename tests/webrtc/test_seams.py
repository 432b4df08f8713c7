"""Every aiortc internal the media path relies on (server/media/seams.py), checked against the installed aiortc.

If an aiortc upgrade moves one of them, these fail loudly, naming it, before anything subtler breaks.
"""

from __future__ import annotations

import asyncio
import inspect

import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, rtp
from aiortc import rtcrtpreceiver as receiver_module
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import RtpPacket

from server.media import seams
from server.media.peers import rtc_configuration


def test_the_pinned_aiortc_version() -> None:
    assert aiortc.__version__ == seams.AIORTC_VERSION, "re-check server/media/seams.py against this aiortc"


def test_the_receivers_packet_path_ends_in_its_jitter_buffer() -> None:
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self",
        "packet",
        "arrival_time_ms",
    ]
    # The order the tap relies on: stats and NACKs for the upstream leg first, RTX unwrapped, then the buffer.
    order = [
        "self.__remote_streams[packet.ssrc].add(packet)",
        "packet = unwrap_rtx(",
        "self.__nack_generator.add(packet)",
        "packet._data = depayload(codec, packet.payload)",
        "self.__jitter_buffer.add(packet)",
    ]
    positions = [handle.index(line) for line in order]
    assert positions == sorted(positions)
    assert "if pli_flag:" in handle
    # The transport hands every decrypted packet to the routed receiver's method by that name.
    assert "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in inspect.getsource(
        RTCDtlsTransport._handle_rtp_data
    )
    # No other use of the jitter buffer in the receiver: the tap need only have add().
    assert inspect.getsource(RTCRtpReceiver).count("self.__jitter_buffer.") == 1
    assert "JitterBuffer(capacity=512, is_video=True)" in inspect.getsource(RTCRtpReceiver.__init__)
    assert "self.__codecs[codec.payloadType] = codec" in inspect.getsource(RTCRtpReceiver.receive)
    buffer = JitterBuffer(capacity=16, is_video=True)
    assert {"_origin", "_packets", "_capacity"} <= set(vars(buffer)) and hasattr(buffer, "_remove_frame")


def test_the_receivers_requests_upstream() -> None:
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == ["self", "media_ssrc"]
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_nack).parameters) == ["self", "media_ssrc", "lost"]
    assert hasattr(RTCRtpReceiver, "getSynchronizationSources")
    assert list(inspect.signature(receiver_module.decoder_worker).parameters) == [
        "loop",
        "input_q",
        "output_q",
        "decode_error",
    ]


def test_the_senders_hooks() -> None:
    rtcp = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "await self._retransmit(seq)" in rtcp and "self._send_keyframe()" in rtcp
    assert "await self.transport._send_rtp(packet_bytes)" in inspect.getsource(RTCRtpSender._retransmit)
    assert "await self._next_encoded_frame(codec)" in inspect.getsource(RTCRtpSender._run_rtp)
    # What the sender reports read, and the peer connection starting a sender with its parameters.
    report = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("ntp_timestamp=self.__ntp_timestamp", "rtp_timestamp=self.__rtp_timestamp"):
        assert name in report
    assert "packet_count=self.__packet_count" in report and "octet_count=self.__octet_count" in report
    assert "await transceiver.sender.send(self.__localRtp(transceiver))" in inspect.getsource(RTCPeerConnection)
    assert "self._tx_srtp.protect(data)" in inspect.getsource(RTCDtlsTransport._send_rtp)
    assert hasattr(rtp.HeaderExtensionsMap, "configure") and hasattr(rtp.HeaderExtensionsMap, "set")


async def test_a_sender_has_the_attributes_the_seams_read_and_write() -> None:
    pc = RTCPeerConnection(rtc_configuration(()))
    try:
        sender = pc.addTransceiver("video").sender
        for name in (
            seams.SENDER_NTP_TIMESTAMP,
            seams.SENDER_RTP_TIMESTAMP,
            seams.SENDER_PACKET_COUNT,
            seams.SENDER_OCTET_COUNT,
        ):
            assert isinstance(getattr(sender, name), int), name
        assert isinstance(sender._ssrc, int) and isinstance(sender._rtx_ssrc, int)
        seams.count_sent(sender, 1200, 90_000)
        seams.count_sent(sender, 300, None)
        ntp, rtp_ts, packets, octets = seams.sender_report_state(sender)
        assert (rtp_ts, packets, octets) == (90_000, 2, 1500) and ntp > 0
        stats = await sender.getStats()
        outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
        assert (outbound.packetsSent, outbound.bytesSent) == (2, 1500)
        # Parameters are kept when the peer connection starts the sender.
        seams.capture_send_parameters(sender)
        parameters = RTCRtpSendParameters(
            codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)], muxId="1"
        )
        started: list[object] = []

        async def fake_original(p: object) -> None:
            started.append(p)

        # What capture wraps is whatever send was: check it calls through.
        sender2 = pc.addTransceiver("video").sender
        sender2.send = fake_original  # type: ignore[method-assign]
        seams.capture_send_parameters(sender2)
        await sender2.send(parameters)
        assert started == [parameters] and seams.send_parameters(sender2) is parameters
        assert seams.send_parameters(sender) is None
    finally:
        await pc.close()


async def test_the_tap_gets_vetted_packets_and_nothing_is_reassembled() -> None:
    pc = RTCPeerConnection(rtc_configuration(()))
    try:
        receiver = pc.addTransceiver("video").receiver
        codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
        getattr(receiver, seams.RECEIVER_CODECS)[96] = codec
        got: list[tuple[int, str]] = []

        async def on_packet(packet: RtpPacket, c: RTCRtpCodecParameters, _ms: int) -> None:
            got.append((packet.sequence_number, c.mimeType))

        tap = seams.tap_receiver(receiver, on_packet)
        assert getattr(receiver, seams.RECEIVER_JITTER_BUFFER) is tap
        good = RtpPacket(payload_type=96, sequence_number=7, timestamp=0, ssrc=1, payload=b"\x10\x10\x02\x00")
        await receiver._handle_rtp_packet(good, arrival_time_ms=0)
        unknown = RtpPacket(payload_type=100, sequence_number=8, timestamp=0, ssrc=1, payload=b"\x10\x10")
        await receiver._handle_rtp_packet(unknown, arrival_time_ms=0)
        broken = RtpPacket(payload_type=96, sequence_number=9, timestamp=0, ssrc=1, payload=b"\x80")
        await receiver._handle_rtp_packet(broken, arrival_time_ms=0)
        await asyncio.sleep(0)
        assert got == [(7, "video/VP8")], "unknown payload types and undecodable payloads stop in aiortc"
    finally:
        await pc.close()
