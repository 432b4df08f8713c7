"""Emotion benchmark: fer's documented call against Rapport's fast path, on the same frames.

    uv sync --frozen --all-extras --group bench   # fer's own FER (the baseline) needs full TensorFlow
    .venv/bin/python bench/emotion.py [--seconds-per-face 3] [--fps 10]

The baseline ("naive") is fer used as it documents itself, ``FER().detect_emotions(frame)``,
with fer's own ``FER`` class on TensorFlow when the bench group is installed (else the
same call on LiteRT, :class:`emotion.model.FerModel`, and the header says so).

Frames are 640x480, made from the fixture photos (tests/fixtures/faces) with a
gentle hand-held sway. For each path it reports analysed frames per CPU-second
(``time.process_time``, all threads; for the worker process its own CPU time
from /proc), agreement of the dominant label with the manifest, and the cue
latency: media seconds from the happy->angry switch to the flag, through the
aggregator with default settings at the default 5 analysed frames per second.

OpenCV runs single-threaded in every path (as in the worker), which is also the
cheapest setting for the naive path's Haar cascade.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

# Run as a script from anywhere. This file is called emotion.py: its own folder must leave
# sys.path, or it would shadow the emotion package. The fixture helpers live in tests/.
HERE, ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)]

from bench.calls.procstat import cpu_seconds  # noqa: E402
from emotion.aggregate import Aggregator, EmotionSettings  # noqa: E402
from emotion.backends import ProcessWorker  # noqa: E402
from emotion.detector import faces_from_fer, fer_available, new_fer  # noqa: E402
from emotion.fastpath import FastFerDetector  # noqa: E402
from emotion.pipeline import EmotionService  # noqa: E402
from emotion.sampler import AdaptiveSampler, EveryFrame, FrameSampler, Observation, Sampler  # noqa: E402
from emotion.types import FaceEmotion, largest_face  # noqa: E402
from tests.support.faces import Clip, happy_then_angry_clip, make_clip, people  # noqa: E402

Detect = Callable[[np.ndarray], list[FaceEmotion]]


@dataclass
class Result:
    name: str
    frames: int
    cpu_s: float
    wall_s: float
    labels: list[str | None]

    @property
    def per_cpu_second(self) -> float:
        return self.frames / self.cpu_s if self.cpu_s else float("inf")

    def agreement(self, expected: Sequence[str]) -> float:
        return sum(a == b for a, b in zip(self.labels, expected, strict=True)) / len(expected)


def dominant(faces: list[FaceEmotion]) -> str | None:
    face = largest_face(faces)
    return None if face is None else face.dominant


def run_in_process(name: str, detect: Detect, frames: Sequence[np.ndarray]) -> Result:
    labels = []
    cpu, wall = time.process_time(), time.perf_counter()
    for frame in frames:
        labels.append(dominant(detect(frame)))
    return Result(name, len(frames), time.process_time() - cpu, time.perf_counter() - wall, labels)


def video_frame(image: np.ndarray, media_time: float) -> av.VideoFrame:
    """What a call delivers: a decoded yuv420p frame with a 90 kHz timestamp."""
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
    frame.pts, frame.time_base = round(media_time * 90_000), fractions.Fraction(1, 90_000)
    return frame


class Lockstep:
    """A sampler that also tells the bench when each analysis is back (the pipeline reports every result)."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.analysed = asyncio.Event()

    def __call__(self, media_time: float, frame: object = None) -> bool:
        return self.inner(media_time, frame)

    def record(self, latency_s: float) -> None:
        self.inner.record(latency_s)

    def observe(self, observation: Observation) -> None:
        self.inner.observe(observation)
        self.analysed.set()

    async def wait(self) -> None:
        await asyncio.wait_for(self.analysed.wait(), 30)
        self.analysed.clear()


async def run_pipeline(frames: Sequence[np.ndarray]) -> Result:
    """The fast path as deployed: a worker process fed through the service, one frame at a time."""
    async with EmotionService() as service:
        status = await service.wait_ready(300)
        if status != "ok":
            raise SystemExit(f"pipeline not available: {service.status_message}")
        lockstep = Lockstep(EveryFrame())
        stream = service.open_stream("bench", sampler=lockstep)
        pid = service.worker_pids[0]
        # Warm up (first inference sets up XNNPACK), then measure.
        stream.push(video_frame(frames[0], 0.0))
        await lockstep.wait()
        labels: list[str | None] = []
        video = [video_frame(image, 1.0 + i / 10) for i, image in enumerate(frames)]
        cpu, worker_cpu, wall = time.process_time(), cpu_seconds(pid), time.perf_counter()
        for frame in video:
            stream.push(frame)
            await lockstep.wait()
            labels.append(None if stream.last_update is None else stream.last_update.dominant)
        parent = time.process_time() - cpu
        worker = cpu_seconds(pid) - worker_cpu
        wall = time.perf_counter() - wall
        sent = service._slots[0].worker
        wire = sent.bytes_sent / (len(frames) + 1) if isinstance(sent, ProcessWorker) else float("nan")
    n = len(frames)
    print(
        f"  pipeline CPU per frame: server process {1000 * parent / n:.2f} ms (frame conversion, pipe), "
        f"worker {1000 * worker / n:.2f} ms; {wire / 1000:.1f} kB of pixels per frame to the worker"
    )
    return Result("fast path, pipeline (worker process)", len(frames), parent + worker, wall, labels)


