"""A slow, failing or crashing emotion detector never slows the call, and the cues recover."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from emotion import EmotionService
from server.config import Settings
from tests.support.fakes import ExitOnceDetector, HangOnceDetector, SleepyDetector
from tests.support.server import Rapport, start_rapport

pytestmark = pytest.mark.webrtc

MEASURE_S = 6.0


async def rep_fps_during_call(settings: Settings, service: EmotionService | None, consent: bool) -> tuple[float, list]:
    """Run one call; return the video fps the rep received over MEASURE_S and the rep's inbox."""
    data_dir = settings.data_dir.parent / f"data-{time.monotonic_ns()}"  # one fresh database per call
    rapport: Rapport = await start_rapport(
        replace(settings, data_dir=data_dir, emotion_cues=service is not None), emotion_service=service
    )
    try:
        await rapport.add_user("rep1")
        rep, _customer, _call, _cm, rm = await rapport.media_call(identified=False, emotion_consent=consent)
        await rm.wait_frames("video", 30)
        await asyncio.sleep(1.0)
        start_frames, t0 = rm.frames("video"), time.monotonic()
        await asyncio.sleep(MEASURE_S)
        fps = (rm.frames("video") - start_frames) / (time.monotonic() - t0)
        return fps, list(rep.inbox)
    finally:
        await rapport.stop()


async def with_detector(
    settings: Settings, factory: str | Callable[[], object], analysis_timeout: float = 1.0
) -> tuple[float, list, int]:
    service = EmotionService(factory, analysis_timeout=analysis_timeout, restart_backoff=(0.2, 2.0))  # a process
    await service.start()
    try:
        fps, inbox = await rep_fps_during_call(settings, service, consent=True)
        return fps, inbox, service.restarts
    finally:
        await service.aclose()


async def restarted_without_slowing_the_call(
    settings: Settings, normal_fps: float, factory: Callable[[], object]
) -> list[dict[str, Any]]:
    """A call through a worker whose detector fails once: the call kept its pace, the worker was restarted.
    Returns the rep's inbox."""
    fps, inbox, restarts = await with_detector(settings, factory)
    assert fps >= 0.95 * normal_fps, (fps, normal_fps)
    assert restarts >= 1
    return inbox


@pytest.fixture
async def normal_fps(settings: Settings) -> float:
    fps, _ = await rep_fps_during_call(settings, None, consent=False)
    assert fps > 20
    return fps


async def test_a_detector_taking_2s_per_frame_does_not_slow_the_call(settings: Settings, normal_fps: float) -> None:
    # Slow, not stuck: under the deadline, so the worker is never killed; frames simply wait (newest only).
    fps, inbox, restarts = await with_detector(settings, functools.partial(SleepyDetector, 2.0), analysis_timeout=5.0)
    assert restarts == 0
    assert fps >= 0.95 * normal_fps, (fps, normal_fps)
    # Analysis went on at its own slow pace, newest frame only.
    assert any(m["type"] == "emotion.status" for m in inbox)


async def test_a_crashing_worker_does_not_slow_the_call_and_is_restarted(
    settings: Settings, normal_fps: float, tmp_path: Path
) -> None:
    inbox = await restarted_without_slowing_the_call(
        settings, normal_fps, functools.partial(ExitOnceDetector, str(tmp_path / "m"))
    )
    statuses = [m["status"] for m in inbox if m["type"] == "emotion.status"]
    assert "degraded" in statuses
    # Recovered: updates flow after the restart.
    assert statuses[-1] == "ok" or any(m["type"] == "emotion.update" for m in inbox)


async def test_a_hanging_worker_is_killed_and_the_cues_recover(
    settings: Settings, normal_fps: float, tmp_path: Path
) -> None:
    inbox = await restarted_without_slowing_the_call(
        settings, normal_fps, functools.partial(HangOnceDetector, str(tmp_path / "h"))
    )
    assert any(m["type"] == "emotion.update" for m in inbox)
