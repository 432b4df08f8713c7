"""What recording costs: per frame for each candidate encoder, per call, and composing the QA file.

Run: .venv/bin/python bench/recording.py
Prints CPU milliseconds per 640x480 frame and bytes per frame for each candidate,
then the recorder's CPU per second of a call (both sides, audio and video) as the
server records it on each media path, and how many seconds of call the QA composer
makes per CPU-second from the forwarding path's files:

* ``forward`` (the default): the received VP8 and Opus packets are muxed as they
  came (no encoder); the packets here are encoded once beforehand, as the
  callers' devices would;
* ``transcode``: decoded frames are encoded again (x264 ultrafast, Opus).
"""

from __future__ import annotations

import fractions
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server.media.feeds import tag_codec  # noqa: E402
from server.recording.compose import ComposeInputs, TrackInput, compose  # noqa: E402
from server.recording.recorder import TrackRecorder  # noqa: E402
from tests.support.faces import happy_then_angry_clip  # noqa: E402

CALL_S = 20

CANDIDATES: list[tuple[str, dict[str, str], str]] = [
    ("libx264", {"preset": "ultrafast", "tune": "zerolatency"}, "yuv420p"),
    ("libvpx", {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}, "yuv420p"),
    ("libvpx", {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0"}, "yuv420p"),
    ("mjpeg", {}, "yuvj420p"),
]


def main() -> None:
    clip = happy_then_angry_clip(2.0)
    frames = [
        av.VideoFrame.from_ndarray(clip.frame_at(i / 30), format="bgr24").reformat(format="yuv420p") for i in range(120)
    ]
    print(f"{'encoder':<10} {'options':<42} {'CPU ms/frame':>12} {'bytes/frame':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for codec, options, pix_fmt in CANDIDATES:
            path = Path(folder) / f"{codec}.mkv"
            out = av.open(str(path), "w", format="matroska")
            stream = out.add_stream(codec, rate=30)
            assert isinstance(stream, av.VideoStream)
            stream.width, stream.height, stream.pix_fmt = 640, 480, pix_fmt
            stream.options = options
            if codec != "mjpeg":
                stream.bit_rate = 800_000
            start = time.process_time()
            for i, frame in enumerate(frames):
                frame.pts, frame.time_base = i, fractions.Fraction(1, 30)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
            out.close()
            ms = (time.process_time() - start) / len(frames) * 1000
            opts = " ".join(f"{k}={v}" for k, v in options.items()) or "-"
            print(f"{codec:<10} {opts:<42} {ms:>12.1f} {path.stat().st_size // len(frames):>12}")


def audio_frame(i: int, freq: float) -> av.AudioFrame:
    t = (np.arange(960) + i * 960) / 48_000
    samples = (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.repeat(samples, 2, axis=0).reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = 48_000, i * 960, fractions.Fraction(1, 48_000)
    return frame


class NullSink:
    def push(self, frame: av.frame.Frame) -> None:
        pass


def feed_call(sinks: dict[str, Any], video: list[np.ndarray]) -> float:
    """Push CALL_S seconds of both sides into the sinks; returns the CPU seconds it took."""
    start = time.process_time()
    for i in range(CALL_S * 50):  # 20 ms audio frames, a video frame at 30 fps
        for name, freq in (("customer-audio", 440.0), ("rep-audio", 660.0)):
            sinks[name].push(audio_frame(i, freq))
        for n in range(i * 3 // 5, (i + 1) * 3 // 5):
            for name in ("customer-video", "rep-video"):
                frame = av.VideoFrame.from_ndarray(video[n % len(video)], format="yuv420p")
                frame.pts, frame.time_base = n * 3000, fractions.Fraction(1, 90_000)
                sinks[name].push(frame)
        time.sleep(0.0005)  # let the writer threads keep up, as a live call would
    return time.process_time() - start


def encoded_call(video: list[np.ndarray]) -> dict[str, list[Any]]:
    """Both sides' media as the callers' devices send it: VP8 (500 kbit/s, like aiortc's) and Opus packets."""
    encoded: dict[str, list[Any]] = {}
    for side, freq in (("customer", 440.0), ("rep", 660.0)):
        vp8 = av.CodecContext.create("libvpx", "w")
        assert isinstance(vp8, av.VideoCodecContext)
        vp8.width, vp8.height, vp8.pix_fmt, vp8.bit_rate = 640, 480, "yuv420p", 500_000
        vp8.time_base = fractions.Fraction(1, 30)
        vp8.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        packets: list[tuple[bytes, bool]] = []
        for n in range(CALL_S * 30):
            frame = av.VideoFrame.from_ndarray(video[n % len(video)], format="yuv420p")
            frame.pts = n
            packets += [(bytes(p), bool(p.is_keyframe)) for p in vp8.encode(frame)]
        packets += [(bytes(p), bool(p.is_keyframe)) for p in vp8.encode(None)]
        encoded[f"{side}-video"] = packets
        opus = av.CodecContext.create("libopus", "w")
        assert isinstance(opus, av.AudioCodecContext)
        opus.sample_rate, opus.layout, opus.format = 48_000, "stereo", "s16"
        opus.time_base = fractions.Fraction(1, 48_000)
        encoded[f"{side}-audio"] = [bytes(p) for i in range(CALL_S * 50) for p in opus.encode(audio_frame(i, freq))]
    return encoded


def feed_forwarded_call(sinks: dict[str, Any], encoded: dict[str, list[Any]]) -> float:
    """Push the packets at their pace (tagged as the forwarding path tags them); returns the CPU seconds."""
    start = time.process_time()
    for i in range(CALL_S * 50):
        for name in ("customer-audio", "rep-audio"):
            if i < len(encoded[name]):
                packet = av.Packet(encoded[name][i])
                packet.pts, packet.time_base = i * 960, fractions.Fraction(1, 48_000)
                tag_codec(packet, "opus")
                sinks[name].push(packet)
        for n in range(i * 3 // 5, (i + 1) * 3 // 5):
            for name in ("customer-video", "rep-video"):
                if n < len(encoded[name]):
                    data, keyframe = encoded[name][n]
                    packet = av.Packet(data)
                    packet.pts, packet.time_base = n * 3000, fractions.Fraction(1, 90_000)
                    packet.is_keyframe = keyframe
                    tag_codec(packet, "vp8")
                    sinks[name].push(packet)
        time.sleep(0.0005)
    return time.process_time() - start


NAMES = ("customer-video", "rep-video", "customer-audio", "rep-audio")


def record_call(folder: Path) -> dict[str, Path]:
    """Record CALL_S seconds of both sides as the server does on each path; print CPU per second of call.

    Returns the forwarding path's files (what the server writes by default)."""
    clip = happy_then_angry_clip(CALL_S / 2)
    video = [
        av.VideoFrame.from_ndarray(clip.frame_at(i / 30), format="bgr24").reformat(format="yuv420p").to_ndarray()
        for i in range(60)
    ]
    encoded = encoded_call(video)
    runs: tuple[tuple[str, str, Callable[[dict[str, Any], Any], float], Any], ...] = (
        ("forward", "VP8 and Opus packets muxed as they came", feed_forwarded_call, encoded),
        ("transcode", "frames encoded again: x264 ultrafast + Opus", feed_call, video),
    )
    files: dict[str, Path] = {}
    for path, what, feed, media in runs:
        baseline = feed(dict.fromkeys(NAMES, NullSink()), media)
        sub = folder / path
        tracks = {
            name: TrackRecorder(sub / f"{name}{'.mkv' if 'video' in name else '.mka'}", name[-5:]) for name in NAMES
        }
        for recorder in tracks.values():
            recorder.start()
        start = time.process_time()
        feed(dict(tracks), media)
        results = {name: recorder.stop() for name, recorder in tracks.items()}
        cpu = time.process_time() - start - baseline
        dropped = sum(r.dropped_frames for r in results.values())
        size = sum(r.size for r in results.values())
        print(f"\nrecording one call, {path} path ({what}; 2x 640x480 30 fps video + 2x audio), {CALL_S} s of call:")
        print(f"  {cpu / CALL_S * 100:.1f} % of one core per call ({cpu:.2f} CPU-s), {dropped} frames dropped,")
        print(f"  {size / CALL_S / 1000:.0f} kB per second of call on disk")
        if path == "forward":
            files = {name: r.path for name, r in results.items()}
    return files


def compose_call(files: dict[str, Path], folder: Path) -> None:
    inputs = ComposeInputs(
        customer_video=TrackInput(files["customer-video"]),
        rep_video=TrackInput(files["rep-video"]),
        customer_audio=TrackInput(files["customer-audio"]),
        rep_audio=TrackInput(files["rep-audio"]),
    )
    start = time.process_time()
    result = compose(inputs, folder / "composed.webm")
    cpu = time.process_time() - start
    print(f"\ncomposing the QA file (1280x480 VP8 15 fps + Opus) from the forwarded files, {result.duration_s:.1f} s:")
    print(f"  {result.duration_s / cpu:.1f} s of call per CPU-second ({cpu:.2f} CPU-s)")


if __name__ == "__main__":
    main()
    with tempfile.TemporaryDirectory() as tmp:
        compose_call(record_call(Path(tmp)), Path(tmp))
