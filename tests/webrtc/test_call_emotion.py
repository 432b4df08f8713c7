"""Emotion cues through a real call: customer aiortc client → server → rep client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from emotion import EmotionService, fer_available
from server.config import Settings
from tests.support.clients import (
    MediaClient,
    PatternVideoTrack,
    SignalingClient,
    SwitchingVideoTrack,
    VideoSendLog,
    solid_frame,
)
from tests.support.faces import make_clip
from tests.support.fakes import GREY, RED, RecordingDetector
from tests.support.server import Rapport, running_with_cues, start_rapport

pytestmark = pytest.mark.webrtc

REP_BLUE = (255, 0, 0)  # BGR: the rep's camera shows pure blue, which no customer frame has


def blue_frames() -> list[np.ndarray]:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:] = REP_BLUE
    return [frame]


@pytest.fixture
def emotion_settings(settings: Settings) -> Settings:
    return replace(settings, emotion_cues=True)


async def start_call(
    rapport: Rapport, *, consent: bool, customer_video: PatternVideoTrack
) -> tuple[SignalingClient, SignalingClient, MediaClient, MediaClient]:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer(reason="complaint", emotion_consent=consent)
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    customer_media = MediaClient(video=customer_video)
    rep_media = MediaClient(video=PatternVideoTrack(frames=blue_frames()))
    rapport.media += [customer_media, rep_media]
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)
    return rep, customer, customer_media, rep_media


@pytest.fixture(params=[0, 2], ids=["media-in-process", "media-workers"])
async def fake_cues(emotion_settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Rapport]:
    # With media workers the customer's frames come to the cues from another process: same rules.
    RecordingDetector.seen = []
    changed = replace(emotion_settings, media_workers=request.param)
    async with running_with_cues(changed, "tests.support.fakes:recording_detector") as rapport:
        yield rapport


@pytest.fixture(params=[0, 2], ids=["media-in-process", "media-workers"])
async def colour_cues(emotion_settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Rapport]:
    """Cues from a detector that reads the frame's colour: grey is a neutral face, red an angry one."""
    changed = replace(emotion_settings, media_workers=request.param)
    async with running_with_cues(changed, "tests.support.fakes:ColourDetector") as rapport:
        yield rapport


async def test_an_angry_face_raises_the_flag_at_the_rep_and_the_wall_clock_latency_is_recorded(
    colour_cues: Rapport, record_property: Callable[[str, object], None]
) -> None:
    neutral, angry = solid_frame(GREY), solid_frame(RED)
    camera = SwitchingVideoTrack(lambda _t: neutral, lambda _t: angry)
    rep, _customer, customer_media, _rep_media = await start_call(colour_cues, consent=True, customer_video=camera)
    sent = VideoSendLog(customer_media)
    first = await rep.wait_for("emotion.update", timeout=15)
    assert first["dominant"] == "neutral"
    before_switch = len(rep.inbox)
    camera.switch()
    # The deadline only guards against a hang; how long it takes is bench/cue_latency.py's business.
    flag = await rep.wait_for(
        lambda m: m["type"] == "emotion.update" and m["flag"] == "raised", after=before_switch, timeout=30
    )
    assert flag["dominant"] == "angry"
    assert not any(m.get("flag") == "raised" for m in rep.inbox[:before_switch]), "a flag before the angry face"
    assert camera.switched_at is not None
    left_customer = sent.first_sent_after(camera.switched_at)
    assert left_customer is not None, "the angry frame never left the customer's client"
    latency = rep.arrival_of(flag) - left_customer
    assert latency > 0
    record_property("cue_latency_wall_s", round(latency, 3))


async def test_the_reps_video_never_reaches_the_detector(fake_cues: Rapport) -> None:
    customer_video = PatternVideoTrack()  # a colour gradient, never pure blue
    rep, _customer, customer_media, _rep_media = await start_call(
        fake_cues, consent=True, customer_video=customer_video
    )
    update = await rep.wait_for("emotion.update", timeout=15)
    assert update["dominant"] == "neutral"
    await customer_media.wait_frames("video", 60)  # the rep's blue video flowed for a while
    await asyncio.sleep(1.0)
    seen = list(RecordingDetector.seen)
    assert len(seen) >= 3
    assert not any(b > 200 and g < 50 and r < 50 for b, g, r in seen), "a rep frame reached the detector"


async def test_a_customer_who_declines_is_never_analysed_and_the_rep_sees_cues_off(fake_cues: Rapport) -> None:
    rep, customer, _cm, rep_media = await start_call(fake_cues, consent=False, customer_video=PatternVideoTrack())
    off = await rep.wait_for("emotion.status", timeout=10)
    assert off["status"] == "off" and off["message"] == "emotion cues off (customer's choice)"
    await rep_media.wait_frames("video", 60)
    assert RecordingDetector.seen == []
    assert not any(m["type"] == "emotion.update" for m in rep.inbox)

    # Changing their mind mid-call starts the cues; changing it back stops them at once.
    await customer.request({"type": "consent.emotion", "enabled": True})
    await rep.wait_for("emotion.update", timeout=15)
    n = len(rep.inbox)
    await customer.request({"type": "consent.emotion", "enabled": False})
    again = await rep.wait_for(lambda m: m["type"] == "emotion.status" and m["status"] == "off", after=n, timeout=10)
    assert again["message"] == "emotion cues off (customer's choice)"
    await asyncio.sleep(0.5)
    frozen = len(RecordingDetector.seen)
    await asyncio.sleep(1.5)
    assert len(RecordingDetector.seen) == frozen


