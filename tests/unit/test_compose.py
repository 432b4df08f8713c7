"""Composing a call's per-track recordings into one side-by-side WebM, checked by reopening it with PyAV.

Inputs are written the way ``server/recording/recorder.py`` writes them on the transcoding path (Matroska,
libx264 yuv420p video with millisecond pts, libopus 48 kHz stereo audio) from real face photos and
tones. The forwarding path's files (VP8 and Opus packets as they came) are composed from a real call
in ``tests/webrtc/test_recording.py``, which checks the customer's colour on the left, the rep's on the
right and both tones in the mix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from server.recording.compose import ComposeError, ComposeInputs, ComposeResult, TrackInput, _limit, compose
from tests.support.faces import Clip, person

REPO = Path(__file__).resolve().parents[2]
FPS_IN = 30
CUSTOMER_TONE, REP_TONE = 440.0, 660.0
FACE_CASCADE = cv2.CascadeClassifier(
    cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
)

# Customer on a laptop (landscape), rep on a phone held upright (portrait); different people.
CUSTOMER_CLIP = Clip([(person("happy"), 10.0)], width=640, height=480)
REP_CLIP = Clip([(person("angry"), 10.0)], width=480, height=640)


# Writing inputs like the recorder does


def write_video(path: Path, clip: Clip, seconds: float) -> Path:
    with av.open(str(path), "w", format="matroska", options={"cluster_time_limit": "1000"}) as container:
        stream = container.add_stream("libx264", rate=FPS_IN)
        stream.width, stream.height = clip.width, clip.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        stream.bit_rate = 800_000
        stream.codec_context.time_base = Fraction(1, 90_000)
        for i in range(round(seconds * FPS_IN)):
            frame = av.VideoFrame.from_ndarray(clip.frame_at(i / FPS_IN), format="bgr24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i * 3000, Fraction(1, 90_000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_tone(path: Path, hz: float, seconds: float, amplitude: float = 0.3) -> Path:
    with av.open(str(path), "w", format="matroska", options={"cluster_time_limit": "1000"}) as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout = "stereo"
        stream.codec_context.time_base = Fraction(1, 48_000)
        for i in range(round(seconds * 50)):  # 20 ms frames of s16 stereo, like aiortc's
            t = (np.arange(960) + i * 960) / 48_000
            mono = (amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2)[None, :], format="s16", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48_000, i * 960, Fraction(1, 48_000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@dataclass(frozen=True)
class Sources:
    customer_video: Path
    rep_video: Path
    customer_audio: Path
    rep_audio: Path


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    folder = tmp_path_factory.mktemp("tracks")
    return Sources(
        customer_video=write_video(folder / "customer-video.mkv", CUSTOMER_CLIP, 4.0),
        rep_video=write_video(folder / "rep-video.mkv", REP_CLIP, 3.0),
        customer_audio=write_tone(folder / "customer-audio.mka", CUSTOMER_TONE, 4.0),
        rep_audio=write_tone(folder / "rep-audio.mka", REP_TONE, 3.0),
    )


# Reading the output back


def streams_of(path: Path) -> list[tuple[str, str, int | None, int | None]]:
    with av.open(str(path)) as container:
        found: list[tuple[str, str, int | None, int | None]] = []
        for s in container.streams:
            context = s.codec_context
            found.append((s.type, context.name, getattr(context, "width", None), getattr(context, "height", None)))
        return found


def duration_of(path: Path) -> float:
    with av.open(str(path)) as container:
        assert container.duration is not None
        return container.duration / 1e6


def frames_at(path: Path, times: list[float]) -> list[np.ndarray]:
    """BGR output frames shown at each of ``times`` (sorted)."""
    wanted = sorted(times)
    found: list[np.ndarray] = []
    shown: np.ndarray | None = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            assert frame.time is not None
            while wanted and frame.time > wanted[0] + 1e-6:
                assert shown is not None, f"no frame at {wanted[0]} s"
                found.append(shown)
                wanted.pop(0)
            shown = frame.to_ndarray(format="bgr24")
            if not wanted:
                break
    assert shown is not None
    found += [shown] * len(wanted)
    return found


def audio_of(path: Path) -> np.ndarray:
    """The output's audio as one mono float array at 48 kHz."""
    with av.open(str(path)) as container:
        chunks = [frame.to_ndarray().mean(axis=0) for frame in container.decode(audio=0)]
    return np.concatenate(chunks)


def tone_levels(samples: np.ndarray, start_s: float, end_s: float) -> dict[float, float]:
    """Spectral peak near each test tone, relative to the window's strongest peak (0..1)."""
    window = samples[int(start_s * 48_000) : int(end_s * 48_000)]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    freqs = np.fft.rfftfreq(len(window), 1 / 48_000)
    strongest = float(spectrum.max()) + 1e-9
    return {hz: float(spectrum[np.abs(freqs - hz) < 5].max()) / strongest for hz in (CUSTOMER_TONE, REP_TONE)}