def cue_latency(detect: Detect, clip: Clip) -> float | None:
    """Media seconds from the expression switch to the flag (None if it never came)."""
    settings = EmotionSettings()
    sampler, aggregator = FrameSampler(settings.analysis_fps), Aggregator(settings)
    switch = clip.switch_times[0]
    for t in clip.times():
        if not sampler(t):
            continue
        update = aggregator.update(t, detect(clip.frame_at(t)))
        if update.flag == "raised":
            return t - switch if t >= switch else -1.0
    return None


async def pipeline_cue_latency(clip: Clip, sampler: Sampler) -> tuple[float | None, int]:
    """The same through the service (worker process), call frames (yuv420p) pushed in lockstep.

    Returns the latency and how many frames were analysed before the switch.
    """
    async with EmotionService() as service:
        await service.wait_ready(300)
        lockstep = Lockstep(sampler)
        stream = service.open_stream("cue", sampler=lockstep)
        switch = clip.switch_times[0]
        before = 0
        for t in clip.times():
            if stream.push_frame(video_frame(clip.frame_at(t), t), t):
                await lockstep.wait()
                before += t < switch
                update = stream.last_update
                if update is not None and update.flag == "raised":
                    return (t - switch if t >= switch else -1.0), before
    return None, before


def fmt_latency(value: float | None) -> str:
    if value is None:
        return "never"
    if value < 0:
        return "raised BEFORE the switch"
    return f"+{value:.2f} s"


def fers_own() -> tuple[Any, str]:
    """fer's own ``FER()`` on full TensorFlow if the bench group is installed, else the same call on LiteRT."""
    if importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("pkg_resources") is not None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fer.fer import FER

            return FER(), "TensorFlow"
    return new_fer(), "LiteRT (no TensorFlow: uv sync --group bench)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds-per-face", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=10, help="frame rate of the benchmark clip")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the in-process comparison")
    args = parser.parse_args()

    ok, reason = fer_available()
    if not ok:
        raise SystemExit(reason)
    cv2.setNumThreads(1)

    clip = make_clip([(who, args.seconds_per_face) for who in people()], fps=args.fps)
    timed = list(clip.frames())
    frames = [frame for _, frame in timed]
    expected = [clip.expression_at(t) for t, _ in timed]
    print(f"Rapport emotion benchmark: {len(frames)} frames 640x480 from {len(people())} fixture faces")
    print(f"  {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, OpenCV {cv2.__version__} (1 thread)")

    loaded = time.perf_counter()
    fer, runtime = fers_own()  # FER() as fer documents it: Haar + the TFLite classifier
    fast = FastFerDetector()
    print(f"  naive path: fer's FER on {runtime}, loaded in {time.perf_counter() - loaded:.1f} s (not counted)")
    naive_detect: Detect = lambda image: faces_from_fer(fer.detect_emotions(image))  # noqa: E731
    naive_detect(frames[0])
    FastFerDetector().detect(frames[0])  # warm-up, outside the measurement

    results = [
        run_in_process("naive FER().detect_emotions(frame)", naive_detect, frames),
        run_in_process("fast path, in process", fast.detect, frames),
    ]
    if not args.skip_pipeline:
        results.append(asyncio.run(run_pipeline(frames)))

    print()
    print(f"{'path':40} {'frames/CPU-s':>12} {'CPU ms/frame':>12} {'wall ms/frame':>13} {'labels = manifest':>18}")
    for r in results:
        print(
            f"{r.name:40} {r.per_cpu_second:12.1f} {1000 * r.cpu_s / r.frames:12.2f} "
            f"{1000 * r.wall_s / r.frames:13.2f} {100 * r.agreement(expected):17.1f}%"
        )
    naive = results[0]
    for r in results[1:]:
        print(f"speed-up of {r.name}: {r.per_cpu_second / naive.per_cpu_second:.1f}x frames per CPU-second")
    same = sum(a == b for a, b in zip(naive.labels, results[1].labels, strict=True))
    print(f"fast path gives the naive path's label on {same}/{len(frames)} frames")
    short = ["naive", "fast", "pipeline"]
    for (t, _), want, *got in zip(timed, expected, *(r.labels for r in results), strict=True):
        if any(label != want for label in got):
            print(
                f"  at {t:.1f} s, manifest {want}: " + ", ".join(f"{n} {g}" for n, g in zip(short, got, strict=False))
            )
    tracker = fast.tracker
    print(
        f"fast path face finding: {tracker.full_detections} full-frame searches, "
        f"{tracker.near_detections} local searches, {tracker.reuses} box reuses"
    )

    cue_clip = happy_then_angry_clip(5.0, fps=30)
    print()
    print("cue latency, happy -> angry at 5.0 s media time (default settings, 5 analysed fps):")
    print(f"  naive:                 {fmt_latency(cue_latency(naive_detect, cue_clip))}")
    print(f"  fast path, in process: {fmt_latency(cue_latency(FastFerDetector().detect, cue_clip))}")
    if not args.skip_pipeline:
        settings = EmotionSettings()
        for name, sampler in (
            ("fixed rate", FrameSampler(settings.analysis_fps)),
            ("adaptive (default)", AdaptiveSampler.for_settings(settings.analysis_fps, settings.raise_threshold)),
        ):
            latency, analysed = asyncio.run(pipeline_cue_latency(cue_clip, sampler))
            print(
                f"  fast path, pipeline, {name + ':':19} {fmt_latency(latency)}; "
                f"{analysed} frames analysed in the {cue_clip.switch_times[0]:.0f} s before the switch"
            )


if __name__ == "__main__":
    main()