async def test_only_the_customer_may_give_consent(fake_cues: Rapport) -> None:
    rep, _customer, _cm, _rm = await start_call(fake_cues, consent=True, customer_video=PatternVideoTrack())
    await rep.send({"type": "consent.emotion", "enabled": False, "id": "c1"})
    err = await rep.wait_for(lambda m: m.get("reply_to") == "c1")
    assert err["code"] == "forbidden"


async def test_without_the_emotion_stack_calls_work_and_reps_are_told(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, emotion_cues=False))
    try:
        await rapport.add_user("rep1")
        rep, _c, _cm, rep_media = await start_call(rapport, consent=True, customer_video=PatternVideoTrack())
        status = await rep.wait_for("emotion.status", timeout=10)
        assert status["status"] == "unavailable" and "turned off" in status["message"]
        await rep_media.wait_frames("video", 30)
    finally:
        await rapport.stop()


async def test_a_model_that_fails_to_load_is_reported_to_the_rep_and_calls_go_on(emotion_settings: Settings) -> None:
    service = EmotionService("tests.support.fakes:UnavailableDetector")
    await service.start()
    rapport = await start_rapport(emotion_settings, emotion_service=service)
    try:
        await rapport.add_user("rep1")
        rep, _c, _cm, rep_media = await start_call(rapport, consent=True, customer_video=PatternVideoTrack())
        status = await rep.wait_for(
            lambda m: m["type"] == "emotion.status" and m["status"] == "unavailable", timeout=30
        )
        assert "no model" in status["message"]
        await rep_media.wait_frames("video", 60)
    finally:
        await rapport.stop()
        await service.aclose()


@pytest.mark.fer
async def test_real_fer_flags_frustration_after_the_switch_and_never_while_happy(
    emotion_settings: Settings, record_property: Callable[[str, object], None]
) -> None:
    available, why = fer_available()
    if not available:
        pytest.skip(why)
    service = EmotionService()  # the real fer fast path in a worker process
    await service.start()
    assert await service.wait_ready(timeout=150) == "ok", service.status_message
    rapport = await start_rapport(emotion_settings, emotion_service=service)
    try:
        await rapport.add_user("rep1")
        happy, angry = make_clip([("happy", 1.0)]), make_clip([("angry", 1.0)])  # each holds its face past 1 s
        camera = SwitchingVideoTrack(happy.frame_at, angry.frame_at)
        rep, _customer, customer_media, _rm = await start_call(rapport, consent=True, customer_video=camera)
        sent = VideoSendLog(customer_media)
        # Five seconds of a happy face, then the angry one.
        await rep.wait_for(lambda m: m["type"] == "emotion.update" and m["media_time"] >= 5.0, timeout=40)
        before_switch = len(rep.inbox)
        camera.switch()
        flag = await rep.wait_for(
            lambda m: m["type"] == "emotion.update" and m["flag"] == "raised", after=before_switch, timeout=40
        )
        happy_updates: list[dict[str, Any]] = [m for m in rep.inbox[:before_switch] if m["type"] == "emotion.update"]
        assert happy_updates, "no updates during the happy part"
        assert not any(u["flag_active"] for u in happy_updates)
        assert sum(u["dominant"] == "happy" for u in happy_updates) >= len(happy_updates) * 0.7
        assert flag["dominant"] == "angry"
        # Wall clock, from the angry frame leaving the customer's client to the flag reaching the rep's
        # socket: recorded, not asserted (bench/cue_latency.py measures it).
        assert camera.switched_at is not None
        left_customer = sent.first_sent_after(camera.switched_at)
        assert left_customer is not None
        record_property("cue_latency_wall_s", round(rep.arrival_of(flag) - left_customer, 3))

        # The per-second timeline is stored for QA: scores and flags, never pictures.
        await rep.send({"type": "call.end"})
        await rep.wait_for("call.ended")
        # The rest of the timeline is stored as the call closes, then summed up on the session.
        for _ in range(100):
            record = await rapport.store.get_session(flag["session_id"])
            if record is not None and record.flag_count is not None:
                break
            await asyncio.sleep(0.1)
        assert record is not None and (record.flag_count or 0) >= 1 and (record.peak_frustration or 0) > 0.5
        timeline = await rapport.store.list_timeline(flag["session_id"])
        assert len(timeline) >= 5
        assert any(row.flag for row in timeline) and not all(row.flag for row in timeline)
        assert set(timeline[0].to_json()) == {
            "second",
            "samples",
            "face_present",
            "mean_frustration",
            "max_frustration",
            "dominant",
            "flag",
        }
    finally:
        await rapport.stop()
        await service.aclose()
