"""Latency and accuracy of a segmentation backend, printed as one JSON object.

    python bench/segmenter.py [--backend default] [--repeats 20] [--no-eval]

Latency: `set_image` and `predict` (box and point prompts), p50/p95 in ms, per view: the 512×512
axial slices and the 1098×689 sagittal ones.
Accuracy: the evaluation CLI's summary for box and point prompts on the shared sample data
(skipped, with a note, when ../shared/data is absent).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinalsam.evaluate import (  # noqa: E402
    derive_prompts,
    evaluate_backend,
    load_mask,
    load_slice,
    pair_files,
)
from spinalsam.evaluation.folders import folder_slice_cases  # noqa: E402
from spinalsam.segmenters.registry import create_segmenter  # noqa: E402

SAMPLE = REPO.parent / "shared" / "data" / "spinalsam-r1-sample"
SUMMARY = ("per_vertebra_dice", "per_slice_dice", "iou", "hd95", "msd", "ms_per_image", "n")


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(ms, 50)), 1),
        "p95": round(float(np.percentile(ms, 95)), 1),
    }


def latency(backend: str, repeats: int, view: str) -> dict[str, object]:
    """Time set_image and one prompt per kind on one view's slices, cycling through them."""
    pairs = pair_files(SAMPLE / view / "images", SAMPLE / view / "masks")
    segmenter = create_segmenter(backend)
    set_ms: list[float] = []
    predict_ms: dict[str, list[float]] = {"box": [], "point": []}
    for i in range(repeats):
        image_path, mask_path = pairs[(i * 7) % len(pairs)]
        image, gt = load_slice(image_path), load_mask(mask_path)
        start = time.perf_counter()
        segmenter.set_image(image)
        set_ms.append((time.perf_counter() - start) * 1000)
        for kind, times in predict_ms.items():
            _, prompt = next(iter(derive_prompts(gt, kind)))
            start = time.perf_counter()
            segmenter.predict(prompt)
            times.append((time.perf_counter() - start) * 1000)
    return {
        "image": "x".join(map(str, image.shape)),
        "set_image_ms": _percentiles(set_ms),
        "predict_ms": {kind: _percentiles(times) for kind, times in predict_ms.items()},
        "set_image_plus_predict_ms_p50": {
            kind: round(float(np.median(np.add(set_ms, times))), 1)
            for kind, times in predict_ms.items()
        },
    }


def accuracy(backend: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for view in ("axial", "sagittal"):
        pairs = pair_files(SAMPLE / view / "images", SAMPLE / view / "masks")
        out[view] = {}
        for kind in ("box", "point"):
            result = evaluate_backend(backend, folder_slice_cases(pairs), kind)
            out[view][kind] = {k: result[k] for k in SUMMARY}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="default")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-eval", action="store_true", help="latency only")
    args = parser.parse_args()
    report: dict[str, object] = {
        "backend": args.backend,
        "note": "wall-clock on this machine; shared CPUs inflate the numbers",
    }
    if not SAMPLE.is_dir():
        report["skipped"] = f"sample data not found at {SAMPLE}"
    else:
        report["latency"] = {
            view: latency(args.backend, args.repeats, view) for view in ("axial", "sagittal")
        }
        if not args.no_eval:
            report["evaluate"] = accuracy(args.backend)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