def halves(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    assert frame.shape == (480, 1280, 3)
    return frame[:, :640], frame[:, 640:]


def faces_in(half: np.ndarray) -> int:
    grey = cv2.cvtColor(half, cv2.COLOR_BGR2GRAY)
    return len(FACE_CASCADE.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(60, 60)))


def is_black(half: np.ndarray) -> bool:
    return float(half.mean()) < 25 and float(half.max()) < 60


def fitted(source: np.ndarray) -> np.ndarray:
    """``source`` fitted into a black 640x480 half the way the composer should place it."""
    height, width = source.shape[:2]
    scale = min(640 / width, 480 / height)
    w, h = round(width * scale), round(height * scale)
    out = np.zeros((480, 640, 3), np.uint8)
    x, y = (640 - w) // 2, (480 - h) // 2
    out[y : y + h, x : x + w] = cv2.resize(source, (w, h), interpolation=cv2.INTER_AREA)
    return out


def thumbnail_distance(a: np.ndarray, b: np.ndarray) -> float:
    def thumb(image: np.ndarray) -> np.ndarray:
        return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (64, 48), interpolation=cv2.INTER_AREA).astype(
            np.float32
        )

    return float(np.abs(thumb(a) - thumb(b)).mean())


# The full composition, shared by several tests


@dataclass(frozen=True)
class Composed:
    result: ComposeResult
    progress: list[float]


@pytest.fixture(scope="module")
def composed(sources: Sources, tmp_path_factory: pytest.TempPathFactory) -> Composed:
    progress: list[float] = []
    inputs = ComposeInputs(
        customer_video=TrackInput(sources.customer_video),
        rep_video=TrackInput(sources.rep_video, 0.5),
        customer_audio=TrackInput(sources.customer_audio),
        rep_audio=TrackInput(sources.rep_audio, 0.5),
    )
    output = tmp_path_factory.mktemp("out") / "review.webm"
    return Composed(compose(inputs, output, progress.append), progress)


def test_output_is_one_vp8_and_one_opus_stream_as_long_as_the_longest_track(composed: Composed) -> None:
    path = composed.result.path
    assert path.exists() and not path.with_name(path.name + ".part").exists()
    kinds = streams_of(path)
    assert [(kind, codec) for kind, codec, _, _ in kinds] == [("video", "vp8"), ("audio", "opus")]
    assert kinds[0][2:] == (1280, 480)
    # Customer video and audio end at 4.0 s, the rep's at 0.5 + 3.0 s.
    assert duration_of(path) == pytest.approx(4.0, abs=0.3)
    assert composed.result.duration_s == pytest.approx(4.0, abs=0.05)
    assert composed.result.video_frames == pytest.approx(4.0 * 15, abs=1)
    assert composed.result.audio_frames == pytest.approx(4.0 * 50, abs=1)


def test_customer_is_on_the_left_and_rep_on_the_right(composed: Composed) -> None:
    (frame,) = frames_at(composed.result.path, [2.0])
    left, right = halves(frame)
    cv2.imwrite(str(composed.result.path.with_suffix(".mid.png")), frame)  # for a human, if this fails
    assert faces_in(left) >= 1 and faces_in(right) >= 1
    customer, rep = fitted(CUSTOMER_CLIP.frame_at(2.0)), fitted(REP_CLIP.frame_at(1.5))
    assert thumbnail_distance(left, customer) < thumbnail_distance(left, rep)
    assert thumbnail_distance(right, rep) < thumbnail_distance(right, customer)
    # The portrait rep is pillarboxed: black bars left and right of the picture.
    assert is_black(right[:, :100]) and is_black(right[:, -100:]) and not is_black(right[:, 200:440])


def test_both_voices_are_mixed_into_one_track(composed: Composed) -> None:
    levels = tone_levels(audio_of(composed.result.path), 1.5, 3.0)
    assert levels[CUSTOMER_TONE] > 0.3 and levels[REP_TONE] > 0.3, levels


def test_progress_only_goes_up_and_ends_at_one(composed: Composed) -> None:
    values = composed.progress
    assert values and values[-1] == 1.0
    assert all(0.0 <= a <= b <= 1.0 for a, b in zip(values, values[1:], strict=False))


def test_offsets_are_honoured(sources: Sources, tmp_path: Path) -> None:
    inputs = ComposeInputs(
        customer_video=TrackInput(sources.customer_video),
        rep_video=TrackInput(sources.rep_video, 2.0),
        customer_audio=TrackInput(sources.customer_audio),
        rep_audio=TrackInput(sources.rep_audio, 2.0),
    )
    result = compose(inputs, tmp_path / "offset.webm")
    # The rep's 3 s tracks start at 2 s: they end last, at 5 s.
    assert duration_of(result.path) == pytest.approx(5.0, abs=0.3)
    early = frames_at(result.path, [0.0, 0.5, 0.9])
    assert all(is_black(halves(frame)[1]) for frame in early)
    assert all(faces_in(halves(frame)[0]) >= 1 for frame in early)
    (late,) = frames_at(result.path, [2.7])
    assert faces_in(halves(late)[1]) >= 1
    samples = audio_of(result.path)
    before, after = tone_levels(samples, 0.2, 1.8), tone_levels(samples, 2.5, 3.8)
    assert before[CUSTOMER_TONE] > 0.99 and before[REP_TONE] < 0.01, before
    assert after[CUSTOMER_TONE] > 0.3 and after[REP_TONE] > 0.3, after


