"""What recording costs per frame: the encoders the recorder could use, on face-fixture frames.

Run: .venv/bin/python bench/recording.py
Prints CPU milliseconds per 640x480 frame and bytes per frame for each candidate.
"""

from __future__ import annotations

import fractions
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.faces import happy_then_angry_clip  # noqa: E402

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


if __name__ == "__main__":
    main()
