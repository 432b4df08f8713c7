"""Media read back from what the server wrote: frames for a recorder, the colour a recorded file shows."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np

from server.config import SETTINGS
from server.recording.recorder import TrackRecorder
from tests.support.clients import Identity, colour_matches, whose_colour
from tests.support.server import Rapport


def video_frame(i: int) -> av.VideoFrame:
    """Frame ``i`` of a grey 320x240 clip at 30 fps (90 kHz clock), to push into a recorder."""
    frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), i % 255, np.uint8), format="bgr24")
    frame.pts = i * 3000
    frame.time_base = fractions.Fraction(1, 90_000)
    return frame


async def record_a_file(rapport: Rapport, session_id: str, frames: int = 30) -> int:
    """A finished recording of the customer's video in the server's recordings folder; its id."""
    relative = f"{session_id}/customer-video.mkv"
    recorder = TrackRecorder(rapport.app[SETTINGS].recordings_path / relative, "video")
    recorder.start()
    for i in range(frames):
        recorder.push(video_frame(i))
    result = recorder.stop()
    rec_id = await rapport.store.add_recording(session_id, "customer", "video", relative)
    await rapport.store.finish_recording(rec_id, state="complete", size=result.size, sha256=result.sha256)
    return rec_id


def file_bgr(path: Path) -> tuple[float, float, float]:
    """Mean colour of the second half of a video file's frames."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert frames, f"no video in {path}"
    mean = np.mean([f.reshape(-1, 3).mean(axis=0) for f in frames[len(frames) // 2 :]], axis=0)
    return float(mean[0]), float(mean[1]), float(mean[2])


def assert_shows(seen: tuple[float, float, float], identity: Identity, where: str) -> None:
    assert colour_matches(seen, identity.bgr), (
        f"{where} should show the {identity.name}'s colour {identity.bgr}, shows {whose_colour(seen)}'s {seen}"
    )
