"""One reviewable file from a call's per-track recordings: both videos side by side, both voices mixed.

The recorder (``server/recording/recorder.py``) leaves up to four Matroska files per call. QA
reviewers want a single file their browser plays, so this writes WebM (VP8 + Opus):
1280x480 at a constant 15 fps, the customer on the left and the rep on the right,
each fitted into its 640x480 half with black bars, and one Opus track with both
voices summed. Time 0 of the output is time 0 of the call; each track starts at
its own ``offset_s`` on that clock.

A supervisor who assisted the call left a fifth file, their voice (``supervisor-audio``). It is mixed in
only during the barge-in periods given (``supervisor_windows``: when the supervisor was in the call openly,
heard by both sides), and nowhere else: a whisper reached the rep only, so it stays in the supervisor's own
track file, the rep-side track, and never in this file, which stands for what the customer side heard too.

Standalone on purpose (only PyAV, numpy and the standard library) so the server can
run it as a separate, niced process: ``python -m server.recording.compose --help``.
Everything is streamed, a frame or an Opus packet at a time: calls run 30+ minutes.

Over 500 lines because it is a standalone program: demuxing, fitting, mixing and encoding stay in one file
that needs nothing of the server.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import numpy as np
from av.video.reformatter import VideoReformatter

from ..storage.files import restrict_new_files

OUT_WIDTH, OUT_HEIGHT = 1280, 480
HALF_WIDTH = OUT_WIDTH // 2
# Half the calls' 30 fps: a reviewer does not need more to follow a conversation, and
# decoding stays the same while scaling, composing and VP8 encoding (most of the cost) halve.
FPS = 15
VIDEO_BITRATE = 1_200_000
KEYFRAME_EVERY = 5 * FPS  # where a browser can seek to without decoding from far back
# The cheapest libvpx settings: this runs in the background after every recorded call.
VP8_OPTIONS = {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0"}
AUDIO_RATE = 48_000
VIDEO_TIME_BASE, AUDIO_TIME_BASE = Fraction(1, FPS), Fraction(1, AUDIO_RATE)
AUDIO_BLOCK = 960  # 20 ms: libopus's frame size, so every frame handed over is a whole Opus frame
# Two voices mixed to mono (both sides send one microphone anyway): half the Opus work of stereo.
AUDIO_BITRATE = 48_000
# Limited-range black, what an H.264 recording and VP8 both use.
BLACK_Y, BLACK_UV = 16, 128
# Timestamps in the recordings are whole milliseconds: a frame "at" t must not miss it by rounding.
EPSILON_S = 1e-3
# Opus frames are contiguous; a pts off by less than this is millisecond rounding, not a gap.
AUDIO_RESYNC_SAMPLES = 480
# A frame with no duration of its own is shown for the gap before it, but not for longer.
MAX_LAST_FRAME_S = 0.1
DEFAULT_FRAME_S = 1 / 30
PROGRESS_INTERVAL_S = 0.25


class ComposeError(Exception):
    """The composition cannot be made at all (no input track is readable)."""


@dataclass(frozen=True)
class TrackInput:
    path: Path | None  # None or a missing/unreadable file = that track is absent
    offset_s: float = 0.0  # where this track's time 0 falls on the output's clock (what falls before 0 is cut)


@dataclass(frozen=True)
class ComposeInputs:
    customer_video: TrackInput
    rep_video: TrackInput
    customer_audio: TrackInput
    rep_audio: TrackInput
    supervisor_audio: TrackInput = TrackInput(None)
    # Output-clock seconds (start, end) when the supervisor's voice is mixed in: their barge-ins.
    supervisor_windows: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class ComposeResult:
    path: Path
    duration_s: float
    video_frames: int
    audio_frames: int  # Opus frames of 20 ms (960 samples at 48 kHz); the last one may be shorter


# Probing: which tracks play and where they end


@dataclass(frozen=True)
class _Probe:
    path: Path
    offset_s: float
    end_s: float  # on the output clock


def _open_stream(path: Path, kind: str) -> tuple[av.container.InputContainer, av.stream.Stream]:
    container = av.open(str(path), "r")
    streams = container.streams.video if kind == "video" else container.streams.audio
    if not streams:
        container.close()
        raise ComposeError(f"{path} has no {kind} stream")
    return container, streams[0]


def _probe(track: TrackInput, kind: str) -> _Probe | None:
    """Where the track ends, from its packets alone (cheap: nothing is decoded).

    The Duration in the Matroska header cannot be trusted: a file cut short by a crash
    still claims the length it was going to have.
    """
    if track.path is None:
        return None
    if not math.isfinite(track.offset_s):
        raise ValueError(f"offset of {track.path} is not a number: {track.offset_s}")
    try:
        container, stream = _open_stream(track.path, kind)
    except (OSError, av.error.FFmpegError, ComposeError):
        return None
    end: float | None = None
    last_start: float | None = None
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            if packet.duration:
                length = float(packet.duration * packet.time_base)
            elif last_start is not None and start > last_start:
                length = min(start - last_start, MAX_LAST_FRAME_S)
            else:
                length = DEFAULT_FRAME_S
            end = start + length if end is None else max(end, start + length)
            last_start = start
    except (av.error.FFmpegError, EOFError):
        pass  # a truncated file: what came before the damage still counts
    finally:
        container.close()
    if end is None:
        return None
    return _Probe(track.path, track.offset_s, max(0.0, end + track.offset_s))


def _decoded(path: Path, kind: str) -> Generator[av.VideoFrame | av.AudioFrame, None, None]:
    """The track's frames, decoded lazily; it stops quietly at the first damage."""
    try:
        container, stream = _open_stream(path, kind)
    except (OSError, av.error.FFmpegError, ComposeError):
        return  # gone since it was probed: absent, like any unreadable track
    # One thread each: this runs in the background, where CPU time matters more than wall time.
    stream.codec_context.thread_count = 1
    try:
        for packet in container.demux(stream):
            yield from packet.decode()  # type: ignore[misc]
    except (av.error.FFmpegError, EOFError):
        return
    finally:
        container.close()


