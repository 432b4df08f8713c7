"""Zero-transcode forwarding: packets, not frames, cross the server; keyframe requests travel upstream.

The first tests pin the aiortc internals the seam relies on (server/media/forwarding.py):
if an upgrade moves them, these fail loudly before anything subtler does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

import av
import pytest
from aiortc import RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket, is_rtcp
from aiortc.sdp import SessionDescription

from server.config import Settings
from server.media import healing
from server.media.call import CallMedia
from server.media.feeds import codec_of, tag_codec
from server.media.forwarding import GapHealingJitterBuffer, RtpFeedTrack, RtpParticipantFeed, is_keyframe
from tests.support.clients import (
    CUSTOMER,
    REP,
    Identity,
    MediaClient,
    PatternVideoTrack,
    VideoPacketLoss,
    solid_frame,
)
from tests.support.server import Rapport, start_rapport


def packet(data: bytes, pts: int, keyframe: bool) -> av.Packet:
    p = av.Packet(data)
    p.pts, p.time_base, p.is_keyframe = pts, Fraction(1, 90_000), keyframe
    tag_codec(p, "vp8")
    return p


def test_a_packet_keeps_its_codec_when_other_packets_of_that_codec_are_freed() -> None:
    # PyAV keys Packet.opaque by the object's id: a shared "h264" string would vanish with the first packet freed.
    kept = packet(b"\x10key", 0, True)
    tag_codec(kept, "h264")
    for i in range(3):
        gone = packet(b"\x11delta", i, False)
        tag_codec(gone, "h264")
        del gone
    assert codec_of(kept) == "h264"


def rtp(sequence_number: int, frame: int, *, last_of_frame: bool = True) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=sequence_number, timestamp=frame * 3000, marker=last_of_frame)
    packet._data = bytes([frame % 256])  # type: ignore[attr-defined]  # what the receiver's depayloader leaves
    return packet


def test_a_lost_packet_is_given_up_on_after_a_while_with_a_keyframe_request(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(healing.time, "monotonic", lambda: now[0])
    buffer = GapHealingJitterBuffer(give_up_s=0.4)
    out = [buffer.add(rtp(0, 0)), buffer.add(rtp(1, 1))]
    assert out[1] == (False, out[1][1]) and out[1][1] is not None and out[1][1].data == b"\x00"
    # Packet 2 (frame 2) never comes; frame 3 is two packets, frame 4 one.
    assert buffer.add(rtp(3, 3, last_of_frame=False)) == (False, None)
    now[0] += 0.2
    assert buffer.add(rtp(4, 3)) == (False, None)  # NACK may still bring it
    now[0] += 0.3
    pli, frame = buffer.add(rtp(5, 4))
    assert pli, "past give_up_s: ask the sender for a keyframe"
    assert buffer.holes_skipped == 1
    # Frame 1, whole before the hole, comes out now; frame 3 after the hole is dropped with the lost
    # frame 2 (a delta on it); what follows comes out as usual.
    assert frame is not None and frame.data == b"\x01"
    pli, frame = buffer.add(rtp(6, 5))
    assert not pli and frame is not None and frame.data == b"\x04"


def test_aiortcs_own_buffer_would_wait_for_hundreds_of_packets() -> None:
    # What GapHealingJitterBuffer is for: with aiortc's buffer the hole blocks everything after it.
    buffer = JitterBuffer(capacity=512, is_video=True)
    buffer.add(rtp(0, 0))
    outputs = [buffer.add(rtp(n, n)) for n in range(2, 400)]
    assert all(frame is None and not pli for pli, frame in outputs)


def test_vp8_and_h264_keyframes_are_recognised() -> None:
    assert is_keyframe(av.Packet(b"\x10\x02\x00\x9d\x01\x2a"), "vp8")
    assert not is_keyframe(av.Packet(b"\x11\x02\x00"), "vp8")
    assert is_keyframe(av.Packet(b"\x00\x00\x00\x01\x67\x42\x00\x00\x00\x01\x65"), "h264")
    assert not is_keyframe(av.Packet(b"\x00\x00\x00\x01\x41\x9a"), "h264")


@pytest.mark.webrtc
async def test_a_forwarded_call_carries_packets_both_ways_and_each_side_gets_the_others_media(
    rapport: Rapport,
) -> None:
    rep, customer, call, customer_media, rep_media = await rapport.media_call()
    await rep_media.wait_frames("video", 60)
    await customer_media.wait_frames("video", 60)
    await rep_media.wait_frames("audio", 100)

    live = rapport.center.sessions[call["session_id"]]
    assert live.media is not None and live.media.forward

    seen: list[object] = []

    class Probe:
        def push(self, item: object) -> None:
            seen.append(item)

    for role in ("customer", "rep"):
        for kind in ("video", "audio"):
            live.media.feeds[role][kind].subscribe(Probe())
    await asyncio.sleep(0.5)
    assert seen and all(isinstance(item, av.Packet) for item in seen), "no decoded frame crosses the server"
    assert {codec_of(p) for p in seen} == {"vp8", "opus"}
    assert rep_media.received["video"].last.width == 640, "the rep's decoder reads the forwarded VP8"
    # Forwarded to the other side, not reflected: each decodes the other's colour and tone.
    await rep_media.wait_to_see_and_hear(CUSTOMER)
    await customer_media.wait_to_see_and_hear(REP)


# The customer's camera turns from red to green just as the burst is lost: only a new keyframe shows green.
CUSTOMER_AFTER_THE_LOSS = Identity("customer after the loss", (40, 200, 40), CUSTOMER.tone_hz)


@pytest.mark.webrtc
@pytest.mark.parametrize("leg", ["customer-to-server", "server-to-rep"])
async def test_lost_video_packets_heal_at_a_keyframe_asked_of_the_customer(
    rapport: Rapport, leg: str, record_property: Callable[[str, object], None]
) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    pictures = {who.bgr: solid_frame(who.bgr) for who in (CUSTOMER, CUSTOMER_AFTER_THE_LOSS)}
    showing = [CUSTOMER.bgr]
    camera = PatternVideoTrack(frame_for_time=lambda _t: pictures[showing[0]])
    customer_media = MediaClient(video=camera, identity=CUSTOMER)
    # The rep's end gives up on a lost packet and asks for a keyframe quickly, as a browser does.
    rep_media = MediaClient(identity=REP, heal_lost_video=True)
    rapport.media += [customer_media, rep_media]
    keyframes_asked: list[float] = []  # when the customer's camera was asked for one (PLI/FIR)
    send_keyframe = customer_media.video_sender._send_keyframe

    def counting() -> None:
        keyframes_asked.append(time.monotonic())
        send_keyframe()

    customer_media.video_sender._send_keyframe = counting  # type: ignore[method-assign]
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)
    await rep_media.wait_to_see(CUSTOMER)
    if leg == "customer-to-server":
        loss = VideoPacketLoss(customer_media, "outgoing")
    else:
        loss = VideoPacketLoss(rep_media, "incoming")
    await asyncio.sleep(0.6)  # past the server's keyframe-request throttle
    asked_before = len(keyframes_asked)

    showing[0] = CUSTOMER_AFTER_THE_LOSS.bgr
    loss.lose_next(15)
    await loss.wait_burst()
    lost_at = time.monotonic()
    # A deadline well past a keyframe round trip: only a picture that never heals (or takes aiortc's
    # default ~17 s wait for 512 more packets) misses it.
    await rep_media.wait_to_see(CUSTOMER_AFTER_THE_LOSS, timeout=8.0)
    healed_at = time.monotonic()

    requests = keyframes_asked[asked_before:]
    assert requests, "the customer's camera was never asked for a keyframe"
    assert requests[0] <= healed_at, "the picture healed before any keyframe was asked: the loss was repaired"
    record_property("healed_after_s", round(healed_at - lost_at, 3))
    frames = rep_media.frames("video")
    await asyncio.sleep(2.0)
    assert rep_media.frames("video") > frames + 10, "the picture keeps flowing after it healed"


@pytest.mark.webrtc
async def test_the_transcoding_path_stays_selectable(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, media_path="transcode"))
    try:
        await rapport.add_user("rep1")
        _rep, _customer, call, cm, rm = await rapport.media_call()
        await rm.wait_frames("video", 30)
        live = rapport.center.sessions[call["session_id"]]
        assert live.media is not None and not live.media.forward
        # Decoded and re-encoded, still each side's own media to the other.
        await rm.wait_to_see_and_hear(CUSTOMER)
        await cm.wait_to_see_and_hear(REP)
    finally:
        await rapport.stop()


@pytest.mark.webrtc
async def test_h264_from_one_side_is_forwarded_as_h264_to_the_other(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
    rapport.media += [customer_media, rep_media]
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]
    for transceiver in customer_media.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(h264)  # this customer's device only does H.264
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)  # offers VP8 first, like a browser: answered with H.264
    await rep_media.wait_frames("video", 30)
    await customer_media.wait_frames("video", 30)
    live = rapport.center.sessions[call["session_id"]]
    assert live.media is not None and live.media.video_codec == "H264"
    seen: list[object] = []

    class Probe:
        def push(self, item: object) -> None:
            seen.append(item)

    live.media.feeds["customer"]["video"].subscribe(Probe())
    live.media.feeds["rep"]["video"].subscribe(Probe())
    await asyncio.sleep(0.5)
    assert {codec_of(p) for p in seen} == {"h264"}
    assert rep_media.received["video"].last.width == 640
    await rep_media.wait_to_see(CUSTOMER)
    await customer_media.wait_to_see(REP)


async def until(condition: Callable[[], bool], timeout: float) -> None:
    """Wait for ``condition`` (polled); the assertions after it say what did not happen."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110 - a condition on plain state
        await asyncio.sleep(0.05)


