"""Recording: per-track Matroska files of both sides, reopened with PyAV; policy and consent; crashes."""

from __future__ import annotations

import asyncio
import fractions
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from server.config import Settings
from server.media.feeds import tag_codec
from server.recording.recorder import TrackRecorder, reconcile
from tests.support.clients import (
    CUSTOMER,
    REP,
    dominant_frequency,
    mean_bgr,
    mono_samples,
)
from tests.support.media import assert_shows, file_bgr, video_frame
from tests.support.server import Rapport, start_rapport


def file_audio(path: Path) -> np.ndarray:
    """A file's audio as one mono array at 48 kHz."""
    with av.open(str(path)) as container:
        return np.concatenate([mono_samples(frame) for frame in container.decode(audio=0)])


def tone_level(samples: np.ndarray, hz: float) -> float:
    """Spectral peak near ``hz`` relative to the strongest peak (0..1)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / 48_000)
    return float(spectrum[np.abs(freqs - hz) < 5].max() / (spectrum.max() + 1e-9))


async def run_call(rapport: Rapport, *, consent: bool | None, seconds: float = 3.0) -> str:
    fields = {} if consent is None else {"recording_consent": consent}
    rep, _customer, call, _cm, rm = await rapport.media_call(**fields)
    await rm.wait_frames("video", 30)
    await asyncio.sleep(seconds)
    await rep.send({"type": "call.end"})
    await rep.wait_for("call.ended")
    return str(call["session_id"])


@pytest.mark.webrtc
async def test_both_sides_are_recorded_per_track_and_play_back(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, recording_policy="ask"))
    try:
        await rapport.add_user("rep1")
        session_id = await run_call(rapport, consent=True)
        # Files are finished just after "call.ended" goes out.
        for _ in range(100):
            rows = await rapport.store.list_recordings(session_id)
            if rows and all(r.state != "recording" for r in rows):
                break
            await asyncio.sleep(0.1)
        assert {(r.participant, r.kind) for r in rows} == {
            ("customer", "video"),
            ("customer", "audio"),
            ("rep", "video"),
            ("rep", "audio"),
        }
        root = settings.data_dir / "recordings"
        for row in rows:
            path = root / row.path
            assert row.state == "complete" and row.size == path.stat().st_size and len(row.sha256) == 64
            assert not path.with_name(path.name + ".part").exists()
            with av.open(str(path)) as container:
                stream = container.streams[0]
                assert stream.type == row.kind
                # Forwarded packets are muxed as they came: VP8 and Opus, no encoder in the path.
                assert stream.codec_context.name == ("vp8" if row.kind == "video" else "opus")
                duration = float(container.duration or 0) / 1e6
                assert 2.5 <= duration <= 6.0, (row.path, duration)
        by_track = {(r.participant, r.kind): root / r.path for r in rows}
        # Each side's files hold that side's camera and microphone, never the other's.
        for who in (CUSTOMER, REP):
            assert_shows(file_bgr(by_track[(who.name, "video")]), who, f"the {who.name}'s video file")
            samples = file_audio(by_track[(who.name, "audio")])
            assert len(samples) >= 48_000 * 2.5
            hz = dominant_frequency(samples[-48_000:])
            assert abs(hz - who.tone_hz) < 15, f"the {who.name}'s audio file holds {hz:.0f} Hz, not {who.tone_hz}"
    finally:
        await rapport.stop()


@pytest.mark.webrtc
async def test_a_customer_who_declines_under_ask_is_not_recorded(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, recording_policy="ask"))
    try:
        await rapport.add_user("rep1")
        session_id = await run_call(rapport, consent=False, seconds=0.5)
        assert await rapport.store.list_recordings(session_id) == []
        record = await rapport.store.get_session(session_id)
        assert record is not None and record.recording_consent is False
    finally:
        await rapport.stop()


@pytest.mark.webrtc
async def test_no_recording_starts_below_the_free_space_threshold(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, recording_policy="always", recording_min_free_mb=10**9))
    try:
        await rapport.add_user("rep1")
        session_id = await run_call(rapport, consent=None, seconds=0.5)
        assert await rapport.store.list_recordings(session_id) == []
        events = [e.kind for e in await rapport.store.list_events(session_id)]
        assert "recording_skipped" in events
    finally:
        await rapport.stop()


async def test_a_disk_error_truncates_the_recording_without_raising(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "x.mkv"
    recorder = TrackRecorder(target, "video")
    recorder.start()
    recorder.push(video_frame(0))
    await asyncio.sleep(0.3)
    # Simulate the file system failing under the writer: the folder disappears.
    for p in target.parent.iterdir():
        p.unlink()
    target.parent.rmdir()
    for i in range(1, 60):
        recorder.push(video_frame(i))
    result = await asyncio.to_thread(recorder.stop)
    assert result.truncated or result.frames == 60  # never an exception into the call


async def test_startup_reconciles_part_files_left_by_a_crash(rapport: Rapport, tmp_path: Path) -> None:
    root = tmp_path / "rec"
    _customer, call = await rapport.customer()
    recorder = TrackRecorder(root / call["session_id"] / "customer-video.mkv", "video")
    recorder.start()
    rec_id = await rapport.store.add_recording(
        call["session_id"], "customer", "video", f"{call['session_id']}/customer-video.mkv"
    )
    for i in range(90):
        recorder.push(video_frame(i))
    await asyncio.sleep(1.0)
    # Leave the .part file as a crash would: the writer thread simply stops being stopped.
    assert recorder.part_path.exists()
    assert await reconcile(rapport.store, root) == 1
    row = next(r for r in await rapport.store.list_recordings(call["session_id"]) if r.id == rec_id)
    assert row.state == "recovered" and row.size > 0
    with av.open(str(root / row.path)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0
    await asyncio.to_thread(recorder.stop)


DISK_FULL_SCRIPT = """
import fractions, json, resource, signal, sys, time
import av, numpy as np
from pathlib import Path
from server.recording.recorder import TrackRecorder

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
recorder = TrackRecorder(Path(sys.argv[1]), "video")
recorder.start()
rng = np.random.default_rng(0)
for i in range(150):
    frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="bgr24")
    frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90_000)
    recorder.push(frame)
    time.sleep(0.005)
