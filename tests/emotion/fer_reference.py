"""What fer's own TensorFlow pipeline says about every fixture face: the reference the LiteRT path must match.

    uv sync --frozen --all-extras --group bench     # fer's FER needs full TensorFlow and pkg_resources
    .venv/bin/python -m tests.emotion.fer_reference           # rewrites tests/fixtures/faces/fer_reference.json
    .venv/bin/python -m tests.emotion.fer_reference --check   # compares with the file, and LiteRT with TensorFlow live

For each fixture picture (every person's crop, the 640x480 and 480x640 phone
frames, the pictures without a face) it stores fer's answer two ways:

* ``naive``: ``FER().detect_emotions(image)`` as fer documents it (Haar on the whole picture);
* ``fast``: Rapport's fast path (``FastFerDetector``) with fer's own ``FER`` as the
  classifier, i.e. the worker as it was before LiteRT.

Boxes are fer's (pixels), scores fer's (rounded to 2 decimals). The test
(tests/emotion/test_litert.py) runs the LiteRT path on the same pictures and
checks the labels are identical and the scores within a hundredth. Made with
the versions recorded in the file (the Haar boxes depend on OpenCV's).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotion.fastpath import FastFerDetector
from tests.support.faces import FACES_DIR, images_without_faces, landscape, load_image, people, portrait

REFERENCE = FACES_DIR / "fer_reference.json"


def pictures() -> Iterator[tuple[str, np.ndarray]]:
    """Every fixture picture, by a stable name."""
    for who in people():
        yield f"crop {who.name}", who.crop()
    for who in people():
        yield f"landscape {who.name}", landscape(who).image
    for who in people():
        yield f"portrait {who.name}", portrait(who).image
    for file in images_without_faces():
        yield f"no faces {file}", load_image(file)


def answer(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """fer-shaped results as JSON: plain-int boxes, fer's rounded scores, and the label."""
    return [
        {
            "box": [int(v) for v in result["box"]],
            "emotions": {k: float(v) for k, v in result["emotions"].items()},
            "label": max(result["emotions"], key=result["emotions"].get),
        }
        for result in results
    ]


def fast_answer(detect: Callable[[np.ndarray], Any], image: np.ndarray) -> list[dict[str, Any]]:
    return answer([{"box": f.box.as_tuple(), "emotions": dict(f.scores)} for f in detect(image)])


def tensorflow_fer() -> Any:
    """fer's own ``FER()`` on full TensorFlow (the bench group), quietly."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fer.fer import FER

        return FER()


def make_reference() -> dict[str, Any]:
    import fer
    import tensorflow as tf

    model = tensorflow_fer()
    fast = FastFerDetector()
    fast._fer = model  # fer's own FER as the fast path's classifier: the worker before LiteRT
    cases = {}
    for name, image in pictures():
        fast.tracker.reset()
        cases[name] = {"naive": answer(model.detect_emotions(image)), "fast": fast_answer(fast.detect, image)}
    return {
        "about": __doc__.split("\n\n")[0],
        "made_with": {
            "fer": fer.__version__,
            "tensorflow": tf.__version__,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
        },
        "cases": cases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing the file")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    reference = make_reference()
    if not args.check:
        REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")
        print(f"wrote {REFERENCE.relative_to(Path.cwd())}: {len(reference['cases'])} pictures")
        return
    stored = json.loads(REFERENCE.read_text())
    differ = [name for name in reference["cases"] if reference["cases"][name] != stored["cases"].get(name)]
    from emotion.detector import new_fer

    lite, fast = new_fer(), FastFerDetector()
    for name, image in pictures():
        fast.tracker.reset()
        live = {"naive": answer(lite.detect_emotions(image)), "fast": fast_answer(fast.detect, image)}
        if live != reference["cases"][name]:
            differ.append(f"LiteRT {name}")
    print("\n".join(differ) or f"all {len(reference['cases'])} pictures match (file, TensorFlow and LiteRT)")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