class RtpLog:
    """Every video RTP packet and sender report that reaches a client (after SRTP), and losses on request.

    ``drop_once``: sequence numbers whose first transmission is lost (a retransmission gets through).
    """

    def __init__(self, client: MediaClient) -> None:
        description = client.pc.remoteDescription
        assert description is not None, "negotiate first"
        video = next(m for m in SessionDescription.parse(description.sdp).media if m.kind == "video")
        self.media_types = {c.payloadType for c in video.rtp.codecs if c.name.lower() != "rtx"}
        self.rtx_types = {c.payloadType for c in video.rtp.codecs if c.name.lower() == "rtx"}
        self.packets: list[RtpPacket] = []
        self.rtx_osns: list[int] = []
        self.reports: list[RtcpSrPacket] = []
        self.drop_once: set[int] = set()
        self.dropped: set[int] = set()
        transport = next(r for r in client.pc.getReceivers() if r.track.kind == "video").transport
        handle_rtp, handle_rtcp = transport._handle_rtp_data, transport._handle_rtcp_data

        async def logged_rtp(data: bytes, arrival_time_ms: int) -> None:
            packet = RtpPacket.parse(data)
            if packet.payload_type in self.media_types:
                if packet.sequence_number in self.drop_once:
                    self.drop_once.discard(packet.sequence_number)
                    self.dropped.add(packet.sequence_number)
                    return
                self.packets.append(packet)
            elif packet.payload_type in self.rtx_types and len(packet.payload) >= 2:
                self.rtx_osns.append(int.from_bytes(packet.payload[:2], "big"))
            await handle_rtp(data, arrival_time_ms)

        async def logged_rtcp(data: bytes) -> None:
            with contextlib.suppress(ValueError):
                self.reports += [p for p in RtcpPacket.parse(data) if isinstance(p, RtcpSrPacket)]
            await handle_rtcp(data)

        transport._handle_rtp_data = logged_rtp
        transport._handle_rtcp_data = logged_rtcp

    def video_reports(self) -> list[RtcpSrPacket]:
        ssrcs = {p.ssrc for p in self.packets}
        return [r for r in self.reports if r.ssrc in ssrcs]


