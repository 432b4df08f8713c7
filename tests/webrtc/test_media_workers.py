"""Media worker processes: calls spread over them, and a worker that dies takes only its own calls."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import replace

import av
import pytest

from server.config import Settings
from server.media.pool import RemoteCallMedia
from tests.support.clients import CUSTOMER, REP, MediaClient, SignalingClient
from tests.support.media import assert_shows, file_bgr
from tests.support.server import Rapport, start_rapport

pytestmark = pytest.mark.webrtc


async def live_call(rapport: Rapport, rep_name: str) -> tuple[SignalingClient, SignalingClient, MediaClient, str]:
    rep, customer, call, cm, rm = await rapport.media_call(rep_name)
    await rm.wait_frames("video", 30)
    await cm.wait_frames("video", 30)
    # Through a worker process, each side still gets the other's picture and sound.
    await rm.wait_to_see_and_hear(CUSTOMER)
    await cm.wait_to_see_and_hear(REP)
    return rep, customer, rm, str(call["session_id"])


async def test_a_killed_worker_ends_only_its_calls_and_new_calls_still_get_in(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, media_workers=2, recording_policy="always"))
    try:
        for name in ("rep1", "rep2", "rep3"):
            await rapport.add_user(name)
        rep1, customer1, media1, first = await live_call(rapport, "rep1")
        rep2, customer2, media2, second = await live_call(rapport, "rep2")
        pool = rapport.center.pool
        assert pool is not None
        worker1, worker2 = pool.worker_of(first), pool.worker_of(second)
        assert worker1 is not None and worker2 is not None and worker1 is not worker2, "one call per worker"
        assert isinstance(rapport.center.sessions[first].media, RemoteCallMedia)

        os.kill(worker1.pid or 0, signal.SIGKILL)
        ended = await customer1.wait_for("call.ended", timeout=10)
        assert ended["reason"] == "media_failed" and ended["ended_by"] == "system"
        assert (await rep1.wait_for("call.ended"))["reason"] == "media_failed"
        # What the dead worker was writing is kept: recovered, and it plays up to the kill.
        for _ in range(50):
            states = {r.state for r in await rapport.store.list_recordings(first)}
            if states and "recording" not in states:
                break
            await asyncio.sleep(0.1)
        assert states == {"recovered"}, states

        before = media2.frames("video")
        await asyncio.sleep(3.0)
        fps = (media2.frames("video") - before) / 3.0
        assert fps >= 24, f"the other worker's call fell to {fps:.1f} fps"
        assert second in rapport.center.sessions

        # A new worker takes the dead one's place, and new calls get in.
        for _ in range(50):
            if all(w.alive for w in pool.workers):
                break
            await asyncio.sleep(0.1)
        assert all(w.alive for w in pool.workers)
        _rep3, _customer3, media3, third = await live_call(rapport, "rep3")
        assert media3.frames("video") >= 30 and third in rapport.center.sessions

        # The surviving call's recording is written by its worker and plays.
        await rep2.send({"type": "call.end"})
        await customer2.wait_for("call.ended")
        for _ in range(100):
            rows = await rapport.store.list_recordings(second)
            if rows and all(r.state != "recording" for r in rows):
                break
            await asyncio.sleep(0.1)
        video = next(r for r in rows if (r.participant, r.kind) == ("customer", "video"))
        assert video.state == "complete"
        path = settings.data_dir / "recordings" / video.path
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "vp8"
            assert sum(1 for _ in container.decode(video=0)) >= 30
        assert_shows(file_bgr(path), CUSTOMER, "the customer's video file, written by a worker")
    finally:
        await rapport.stop()
