"""Zero-transcode forwarding: packets, not frames, cross the server; keyframe requests travel upstream.

The first tests pin the aiortc internals the seam relies on (server/forwarding.py):
if an upgrade moves them, these fail loudly before anything subtler does.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import replace
from fractions import Fraction

import aiortc
import av
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc import rtcrtpreceiver as receiver_module

from server.config import Settings
from server.feeds import FeedTrack, ParticipantFeed, codec_of, tag_codec
from server.forwarding import install, is_keyframe
from tests.conftest import Rapport, start_rapport
from tests.support.clients import MediaClient


def test_the_aiortc_seams_are_where_forwarding_expects_them() -> None:
    assert aiortc.__version__ == "1.16.0", "re-check server/forwarding.py against this aiortc"
    install()
    params = list(inspect.signature(receiver_module.decoder_worker).parameters)
    assert params == ["loop", "input_q", "output_q", "decode_error"]
    source = inspect.getsource(RTCRtpReceiver.receive)
    assert "target=decoder_worker" in source and "self._track._queue" in source
    assert "self._send_keyframe()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "self.__encoder.pack(data)" in inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert hasattr(RTCRtpReceiver, "_send_rtcp_pli") and hasattr(RTCRtpReceiver, "getSynchronizationSources")
    # The transit metric wraps the sender's step that turns a frame or packet into RTP payloads.
    assert "await self._next_encoded_frame(codec)" in inspect.getsource(RTCRtpSender._run_rtp)


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
    assert asked == [1], "asked once (requests are throttled)" and track.dropped == 2
    track.push(packet(b"\x10key", 6000, True))
    track.push(packet(b"\x11delta", 9000, False))
    assert [p.pts for p in [await track.recv(), await track.recv()]] == [6000, 9000]
    track.stop()


@pytest.mark.webrtc
async def test_a_forwarded_call_carries_packets_both_ways_and_relays_keyframe_requests(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    customer_media, rep_media = MediaClient(), MediaClient()
    rapport.media += [customer_media, rep_media]
    asked: list[str] = []
    original = customer_media.video_sender._send_keyframe

    def counting() -> None:
        asked.append("pli")
        original()

    customer_media.video_sender._send_keyframe = counting  # type: ignore[method-assign]
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)
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

    # The rep's receiver reports picture loss: the customer's camera is asked for a keyframe.
    before = len(asked)
    receiver = next(r for r in rep_media.pc.getReceivers() if r.track.kind == "video")
    for source in receiver.getSynchronizationSources():
        await receiver._send_rtcp_pli(source.source)
    for _ in range(50):
        if len(asked) > before:
            break
        await asyncio.sleep(0.1)
    assert len(asked) > before
    frames = rep_media.frames("video")
    await asyncio.sleep(2.0)
    outgoing = [t for t in live.media._outgoing["rep"] if t.kind == "video"]
    assert rep_media.frames("video") > frames + 30, ("the picture keeps flowing", [t.dropped for t in outgoing])


@pytest.mark.webrtc
async def test_the_transcoding_path_stays_selectable(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, media_path="transcode"))
    try:
        await rapport.add_user("rep1")
        rep = await rapport.rep("rep1")
        customer, call = await rapport.customer()
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        cm, rm = MediaClient(), MediaClient()
        rapport.media += [cm, rm]
        await cm.negotiate(customer)
        await rm.negotiate(rep)
        await rm.wait_frames("video", 30)
        live = rapport.center.sessions[call["session_id"]]
        assert live.media is not None and not live.media.forward
    finally:
        await rapport.aclose()
        await rapport.http.close()
        await rapport.server.close()


@pytest.mark.webrtc
async def test_h264_from_one_side_is_forwarded_as_h264_to_the_other(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    customer_media, rep_media = MediaClient(), MediaClient()
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