def unwrap(values: list[int], modulus: int) -> list[int]:
    out = [values[0]]
    for value in values[1:]:
        delta = (value - out[-1]) % modulus
        out.append(out[-1] + (delta - modulus if delta >= modulus // 2 else delta))
    return out


def outgoing(rapport: Rapport, session_id: str, role: str, kind: str) -> RtpFeedTrack:
    live = rapport.center.sessions[session_id]
    assert isinstance(live.media, CallMedia)
    return next(t for t in live.media._outgoing[role] if t.kind == kind and isinstance(t, RtpFeedTrack))


# The customer's camera after a reconnect: a new connection, a new SSRC, new sequence numbers and clock.
CUSTOMER_RECONNECTED = Identity("customer reconnected", (40, 200, 40), CUSTOMER.tone_hz)


@pytest.mark.webrtc
async def test_a_re_offer_keeps_the_reps_stream_continuous(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    pictures = {who.bgr: solid_frame(who.bgr) for who in (CUSTOMER, CUSTOMER_RECONNECTED)}
    showing = [CUSTOMER.bgr]
    customer_media = MediaClient(
        video=PatternVideoTrack(frame_for_time=lambda _t: pictures[showing[0]]), identity=CUSTOMER
    )
    rep_media = MediaClient(identity=REP)
    rapport.media += [customer_media, rep_media]
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)
    await rep_media.wait_to_see(CUSTOMER)
    log = RtpLog(rep_media)
    await rep_media.wait_frames("video", rep_media.frames("video") + 15)

    showing[0] = CUSTOMER_RECONNECTED.bgr
    await customer_media.restart()  # as the page does after a network change: a new peer connection
    await rep_media.wait_to_see(CUSTOMER_RECONNECTED)
    frames = rep_media.frames("video")
    await rep_media.wait_frames("video", frames + 15)

    stream = outgoing(rapport, call["session_id"], "rep", "video")
    assert stream.rewriter is not None and stream.rewriter.segments >= 2, "the reconnect began a new segment"
    assert len({p.ssrc for p in log.packets}) == 1, "one SSRC to the rep throughout"
    seqs = unwrap([p.sequence_number for p in log.packets], 1 << 16)
    assert sorted(set(seqs)) == list(range(min(seqs), max(seqs) + 1)), "no hole in the sequence numbers"
    stamps = unwrap([p.timestamp for p in log.packets], 1 << 32)
    assert all(b >= a for a, b in itertools.pairwise(stamps)), "timestamps never went back"


@pytest.mark.webrtc
async def test_a_nack_is_answered_from_the_servers_cache_as_rtx(rapport: Rapport) -> None:
    _rep, _customer, call, customer_media, rep_media = await rapport.media_call()
    await rep_media.wait_to_see(CUSTOMER)
    log = RtpLog(rep_media)
    await rep_media.wait_frames("video", rep_media.frames("video") + 5)
    stream = outgoing(rapport, call["session_id"], "rep", "video")
    retransmitted = stream.retransmitted
    newest = log.packets[-1].sequence_number
    log.drop_once = {(newest + n) % (1 << 16) for n in (20, 21, 40)}
    await until(lambda: not log.drop_once and log.dropped <= set(log.rtx_osns), 10)
    assert log.dropped and log.dropped <= set(log.rtx_osns), "each lost packet came back as RTX with its OSN"
    assert stream.retransmitted >= retransmitted + len(log.dropped)
    frames = rep_media.frames("video")
    await rep_media.wait_frames("video", frames + 30)  # and the picture flows on


@pytest.mark.webrtc
async def test_sender_reports_count_the_forwarded_packets_with_a_consistent_clock(rapport: Rapport) -> None:
    _rep, _customer, call, _customer_media, rep_media = await rapport.media_call()
    await rep_media.wait_to_see(CUSTOMER)
    log = RtpLog(rep_media)
    await until(lambda: len(log.video_reports()) >= 3, 15)
    reports = log.video_reports()
    assert len(reports) >= 3, "the rep got sender reports for its forwarded video"
    stream = outgoing(rapport, call["session_id"], "rep", "video")
    last = reports[-1].sender_info
    assert 0 < last.packet_count <= stream.packets_out and last.octet_count > 0
    # Between two reports, RTP time moved on as much as NTP time did (90 kHz video clock).
    first = reports[0].sender_info
    ntp_s = (last.ntp_timestamp - first.ntp_timestamp) / (1 << 32)
    rtp_s = ((last.rtp_timestamp - first.rtp_timestamp) % (1 << 32)) / 90_000
    assert ntp_s > 0.5 and abs(rtp_s - ntp_s) < 0.25, (ntp_s, rtp_s)


@pytest.mark.webrtc
async def test_hostile_rtp_payloads_are_counted_and_dropped_and_the_call_carries_on(rapport: Rapport) -> None:
    # A dropped packet is a hole the rep's NACK cannot always fill (its retransmission may be corrupted too):
    # the rep's end gives up on it and asks for a keyframe, as a browser does (plain aiortc waits 17 s).
    _rep, _customer, call, customer_media, rep_media = await rapport.media_call(rep_heals=True)
    await rep_media.wait_to_see(CUSTOMER)
    live = rapport.center.sessions[call["session_id"]]
    assert isinstance(live.media, CallMedia)
    feed = live.media.feeds["customer"]["video"]
    assert isinstance(feed, RtpParticipantFeed)
    # Corrupt some of what the customer sends (video and audio alike).
    transport = customer_media.video_sender.transport
    send_rtp = transport._send_rtp
    corrupted = [0]

    async def corrupting(data: bytes) -> None:
        if not is_rtcp(data) and corrupted[0] < 30:
            packet = RtpPacket.parse(data)
            if packet.payload and len(packet.payload) > 4 and packet.sequence_number % 7 == 0:
                corrupted[0] += 1
                # A picture id announced and missing (aiortc's depayloader refuses it), or a descriptor and no
                # frame (ours does).
                packet.payload = b"\x90\xe0" if corrupted[0] % 2 else b"\x10"
                data = packet.serialize()
        await send_rtp(data)

    transport._send_rtp = corrupting
    await until(lambda: corrupted[0] >= 30, 10)
    transport._send_rtp = send_rtp
    assert corrupted[0] == 30
    assert feed.malformed > 0, "counted as malformed where aiortc let them through"
    frames = rep_media.frames("video")
    await rep_media.wait_frames("video", frames + 30)
    await rep_media.wait_to_see(CUSTOMER)
    assert live.media.peers["customer"] is not None and live.media.peers["customer"].state == "connected"
