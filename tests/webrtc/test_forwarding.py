"""Zero-transcode forwarding: packets, not frames, cross the server; keyframe requests travel upstream.

The first tests pin the aiortc internals the seam relies on (server/media/forwarding.py):
if an upgrade moves them, these fail loudly before anything subtler does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

import av
import pytest
from aiortc import RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from server.config import Settings
from server.media import healing
from server.media.feeds import FeedTrack, ParticipantFeed, codec_of, tag_codec
from server.media.forwarding import GapHealingJitterBuffer, is_keyframe
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


async def test_forwarded_video_starts_at_a_keyframe_and_asks_for_one() -> None:
    feed = ParticipantFeed("video")
    asked: list[int] = []
    feed.keyframe_source = lambda: asked.append(1)
    track = FeedTrack(feed)
    track.push(packet(b"\x11delta", 0, False))
    track.push(packet(b"\x11delta", 3000, False))
    assert asked == [1], "asked once (requests are throttled)"
    assert track.dropped == 2, "both deltas before the first keyframe were dropped"
    track.push(packet(b"\x10key", 6000, True))
    track.push(packet(b"\x11delta", 9000, False))
    assert [p.pts for p in [await track.recv(), await track.recv()]] == [6000, 9000]
    track.stop()


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
