"""The pipeline with stand-in detectors: flow control, isolation, failure recovery, shutdown.

Process-mode tests spawn real worker processes (about a second each to start);
the detectors come from tests.support.fakes, resolved inside the worker.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import multiprocessing
import time
from pathlib import Path

import av
import numpy as np
import pytest

from emotion.frames import InvalidFrame
from emotion.pipeline import EmotionService, EmotionStream
from emotion.sampler import AdaptiveSampler, EveryFrame, FrameSampler, Observation
from emotion.types import EmotionStatus, EmotionUpdate
from tests.emotion.conftest import EventLog, MakeService, pid_alive, wait_until
from tests.support import fakes
from tests.support.fakes import BLACK, GREEN, RED, solid

FAKES = "tests.support.fakes"


async def play(
    stream: EmotionStream, frames: list[tuple[float, np.ndarray]], *, lockstep: bool = True, timeout: float = 5.0
) -> None:
    """Push timed frames; in lockstep, wait for each kept frame to be analysed (deterministic media time)."""
    for media_time, frame in frames:
        before = stream.frames_analysed + stream.analysis_errors
        if stream.push_frame(frame, media_time) and lockstep:
            await wait_until(lambda b=before: stream.frames_analysed + stream.analysis_errors > b, timeout)  # type: ignore[misc]
        else:
            await asyncio.sleep(0)


def colour_clip(segments: list[tuple[tuple[int, int, int], float]], fps: int = 30) -> list[tuple[float, np.ndarray]]:
    frames, start = [], 0.0
    for colour, seconds in segments:
        frame = solid(colour)
        frames += [(start + i / fps, frame) for i in range(round(seconds * fps))]
        start += seconds
    return frames


async def test_thread_mode_turns_frames_into_updates(make_service: MakeService) -> None:
    service = make_service(f"{FAKES}:ColourDetector", mode="thread")
    stream = service.open_stream("call-1")
    log = EventLog(stream)
    assert await service.wait_ready(10) == "ok"
    await play(stream, colour_clip([(GREEN, 2.0)]))
    update = await log.update(lambda u: u.face_present)
    assert update.dominant == "happy" and not update.flag_active
    assert log.statuses[0].status == "starting" and log.statuses[-1].status == "ok"
    # The default sampler: 5 of 30 frames per second at first, fewer once the face and the reading hold still.
    assert isinstance(stream.sampler, AdaptiveSampler)
    assert 4 <= stream.frames_sampled < 10


def textured(seed: int) -> np.ndarray:
    """A green frame (ColourDetector: happy) with a random pattern where its face box is."""
    frame = solid(GREEN)
    frame[10:30, 10:30] = np.random.default_rng(seed).integers(0, 256, (20, 20, 1), dtype=np.uint8) // 4 + (0, 150, 0)
    return frame


async def test_the_default_sampler_backs_off_on_a_steady_face_and_snaps_back_on_a_changed_one(
    make_service: MakeService,
) -> None:
    service = make_service(f"{FAKES}:ColourDetector", mode="thread")
    stream = service.open_stream("call-1")
    await service.wait_ready(10)
    await play(stream, [(i / 30, textured(1)) for i in range(90)])
    assert stream.frames_sampled <= 9, "3 s of a steady face: backed off from 15 analyses"
    sampled = stream.frames_sampled
    # The face changes between two analyses: the next full-rate frame (0.2 s grid) is analysed.
    kept = [t for t, frame in [(3.0 + i / 30, textured(2)) for i in range(7)] if stream.push_frame(frame, t)]
    assert kept and kept[0] <= 3.2 + 0.001 and stream.frames_sampled == sampled + len(kept)
    assert isinstance(stream.sampler, AdaptiveSampler) and stream.sampler.snapped_back >= 1


async def test_only_the_newest_frame_waits_and_the_queue_never_grows(make_service: MakeService) -> None:
    slow = functools.partial(fakes.SleepyDetector, 0.3)
    service = make_service(slow)
    stream = service.open_stream("call-1", sampler=EveryFrame())
    assert await service.wait_ready(30) == "ok"

    # A burst: 100 frames before the loop can hand any to the worker.
    for i in range(100):
        assert stream.push_frame(solid(GREEN), i / 30)
    assert stream.stats()["pending"] == 1 and stream.frames_replaced == 99
    await wait_until(lambda: stream.frames_analysed == 1 and not stream.stats()["in_flight"], 5, "the burst")
    assert stream.last_update is not None and stream.last_update.media_time == pytest.approx(99 / 30)

    # A steady 30 fps for 2 s: the worker manages ~3 per second; the rest are replaced, never queued.
    pending_seen = set()
    start = time.monotonic()
    i = 100
    while time.monotonic() - start < 2.0:
        stream.push_frame(solid(GREEN), i / 30)
        pending_seen.add(stream.stats()["pending"])
        i += 1
        await asyncio.sleep(1 / 30)
    analysed = stream.frames_analysed - 1
    assert 3 <= analysed <= 9, f"only a handful of {i - 100} frames should be analysed, got {analysed}"
    assert pending_seen <= {0, 1}


async def test_a_slow_detector_does_not_stall_the_event_loop(make_service: MakeService) -> None:
    # BusyDetector holds the CPU and its GIL for 2 s per frame: fine, it is another process.
    busy = functools.partial(fakes.BusyDetector, 2.0)
    service = make_service(busy, analysis_timeout=10)
    stream = service.open_stream("call-1", sampler=EveryFrame())
    assert await service.wait_ready(30) == "ok"

    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        for i in range(120):  # 4 s of 30 fps video while analyses take 2 s each
            stream.push_frame(solid(GREEN), i / 30)
            await asyncio.sleep(1 / 30)
        await wait_until(lambda: stream.frames_analysed >= 2, 10, "two slow analyses")
    finally:
        ticking.cancel()
    assert len(gaps) > 150, "the ticker kept ticking"
    assert max(gaps) < 0.25, f"the event loop stalled for {max(gaps):.3f} s"


@pytest.mark.parametrize("mode", ["thread", "process"])
async def test_a_detector_error_degrades_the_stream_until_the_next_good_frame(
    make_service: MakeService, mode: str
) -> None:
    service = make_service(f"{FAKES}:FailsOnBlackDetector", mode=mode)
    stream = service.open_stream("call-1", sampler=EveryFrame())
    log = EventLog(stream)
    assert await service.wait_ready(30) == "ok"
    await play(stream, [(0.0, solid(BLACK)), (0.1, solid(BLACK))])
    degraded = await log.status("degraded")
    assert "cannot see anything" in degraded.message
    assert stream.analysis_errors == 2
    await play(stream, [(0.2, solid(GREEN)), (0.3, solid(GREEN))])
    await log.update(lambda u: u.dominant == "happy")
    await log.status("ok")
    assert service.status == "ok" and service.restarts == 0, "the worker itself was fine"


async def test_a_wrong_answer_from_the_detector_is_an_error_not_a_crash(make_service: MakeService) -> None:
    service = make_service(f"{FAKES}:WrongAnswerDetector", mode="thread")
    stream = service.open_stream("call-1", sampler=EveryFrame())
    log = EventLog(stream)
    await service.wait_ready(10)
    await play(stream, [(0.0, solid(GREEN))])
    assert "list[FaceEmotion]" in (await log.status("degraded")).message


async def test_a_worker_that_dies_is_restarted_and_analysis_resumes(make_service: MakeService, tmp_path: Path) -> None:
    marker = tmp_path / "exited"
    service = make_service(functools.partial(fakes.ExitOnceDetector, str(marker)), restart_backoff=(0.1, 1.0))
    stream = service.open_stream("call-1", sampler=EveryFrame())
    log = EventLog(stream)
    assert await service.wait_ready(30) == "ok"
    first_pid = service.worker_pids[0]

    async def keep_pushing() -> None:
        i = 0
        while True:
            stream.push_frame(solid(GREEN), i / 10)
            i += 1
            await asyncio.sleep(0.1)

    pusher = asyncio.create_task(keep_pushing())
    try:
        degraded = await log.status("degraded", timeout=10)
        assert "exit code 3" in degraded.message and "restarting" in degraded.message
        await log.status("ok", timeout=30)
        await log.update(lambda u: u.dominant == "happy", timeout=10)
    finally:
        pusher.cancel()
    assert marker.read_text() == str(first_pid)
    assert service.restarts == 1 and service.worker_pids and service.worker_pids[0] != first_pid
    assert not pid_alive(first_pid)


async def test_a_hung_worker_is_killed_after_the_deadline_and_replaced(
    make_service: MakeService, tmp_path: Path
) -> None:
    marker = tmp_path / "hung"
    service = make_service(
        functools.partial(fakes.HangOnceDetector, str(marker)), analysis_timeout=1.0, restart_backoff=(0.1, 1.0)
    )
    stream = service.open_stream("call-1", sampler=EveryFrame())
    log = EventLog(stream)
    assert await service.wait_ready(30) == "ok"
    hung_pid = service.worker_pids[0]
    stream.push_frame(solid(GREEN), 0.0)
    degraded = await log.status("degraded", timeout=10)
    assert "longer than 1 s" in degraded.message
    await log.status("ok", timeout=30)
    stream.push_frame(solid(RED), 1.0)
    assert (await log.update(lambda u: u.face_present, timeout=10)).dominant == "angry"
    assert not pid_alive(hung_pid)


@pytest.mark.parametrize("mode", ["thread", "process"])
async def test_an_unavailable_detector_is_reported_once_and_frames_are_dropped(
    make_service: MakeService, mode: str
) -> None:
    service = make_service(f"{FAKES}:UnavailableDetector", mode=mode)
    stream = service.open_stream("call-1")
    log = EventLog(stream)
    assert await service.wait_ready(30) == "unavailable"
    unavailable = await log.status("unavailable")
    assert "no model here" in unavailable.message and service.status_message == unavailable.message
    assert not stream.push_frame(solid(GREEN), 0.0), "frames are dropped at the door"
    late = service.open_stream("call-2")
    assert late.status == "unavailable"
    late_log = EventLog(late)
    await late_log.status("unavailable")
    await asyncio.sleep(0.2)
    assert [s.status for s in log.statuses].count("unavailable") == 1
    assert service.worker_pids == [] and service.restarts == 0


async def test_a_detector_that_cannot_start_is_retried_with_backoff(make_service: MakeService) -> None:
    service = make_service(f"{FAKES}:BrokenStartDetector", mode="thread", restart_backoff=(0.05, 0.2))
    stream = service.open_stream("call-1")
    log = EventLog(stream)
    degraded = await log.status("degraded")
    assert "model file is corrupt" in degraded.message
    await wait_until(lambda: service.restarts >= 3, 5, "three restarts")
    assert service.status == "degraded"


async def test_aclose_is_idempotent_ends_streams_and_leaves_no_processes() -> None:
    service = EmotionService(f"{FAKES}:ColourDetector")
    streams = [service.open_stream(f"call-{i}", sampler=EveryFrame()) for i in range(2)]
    logs = [EventLog(s) for s in streams]
    assert await service.wait_ready(30) == "ok"
    for s in streams:
        await play(s, [(0.0, solid(GREEN))])
    pids = service.worker_pids
    assert len(pids) == 1 and pid_alive(pids[0])

    await service.aclose()
    await service.aclose()
    for log in logs:
        await log.finished()
    assert all(s.closed for s in streams) and service.streams == {}
    assert multiprocessing.active_children() == [] and not pid_alive(pids[0])
    with pytest.raises(RuntimeError, match="closed"):
        service.open_stream("call-3")
    assert not streams[0].push_frame(solid(GREEN), 1.0)


async def test_aclose_kills_a_worker_in_the_middle_of_an_analysis() -> None:
    service = EmotionService(functools.partial(fakes.BusyDetector, 60.0), analysis_timeout=120)
    stream = service.open_stream("call-1", sampler=EveryFrame())
    assert await service.wait_ready(30) == "ok"
    pid = service.worker_pids[0]
    stream.push_frame(solid(GREEN), 0.0)
    await wait_until(lambda: bool(stream.stats()["in_flight"]), 5, "the analysis to start")
    started = time.monotonic()
    await service.aclose()
    assert time.monotonic() - started < 5
    assert not pid_alive(pid) and multiprocessing.active_children() == []


async def test_aclose_while_the_model_is_still_loading() -> None:
    service = EmotionService(functools.partial(fakes.SlowStartDetector, 60.0))
    await service.start()
    await wait_until(lambda: bool(service.worker_pids), 10, "the worker to spawn")
    pid = service.worker_pids[0]
    started = time.monotonic()
    await service.aclose()
    assert time.monotonic() - started < 5
    assert not pid_alive(pid) and multiprocessing.active_children() == []


async def test_stream_close_ends_iteration_and_flushes_the_timeline(make_service: MakeService) -> None:
    service = make_service(f"{FAKES}:ColourDetector", mode="thread")
    stream = service.open_stream("call-1", sampler=FrameSampler(5.0))
    log = EventLog(stream)
    await service.wait_ready(10)
    await play(stream, colour_clip([(GREEN, 2.5)]))
    rows = stream.take_timeline()
    assert [r.second for r in rows] == [0, 1]
    await stream.aclose()
    await stream.aclose()
    await log.finished()
    last = stream.take_timeline()
    assert [(r.second, r.dominant) for r in last] == [(2, "happy")]
    assert stream.take_timeline() == []
    assert not stream.push_frame(solid(GREEN), 3.0)
    # The key is free again once closed.
    service.open_stream("call-1")


async def test_stream_keys_are_unique(make_service: MakeService) -> None:
    service = make_service(f"{FAKES}:ColourDetector", mode="thread")
    service.open_stream("call-1")
    with pytest.raises(ValueError, match="already open"):
        service.open_stream("call-1")


async def test_streams_share_one_worker_fairly(make_service: MakeService) -> None:
    service = make_service(functools.partial(fakes.SleepyDetector, 0.03), mode="thread")
    streams = [service.open_stream(f"call-{i}", sampler=EveryFrame()) for i in range(3)]
    await service.wait_ready(10)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 1.5:
        for s in streams:
            s.push_frame(solid(GREEN), i / 30)
        i += 1
        await asyncio.sleep(1 / 30)
    counts = [s.frames_analysed for s in streams]
    assert min(counts) >= 5 and max(counts) <= 2 * min(counts) + 1, counts


async def test_push_takes_video_frames_and_their_own_timestamps(make_service: MakeService) -> None:
    service = make_service(f"{FAKES}:ColourDetector", mode="thread")
    stream = service.open_stream("call-1", sampler=EveryFrame())
    log = EventLog(stream)
    await service.wait_ready(10)
    frame = av.VideoFrame.from_ndarray(solid(RED, 320, 240), format="bgr24").reformat(format="yuv420p")
    frame.pts = 3 * 90_000 + 45_000
    frame.time_base = fractions.Fraction(1, 90_000)
    stream.push(frame)
    update = await log.update(lambda u: u.face_present)
    assert update.media_time == pytest.approx(3.5) and update.dominant == "angry"


async def test_hostile_inputs_never_break_the_stream(make_service: MakeService) -> None:
    fakes.ShapeRecorder.seen.clear()
    service = make_service(f"{FAKES}:ShapeRecorder", mode="thread")
    stream = service.open_stream("call-1", sampler=EveryFrame())
    log = EventLog(stream)
    await service.wait_ready(10)
    for bad in (
        None,
        "face.jpg",
        np.zeros((48, 64, 3), np.float64),
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((4, 4, 5), np.uint8),
    ):
        with pytest.raises(InvalidFrame):
            stream.push_frame(bad, 0.0)  # type: ignore[arg-type]
        stream.push(bad)  # type: ignore[arg-type]  # the track-reader path skips quietly
    with pytest.raises(InvalidFrame, match="media_time"):
        stream.push_frame(solid(GREEN), float("nan"))
    assert stream.frames_rejected == 11 and stream.frames_sampled == 0

    await play(stream, [(1.0, np.zeros((3000, 4000, 3), np.uint8))])
    await play(stream, [(2.0, np.zeros((2, 50_000), np.uint8))])
    await play(stream, [(3.0, solid(GREEN))])
    assert fakes.ShapeRecorder.seen == [(480, 640, 3), (1, 640, 3), (48, 64, 3)]
    await log.update(lambda u: u.media_time == 3.0)
    assert stream.status == "ok" and not stream.closed


async def test_colour_clip_flags_anger_within_two_seconds_and_not_before(make_service: MakeService) -> None:
    service = make_service(f"{FAKES}:ColourDetector", mode="thread")
    stream = service.open_stream("call-1")
    log = EventLog(stream)
    await service.wait_ready(10)
    await play(stream, colour_clip([(GREEN, 5.0), (RED, 5.0)]))
    raised = await log.update(lambda u: u.flag == "raised")
    assert 5.0 < raised.media_time <= 7.0
    assert not any(u.flag_active for u in log.updates if u.media_time < 5.0)
    assert len(log.updates) <= 2 * 10 + 3, "throttled to about two updates per second"
    rows = stream.take_timeline()
    assert [r.flag for r in rows[:5]] == [False] * 5 and rows[-1].flag


async def test_the_sampler_adapts_to_a_slow_worker(make_service: MakeService) -> None:
    service = make_service(functools.partial(fakes.SleepyDetector, 0.5), mode="thread")
    sampler = FrameSampler(5.0, min_fps=0.5)
    stream = service.open_stream("call-1", sampler=sampler)
    await service.wait_ready(10)
    start, i = time.monotonic(), 0
    while time.monotonic() - start < 3.0:
        stream.push_frame(solid(GREEN), i / 30)
        i += 1
        await asyncio.sleep(1 / 30)
    assert sampler.latency_s is not None and sampler.latency_s >= 0.45
    assert sampler.effective_fps < 2.0


async def test_services_refuse_bad_configuration() -> None:
    with pytest.raises(ValueError, match="mode"):
        EmotionService(mode="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module:attribute"):
        EmotionService("tests.support.fakes.ColourDetector")
    with pytest.raises(ValueError):
        EmotionService(workers=0)


async def test_status_events_are_json_ready() -> None:
    status = EmotionStatus("degraded", "emotion worker failed")
    assert status.to_dict() == {"type": "emotion.status", "status": "degraded", "message": "emotion worker failed"}
    assert isinstance(EmotionUpdate(0.0, False, None, 0.0, None).to_dict(), dict)


class ExplodingSampler:
    """Keeps every frame, then fails when told how long the analysis took."""

    def __call__(self, media_time: float, frame: object = None) -> bool:
        return True

    def record(self, latency_s: float) -> None:
        raise ZeroDivisionError("sampler arithmetic")

    def observe(self, observation: Observation) -> None:
        raise AssertionError("not reached: record failed first")


async def test_a_failure_after_the_analysis_costs_that_frame_not_the_service(make_service: MakeService) -> None:
    service = make_service(f"{FAKES}:ColourDetector", mode="thread")
    broken = service.open_stream("call-1", sampler=ExplodingSampler())
    healthy = service.open_stream("call-2", sampler=EveryFrame())
    log = EventLog(broken)
    await service.wait_ready(10)
    await play(broken, [(0.0, solid(GREEN)), (0.1, solid(GREEN))])
    assert "ZeroDivisionError: sampler arithmetic" in (await log.status("degraded")).message
    assert broken.frames_analysed == 2 and broken.analysis_errors == 2
    await play(healthy, [(0.0, solid(RED))])
    assert healthy.last_update is not None and healthy.last_update.dominant == "angry"
