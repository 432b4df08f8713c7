"""Every aiortc internal the media path relies on (server/media/seams.py), checked against the installed aiortc.

If an aiortc upgrade moves one of them, these fail loudly, naming it, before anything subtler breaks.
"""

from __future__ import annotations

import inspect

import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, rtp
from aiortc import codecs as codecs_module
from aiortc import rtcrtpreceiver as receiver_module
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket

from server.media import seams
from server.media.peers import rtc_configuration


def test_the_pinned_aiortc_version() -> None:
    assert aiortc.__version__ == seams.AIORTC_VERSION, "re-check server/media/seams.py against this aiortc"


def test_the_receivers_packet_path_is_what_the_tap_does_in_its_place() -> None:
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self",
        "packet",
        "arrival_time_ms",
    ]
    # What the tap keeps of aiortc's handler, in its order: REMB, the source's time, RR statistics, RTX, NACKs.
    order = [
        "if not self._enabled:",
        "remb = self.__remote_bitrate_estimator.add(",
        "fci=pack_remb_fci(*remb),",
        "self.__active_ssrc[packet.ssrc] = clock.current_datetime()",
        "codec = self.__codecs.get(packet.payload_type)",
        "self.__remote_streams[packet.ssrc] = StreamStatistics(codec.clockRate)",
        "self.__remote_streams[packet.ssrc].add(packet)",
        "if is_rtx(codec):",
        "original_ssrc = self.__rtx_ssrc.get(packet.ssrc)",
        "packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)",
        "self.__nack_generator.add(packet)",
        "sorted(self.__nack_generator.missing)",
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
    # The transcoding path's healing replaces the jitter buffer, the receiver's only use of it.
    assert inspect.getsource(RTCRtpReceiver).count("self.__jitter_buffer.") == 1
    assert "JitterBuffer(capacity=512, is_video=True)" in inspect.getsource(RTCRtpReceiver.__init__)
    assert "self.__codecs[codec.payloadType] = codec" in inspect.getsource(RTCRtpReceiver.receive)
    assert 'return codec.name.lower() == "rtx"' in inspect.getsource(codecs_module.is_rtx)
    # What the frames' branch does in the depayloader's place (seams.depayload_for_jitter_buffer).
    depayload = inspect.getsource(codecs_module.depayload)
    assert "return vp8_depayload(payload)" in depayload and "return h264_depayload(payload)" in depayload
    assert 'data=b"".join([x._data for x in packets])' in inspect.getsource(JitterBuffer)
    buffer = JitterBuffer(capacity=16, is_video=True)
    assert {"_origin", "_packets", "_capacity"} <= set(vars(buffer)) and hasattr(buffer, "_remove_frame")


def assert_attributes(instance: object, names: tuple[str, ...], kind: type) -> None:
    for name in names:
        assert isinstance(getattr(instance, name), kind), name


async def test_a_receiver_has_the_attributes_the_tap_reads() -> None:
    pc = RTCPeerConnection(rtc_configuration(()))
    try:
        video = pc.addTransceiver("video").receiver
        audio = pc.addTransceiver("audio").receiver
        tables: tuple[str, ...] = (seams.RECEIVER_CODECS, seams.RECEIVER_ACTIVE_SSRC, seams.RECEIVER_REMOTE_STREAMS)
        tables += (seams.RECEIVER_RTX_SSRC,)
        for receiver in (video, audio):
            assert_attributes(receiver, tables, dict)
            assert isinstance(getattr(receiver, seams.RECEIVER_RTCP_SSRC), int)  # set by addTransceiver
        assert isinstance(getattr(video, seams.RECEIVER_NACK_GENERATOR), NackGenerator)
        assert isinstance(getattr(video, seams.RECEIVER_BITRATE_ESTIMATOR), RemoteBitrateEstimator)
        assert getattr(audio, seams.RECEIVER_NACK_GENERATOR) is None
        assert getattr(audio, seams.RECEIVER_BITRATE_ESTIMATOR) is None
    finally:
        await pc.close()


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
        report = (seams.SENDER_NTP_TIMESTAMP, seams.SENDER_RTP_TIMESTAMP, seams.SENDER_PACKET_COUNT)
        assert_attributes(sender, (*report, seams.SENDER_OCTET_COUNT), int)
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


async def test_the_tap_keeps_the_upstream_bookkeeping_and_hands_packets_on() -> None:
    pc = RTCPeerConnection(rtc_configuration(()))
    try:
        receiver = pc.addTransceiver("video").receiver
        vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
        rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90_000, payloadType=97, parameters={"apt": 96})
        getattr(receiver, seams.RECEIVER_CODECS).update({96: vp8, 97: rtx})
        getattr(receiver, seams.RECEIVER_RTX_SSRC)[2] = 1  # RTX stream 2 repairs stream 1
        got: list[tuple[int, int, str, bytes]] = []
        nacked: list[tuple[int, list[int]]] = []

        async def on_packet(packet: RtpPacket, c: RTCRtpCodecParameters, _ms: int) -> None:
            got.append((packet.ssrc, packet.sequence_number, c.mimeType, packet.payload))

        async def send_nack(media_ssrc: int, lost: list[int]) -> None:
            nacked.append((media_ssrc, lost))

        receiver._send_rtcp_nack = send_nack  # type: ignore[method-assign]
        seams.tap_receiver(receiver, on_packet)

        def packet(pt: int, seq: int, ssrc: int, payload: bytes) -> RtpPacket:
            return RtpPacket(payload_type=pt, sequence_number=seq, timestamp=0, ssrc=ssrc, payload=payload)

        frame = b"\x10\x10\x02\x00"
        await receiver._handle_rtp_packet(packet(96, 7, 1, frame), arrival_time_ms=0)
        await receiver._handle_rtp_packet(packet(96, 9, 1, frame), arrival_time_ms=1)  # 8 is missing
        await receiver._handle_rtp_packet(packet(100, 10, 1, frame), arrival_time_ms=2)  # unknown payload type
        await receiver._handle_rtp_packet(packet(97, 500, 2, b"\x00\x08" + frame), arrival_time_ms=3)  # 8, as RTX
        await receiver._handle_rtp_packet(packet(97, 501, 2, b""), arrival_time_ms=4)  # padding-only probe
        await receiver._handle_rtp_packet(packet(97, 502, 3, b"\x00\x08" + frame), arrival_time_ms=5)  # unknown
        broken = b"\x90\xe0"  # a picture id announced and missing: the feed counts it malformed, not the tap
        await receiver._handle_rtp_packet(packet(96, 10, 1, broken), arrival_time_ms=6)
        assert got == [
            (1, 7, "video/VP8", frame),
            (1, 9, "video/VP8", frame),
            (1, 8, "video/VP8", frame),
            (1, 10, "video/VP8", broken),
        ]
        assert nacked == [(1, [8])], "the gap was asked of the source"
        streams = getattr(receiver, seams.RECEIVER_REMOTE_STREAMS)
        assert streams[1].packets_received == 3 and set(streams) == {1, 2, 3}, "RTCP RR statistics kept"
        assert [s.source for s in receiver.getSynchronizationSources()] == [1, 2, 3]
        receiver._enabled = False
        await receiver._handle_rtp_packet(packet(96, 11, 1, frame), arrival_time_ms=7)
        assert len(got) == 4, "a disabled receiver passes nothing on"
    finally:
        await pc.close()
