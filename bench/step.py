"""Server time of one slice step on a 512² volume: the operation, the view and its encoding.

What the image panel costs per wheel notch or arrow key, measured on the same code path as the
UI (`Session.apply(GotoSlice)` and `ui._views`: the view, its PNG, status and label list).
Prints JSON.

    python bench/step.py [--slices 60] [--labels]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spinalsam import ops
from spinalsam.backends import DefaultBackend
from spinalsam.session import Session
from spinalsam.ui import _views

SHARED = Path(__file__).resolve().parents[2] / "shared/data/totalseg-example/dicom"


def _volume(folder: Path, slices: int) -> list[str]:
    """The shared 512² DICOM series when present, else a synthetic 512² CT-like volume."""
    if SHARED.is_dir():
        return sorted(str(p) for p in SHARED.glob("*.dcm"))
    rng = np.random.default_rng(0)
    vol = rng.normal(40, 30, (slices, 512, 512)).astype(np.int16)
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((0.8, 0.8, 1.5))
    path = folder / "ct.nii.gz"
    sitk.WriteImage(img, str(path))
    return [str(path)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--labels", action="store_true", help="a mask on every slice")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = Session(DefaultBackend(reason="bench"), workdir=Path(tmp))
        s.apply([ops.OpenFiles(paths=tuple(_volume(Path(tmp), args.slices)))])
        if args.labels:
            s.current.labels[:, 200:300, 180:330] = 1
        count, times = s.slice_count, []
        for k in range(2 * count):
            index = k % count if (k // count) % 2 == 0 else count - 1 - k % count
            start = time.perf_counter()
            s.apply([ops.GotoSlice(index=index)])
            _views(s, "")  # everything the server does for a step: view, status, label list
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        print(
            json.dumps(
                {
                    "grid": list(s.slice_shape[::-1]),
                    "steps": len(times),
                    "labels": args.labels,
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                    "max_ms": round(times[-1], 1),
                }
            )
        )


if __name__ == "__main__":
    main()