result = recorder.stop()
print(json.dumps({"truncated": result.truncated, "error": result.error, "size": result.size}))
"""


def test_a_full_disk_marks_the_recording_truncated_and_keeps_what_was_written(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    target = tmp_path / "customer-video.mkv"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", DISK_FULL_SCRIPT, str(target)], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["truncated"] is True and result["error"] == "disk full", out.stdout
    assert 0 < result["size"] <= 200_000
    with av.open(str(target)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0  # what fit on the disk still plays


@pytest.mark.webrtc
async def test_after_the_call_one_side_by_side_file_is_composed_for_qa(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, recording_policy="always", compose_recordings=True))
    try:
        await rapport.add_user("rep1")
        await rapport.add_user("qa1", "qa")
        session_id = await run_call(rapport, consent=None, seconds=3.0)
        qa, _csrf = await rapport.staff_session("qa1")
        progress: list[float] = []
        for _ in range(600):
            async with qa.get(f"{rapport.url}/api/v1/qa/sessions/{session_id}") as r:
                player = (await r.json())["player"]
            if player is None:  # the job is queued once the track files are closed, just after "call.ended"
                await asyncio.sleep(0.1)
                continue
            assert player["state"] in ("pending", "composing", "complete"), player
            progress.append(player["progress"] or 0.0)
            if player["state"] == "complete":
                break
            await asyncio.sleep(0.1)
        assert player is not None and player["state"] == "complete", player
        assert progress[-1] == 1.0 and progress == sorted(progress), progress
        async with qa.get(rapport.url + player["url"]) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "video/webm"
            body = await r.read()
        path = settings.data_dir / "recordings" / session_id / "composed.webm"
        assert body == path.read_bytes()
        with av.open(str(path)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert (video.codec_context.name, video.width, video.height) == ("vp8", 1280, 480)
            assert audio.codec_context.name == "opus"
            frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
        middle = frames[len(frames) // 2]
        assert_shows(mean_bgr(middle[:, :640]), CUSTOMER, "the composed file's left half")
        assert_shows(mean_bgr(middle[:, 640:]), REP, "the composed file's right half")
        mix = file_audio(path)
        assert float(np.abs(mix).max()) > 0.05, "the mix is not silent"
        both = mix[len(mix) // 4 : len(mix) * 3 // 4]  # away from the edges, where one side may start late
        levels = {who.name: tone_level(both, who.tone_hz) for who in (CUSTOMER, REP)}
        assert min(levels.values()) > 0.2, f"both voices are mixed in: {levels}"
    finally:
        await rapport.stop()


def test_forwarded_h264_is_muxed_without_an_encoder_and_plays(tmp_path: Path) -> None:
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    packets = []
    for i in range(60):
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), (i * 4) % 255, np.uint8), format="bgr24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    recorder = TrackRecorder(tmp_path / "rep-video.mkv", "video")
    recorder.start()
    # As the forwarding path hands them out: Annex B, RTP clock, codec named, keyframes marked.
    for i, encoded in enumerate(packets):
        packet = av.Packet(bytes(encoded))
        packet.pts, packet.time_base = i * 3000, fractions.Fraction(1, 90_000)
        packet.is_keyframe = encoded.is_keyframe
        tag_codec(packet, "h264")
        recorder.push(packet)
    result = recorder.stop()
    assert result.frames == 60 and not result.truncated and recorder.passthrough
    with av.open(str(result.path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 60