def _nothing() -> Generator[av.VideoFrame | av.AudioFrame, None, None]:
    yield from ()


# Video: the most recent frame at each output time, fitted into a half


def _fit(width: int, height: int) -> tuple[int, int, int, int]:
    """Size and position (w, h, x, y) of a width x height picture fitted into a half, all even for 4:2:0."""
    scale = min(HALF_WIDTH / width, OUT_HEIGHT / height)
    w = max(2, min(HALF_WIDTH, round(width * scale / 2) * 2))
    h = max(2, min(OUT_HEIGHT, round(height * scale / 2) * 2))
    x = (HALF_WIDTH - w) // 4 * 2
    y = (OUT_HEIGHT - h) // 4 * 2
    return w, h, x, y


@dataclass
class _Shown:
    time: float  # output clock
    length: float  # how long it is shown if no frame follows
    frame: av.VideoFrame | None  # dropped once scaled: the scaled copy is all that is needed
    planes: tuple[np.ndarray, np.ndarray, np.ndarray, int, int] | None = None  # y, u, v, x, y


class _VideoSide:
    def __init__(self, probe: _Probe | None) -> None:
        self._frames = _decoded(probe.path, "video") if probe else _nothing()
        self._offset = probe.offset_s if probe else 0.0
        self._reformatter = VideoReformatter()
        self._current: _Shown | None = None
        self._next = self._read(None)

    def _read(self, previous: _Shown | None) -> _Shown | None:
        for frame in self._frames:
            assert isinstance(frame, av.VideoFrame)
            if frame.time is None:
                continue
            at = frame.time + self._offset
            if previous is not None and at <= previous.time:
                continue  # never step back in time
            if frame.duration and frame.time_base:
                length = float(frame.duration * frame.time_base)
            elif previous is not None:
                length = min(at - previous.time, MAX_LAST_FRAME_S)
            else:
                length = DEFAULT_FRAME_S
            return _Shown(at, length, frame)
        return None

    def at(self, t: float) -> _Shown | None:
        """The frame shown at output time ``t``: the last one at or before it (None: black)."""
        while self._next is not None and self._next.time <= t + EPSILON_S:
            self._current = self._next
            self._next = self._read(self._current)
        current = self._current
        if current is None or (self._next is None and t >= current.time + current.length - EPSILON_S):
            return None  # not started yet, or past the track's last frame
        if current.frame is not None:
            current.planes = self._scale(current.frame)
            current.frame = None
        return current

    def close(self) -> None:
        self._frames.close()

    def _scale(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        w, h, x, y = _fit(frame.width, frame.height)
        scaled = self._reformatter.reformat(frame, width=w, height=h, format="yuv420p", threads=1)
        flat = scaled.to_ndarray().reshape(-1)  # Y, then U, then V, each tightly packed
        luma, chroma = w * h, (w // 2) * (h // 2)
        return (
            flat[:luma].reshape(h, w),
            flat[luma : luma + chroma].reshape(h // 2, w // 2),
            flat[luma + chroma : luma + 2 * chroma].reshape(h // 2, w // 2),
            x,
            y,
        )


class _Canvas:
    """The 1280x480 output picture, as yuv420p planes, redrawn only where a side changed."""

    def __init__(self) -> None:
        self.buffer = np.empty((OUT_HEIGHT * 3 // 2, OUT_WIDTH), np.uint8)
        flat = self.buffer.reshape(-1)
        luma, chroma = OUT_WIDTH * OUT_HEIGHT, OUT_WIDTH * OUT_HEIGHT // 4
        self.y = flat[:luma].reshape(OUT_HEIGHT, OUT_WIDTH)
        self.u = flat[luma : luma + chroma].reshape(OUT_HEIGHT // 2, OUT_WIDTH // 2)
        self.v = flat[luma + chroma :].reshape(OUT_HEIGHT // 2, OUT_WIDTH // 2)
        self.y[:] = BLACK_Y
        self.u[:] = BLACK_UV
        self.v[:] = BLACK_UV
        self._drawn: list[_Shown | None] = [None, None]

    def draw(self, side: int, shown: _Shown | None) -> None:
        if shown is self._drawn[side]:
            return
        self._drawn[side] = shown
        x0 = side * HALF_WIDTH
        self.y[:, x0 : x0 + HALF_WIDTH] = BLACK_Y
        self.u[:, x0 // 2 : (x0 + HALF_WIDTH) // 2] = BLACK_UV
        self.v[:, x0 // 2 : (x0 + HALF_WIDTH) // 2] = BLACK_UV
        if shown is None or shown.planes is None:
            return
        y_plane, u_plane, v_plane, x, y = shown.planes
        h, w = y_plane.shape
        self.y[y : y + h, x0 + x : x0 + x + w] = y_plane
        cx, cy = (x0 + x) // 2, y // 2
        self.u[cy : cy + h // 2, cx : cx + w // 2] = u_plane
        self.v[cy : cy + h // 2, cx : cx + w // 2] = v_plane

    def frame(self) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(self.buffer, format="yuv420p")


# Audio: each voice placed on the output clock by its timestamps, then summed


class _AudioTrack:
    def __init__(self, probe: _Probe) -> None:
        self._frames = _decoded(probe.path, "audio")
        self._offset = round(probe.offset_s * AUDIO_RATE)
        # Opus decodes to 48 kHz already; this only evens out the sample format. Channels are
        # averaged here rather than by the resampler, which would lower a mono voice by 3 dB.
        self._resampler = av.AudioResampler(format="fltp", rate=AUDIO_RATE)
        # Decoded, not yet played: (first output sample, samples). Separate pieces rather than one
        # array, so a long pause in the recording or a large offset costs no memory.
        self._pending: deque[tuple[int, np.ndarray]] = deque()
        self._end: int | None = None  # output sample just after the last decoded one
        self._done = False

    def close(self) -> None:
        self._frames.close()

    def _pull(self) -> None:
        try:
            frame = next(self._frames)
        except StopIteration:
            self._done = True
            return
        assert isinstance(frame, av.AudioFrame)
        for out in self._resampler.resample(frame):
            samples = out.to_ndarray().astype(np.float32, copy=False).mean(axis=0, keepdims=True)
            end = self._end
            if out.time is not None:
                at = round(out.time * AUDIO_RATE) + self._offset
            elif end is not None:
                at = end
            else:
                continue
            if end is not None and abs(at - end) <= AUDIO_RESYNC_SAMPLES:
                at = end  # contiguous: the timestamp is only rounded
            elif end is not None and at < end:  # overlap: keep what came first
                samples = samples[:, end - at :]
                at = end
            # (at > end: a hole in the recording, silent since nothing covers it.)
            if samples.shape[1]:
                self._pending.append((at, samples))
                self._end = at + samples.shape[1]

    def add_into(self, out: np.ndarray, start: int) -> None:
        """Add this voice's samples [start, start + len) of the output clock into ``out``."""
        stop = start + out.shape[1]
        while not self._done and (self._end is None or self._end < stop):
            self._pull()
        for at, samples in self._pending:
            if at >= stop:
                break
            lo, hi = max(start, at), min(stop, at + samples.shape[1])
            if hi > lo:
                out[:, lo - start : hi - start] += samples[:, lo - at : hi - at]
        while self._pending and self._pending[0][0] + self._pending[0][1].shape[1] <= stop:
            self._pending.popleft()  # played


def _sample(seconds: float) -> int:
    return round(seconds * AUDIO_RATE) if math.isfinite(seconds) else sys.maxsize


class _WindowedVoice:
    """A voice heard only inside some windows of the output clock (the supervisor's barge-ins)."""

    def __init__(self, track: _AudioTrack, windows: Sequence[tuple[float, float]]) -> None:
        self._track = track
        self._windows = [(_sample(a), _sample(b)) for a, b in windows if b > a]

    def close(self) -> None:
        self._track.close()

    def add_into(self, out: np.ndarray, start: int) -> None:
        voice = np.zeros_like(out)
        self._track.add_into(voice, start)  # read even when silenced: the track keeps its place
        stop = start + out.shape[1]
        for a, b in self._windows:
            lo, hi = max(start, a), min(stop, b)
            if hi > lo:
                out[:, lo - start : hi - start] += voice[:, lo - start : hi - start]


# Above this level the sum is bent smoothly towards full scale instead of clipping.
LIMIT_KNEE = 0.8


def _limit(mixed: np.ndarray) -> np.ndarray:
    """Soft clipping: unchanged below the knee, tanh-compressed above it, never past full scale."""
    level = np.abs(mixed)
    loud = level > LIMIT_KNEE
    if loud.any():
        room = 1.0 - LIMIT_KNEE
        mixed[loud] = np.sign(mixed[loud]) * (LIMIT_KNEE + room * np.tanh((level[loud] - LIMIT_KNEE) / room))
    return mixed


# The composition


class _Progress:
    def __init__(self, callback: Callable[[float], None] | None) -> None:
        self._callback = callback
        self._last_at = -math.inf
        self._last = 0.0

    def report(self, fraction: float, *, force: bool = False) -> None:
        if self._callback is None:
            return
        fraction = max(self._last, min(1.0, fraction))
        now = time.monotonic()
        if force or now - self._last_at >= PROGRESS_INTERVAL_S:
            self._last_at, self._last = now, fraction
            self._callback(fraction)


def _render(
    container: av.container.OutputContainer,
    videos: list[_Probe | None],
    audios: list[_Probe | None],
    supervisor: tuple[_Probe, Sequence[tuple[float, float]]] | None,
    video_total: int,
    audio_total: int,
    reporter: _Progress,
) -> int:
    """Encode and mux every frame of both streams; returns the number of audio frames."""
    video_stream, audio_stream = container.streams.video[0], container.streams.audio[0]
    sides = [_VideoSide(videos[0]), _VideoSide(videos[1])]
    voices: list[_AudioTrack | _WindowedVoice] = [_AudioTrack(p) for p in audios if p is not None]
    if supervisor is not None:
        voices.append(_WindowedVoice(_AudioTrack(supervisor[0]), supervisor[1]))
    canvas = _Canvas()
    audio_at = audio_frames = 0
    try:
        for index in range(video_total):
            t = index / FPS
            for side, source in enumerate(sides):
                canvas.draw(side, source.at(t))
            frame = canvas.frame()
            frame.pts = index
            frame.time_base = VIDEO_TIME_BASE
            container.mux(video_stream.encode(frame))
            # Audio up to the next video frame, so the muxer interleaves without buffering much.
            until = audio_total if index == video_total - 1 else min(audio_total, (index + 1) * AUDIO_RATE // FPS)
            while audio_at < until:
                count = min(AUDIO_BLOCK, audio_total - audio_at)
                mixed = np.zeros((1, count), np.float32)
                for voice in voices:
                    voice.add_into(mixed, audio_at)
                block = av.AudioFrame.from_ndarray(_limit(mixed), format="fltp", layout="mono")
                block.sample_rate = AUDIO_RATE
                block.pts = audio_at
                block.time_base = AUDIO_TIME_BASE
                container.mux(audio_stream.encode(block))
                audio_frames += 1
                audio_at += count
            reporter.report(index / video_total)  # 1.0 only once the file is in place
    finally:
        for side_source in sides:
            side_source.close()
        for voice in voices:
            voice.close()
    container.mux(video_stream.encode(None))
    container.mux(audio_stream.encode(None))
    return audio_frames


def compose(inputs: ComposeInputs, output: Path, progress: Callable[[float], None] | None = None) -> ComposeResult:
    """Write the side-by-side review file to ``output``. Blocking; run it in a thread or a process.

    Writes ``output`` + ``.part`` and renames it when complete (the part file is removed on
    failure). ``progress`` gets the fraction done (0..1), at most about 4 times a second of work,
    ending with 1.0. A track that is absent, unreadable or has nothing in it is black or silent;
    a damaged one is used up to the damage. Raises ComposeError if no track is readable at all.
    """
    videos = [_probe(inputs.customer_video, "video"), _probe(inputs.rep_video, "video")]
    audios = [_probe(inputs.customer_audio, "audio"), _probe(inputs.rep_audio, "audio")]
    ends = [p.end_s for p in (*videos, *audios) if p is not None]
    # Only barge-ins are mixed: without one the supervisor's file is not even opened. It never makes the
    # output longer (the supervisor is in the call, which the others' tracks span).
    windows = tuple(w for w in inputs.supervisor_windows if w[1] > w[0])
    voice = _probe(inputs.supervisor_audio, "audio") if windows else None
    supervisor = (voice, windows) if voice is not None else None
    if not ends:
        raise ComposeError("no readable track: every recording is missing, empty or unreadable")
    duration = max(ends)
    # A track end a few ms past a frame boundary is timestamp rounding, not worth one more frame.
    video_total = max(1, math.ceil(duration * FPS - 0.05))
    audio_total = max(1, round(duration * AUDIO_RATE))

    if not output.parent.is_dir():
        raise FileNotFoundError(f"no folder for the output: {output.parent}")
    part = output.with_name(output.name + ".part")
    reporter = _Progress(progress)
    reporter.report(0.0, force=True)
    try:
        with av.open(str(part), "w", format="webm") as container:
            video_stream = container.add_stream("libvpx", rate=FPS)
            video_stream.width, video_stream.height = OUT_WIDTH, OUT_HEIGHT
            video_stream.pix_fmt = "yuv420p"
            video_stream.bit_rate = VIDEO_BITRATE
            video_stream.codec_context.time_base = VIDEO_TIME_BASE
            video_stream.codec_context.gop_size = KEYFRAME_EVERY
            video_stream.codec_context.thread_count = 1
            video_stream.options = dict(VP8_OPTIONS)
            audio_stream = container.add_stream("libopus", rate=AUDIO_RATE)
            audio_stream.layout = "mono"
            audio_stream.bit_rate = AUDIO_BITRATE
            audio_stream.codec_context.time_base = AUDIO_TIME_BASE

            audio_frames = _render(container, videos, audios, supervisor, video_total, audio_total, reporter)
        part.replace(output)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    reporter.report(1.0, force=True)
    return ComposeResult(path=output, duration_s=duration, video_frames=video_total, audio_frames=audio_frames)


# Command line: python -m server.recording.compose ... (one JSON object per line on stdout)


TRACK_FLAGS = ("customer-video", "rep-video", "customer-audio", "rep-audio", "supervisor-audio")


def _window(text: str) -> tuple[float, float]:
    """START:END in seconds of the output; END may be left out (until the end)."""
    start, sep, end = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not START:END")
    window = (float(start), float(end) if end else math.inf)
    if not all(math.isfinite(v) or v == math.inf for v in window) or window[0] < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a window of the output")
    return window


class _JsonArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # The caller reads stdout as JSON lines: a usage error is reported like any other failure.
        _emit({"error": f"usage: {message}"})
        sys.exit(1)


def _emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    parser = _JsonArgumentParser(
        prog="python -m server.recording.compose",
        description="Compose a call's per-track recordings into one side-by-side WebM (VP8 + Opus) for review.",
    )
    for flag in TRACK_FLAGS:
        parser.add_argument(f"--{flag}", type=Path, default=None, metavar="PATH", help=f"the {flag} recording")
        parser.add_argument(
            f"--{flag}-offset",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help=f"where the {flag} track's time 0 falls in the output",
        )
    parser.add_argument(
        "--barge",
        type=_window,
        action="append",
        default=[],
        metavar="START:END",
        help="a period (seconds of the output; END empty: to the end) when the supervisor's voice is mixed in",
    )
    parser.add_argument("--output", type=Path, required=True, metavar="PATH", help="the .webm file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The composed recording is the owner's only (0600), whoever started this process.
    restrict_new_files()

    def track(flag: str) -> TrackInput:
        name = flag.replace("-", "_")
        return TrackInput(getattr(args, name), getattr(args, f"{name}_offset"))

    customer_video, rep_video, customer_audio, rep_audio, supervisor_audio = (track(f) for f in TRACK_FLAGS)
    inputs = ComposeInputs(
        customer_video,
        rep_video,
        customer_audio,
        rep_audio,
        supervisor_audio=supervisor_audio,
        supervisor_windows=tuple(args.barge),
    )
    try:
        result = compose(inputs, args.output, lambda fraction: _emit({"progress": round(fraction, 4)}))
    except Exception as exc:
        _emit({"error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, ComposeError) else str(exc)})
        return 1
    _emit(
        {
            "done": True,
            "path": str(result.path),
            "duration_s": round(result.duration_s, 3),
            "video_frames": result.video_frames,
            "audio_frames": result.audio_frames,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