@pytest.mark.parametrize("absent", [None, "no-such-file.mkv"])
def test_a_missing_rep_video_leaves_the_right_half_black(sources: Sources, tmp_path: Path, absent: str | None) -> None:
    inputs = ComposeInputs(
        customer_video=TrackInput(sources.customer_video),
        rep_video=TrackInput(None if absent is None else tmp_path / absent),
        customer_audio=TrackInput(sources.customer_audio),
        rep_audio=TrackInput(sources.rep_audio),
    )
    result = compose(inputs, tmp_path / "no-rep.webm")
    assert [kind for kind, *_ in streams_of(result.path)] == ["video", "audio"]
    assert duration_of(result.path) == pytest.approx(4.0, abs=0.3)
    for frame in frames_at(result.path, [0.0, 1.0, 2.0, 3.5]):
        left, right = halves(frame)
        assert is_black(right) and faces_in(left) >= 1


def playable_seconds(path: Path) -> float:
    """How far a (damaged) video plays when decoded up to its first error."""
    last = 0.0
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                last = float(frame.time or 0.0)
    except (av.error.FFmpegError, EOFError):
        pass
    return last + 1 / FPS_IN


def test_a_truncated_customer_video_is_used_up_to_where_it_plays(tmp_path: Path) -> None:
    video = write_video(tmp_path / "customer-video.mkv", CUSTOMER_CLIP, 5.0)
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.7)])
    plays = playable_seconds(video)
    assert 1.0 < plays < 4.5, plays
    inputs = ComposeInputs(
        customer_video=TrackInput(video),
        rep_video=TrackInput(None),
        customer_audio=TrackInput(None),
        rep_audio=TrackInput(None),
    )
    result = compose(inputs, tmp_path / "truncated.webm")
    assert duration_of(result.path) == pytest.approx(plays, abs=0.3)
    (frame,) = frames_at(result.path, [plays / 2])
    left, right = halves(frame)
    assert faces_in(left) >= 1 and is_black(right)
    # Nothing was heard: the audio track is there, silent.
    assert float(np.abs(audio_of(result.path)).max()) < 0.01


def test_no_readable_input_raises_compose_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mka"
    garbage.write_bytes(b"\x1a\x45\xdf\xa3 not really matroska" * 10)
    inputs = ComposeInputs(
        customer_video=TrackInput(None),
        rep_video=TrackInput(empty),
        customer_audio=TrackInput(garbage),
        rep_audio=TrackInput(tmp_path / "missing.mka"),
    )
    output = tmp_path / "none.webm"
    with pytest.raises(ComposeError):
        compose(inputs, output)
    assert not output.exists() and not output.with_name(output.name + ".part").exists()


def test_loud_voices_are_limited_not_wrapped() -> None:
    t = np.arange(4800) / 48_000
    loud = np.stack([0.9 * np.sin(2 * np.pi * 440 * t)] * 2) + np.stack([0.9 * np.sin(2 * np.pi * 660 * t)] * 2)
    limited = _limit(loud.astype(np.float32))
    assert float(np.abs(limited).max()) <= 1.0
    quiet = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
    assert np.array_equal(_limit(quiet.copy()), quiet)  # below the knee nothing changes


def run_cli(*args: str) -> tuple[int, list[dict[str, object]]]:
    proc = subprocess.run(
        [sys.executable, "-m", "server.recording.compose", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines


def test_cli_prints_json_progress_and_a_done_line(sources: Sources, tmp_path: Path) -> None:
    output = tmp_path / "cli.webm"
    code, lines = run_cli(
        "--customer-video",
        str(sources.customer_video),
        "--rep-video",
        str(sources.rep_video),
        "--rep-video-offset",
        "1.0",
        "--customer-audio",
        str(sources.customer_audio),
        "--rep-audio",
        str(sources.rep_audio),
        "--rep-audio-offset",
        "1.0",
        "--output",
        str(output),
    )
    assert code == 0, lines
    progress = [line["progress"] for line in lines[:-1]]
    assert progress and all(isinstance(p, float) for p in progress) and progress[-1] == 1.0
    done = lines[-1]
    assert done["done"] is True and done["video_frames"] == 60
    assert done["duration_s"] == pytest.approx(4.0, abs=0.05)
    assert output.exists() and duration_of(output) == pytest.approx(4.0, abs=0.3)


def test_cli_without_inputs_fails_with_an_error_line(tmp_path: Path) -> None:
    code, lines = run_cli("--output", str(tmp_path / "nothing.webm"))
    assert code == 1
    assert lines and "error" in lines[-1] and "readable" in str(lines[-1]["error"])
    assert not (tmp_path / "nothing.webm").exists()
