"""How long "Save session bundle" and reopening it take, printed as one JSON object.

    python bench/bundle.py [--volume PATH] [--repeats 2]

The volume defaults to the fetched chest CT (512²×133, ../shared-cache/chest-ct/cxr.nii.gz)
and falls back to a synthetic volume of the same size; one box mask is segmented and
propagated first, so the bundle holds real work. Save is what the user waits for after the
button (the write of the .npz); reopen is `OpenBundle` in a fresh session. Target: ≤ 5 s each
on 2 CPU cores for a 512²×133 CT.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinalsam import ops  # noqa: E402
from spinalsam.backends import DefaultBackend  # noqa: E402
from spinalsam.session import Session  # noqa: E402
from tests.fixtures_ct import write_nifti  # noqa: E402

CHEST = REPO.parent / "shared-cache" / "chest-ct" / "cxr.nii.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volume", type=Path, default=CHEST)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    volume = args.volume
    if not volume.exists():
        rng = np.random.default_rng(0)
        data = rng.integers(-1000, 1500, (133, 512, 512)).astype(np.int16)
        volume = write_nifti(folder / "synthetic.nii.gz", data, spacing=(0.7, 0.7, 2.5))
    backend = DefaultBackend(reason="bench")
    s = Session(backend, folder / "s")
    s.open_files([str(volume)])
    h, w = s.slice_shape
    box = (w * 2 // 5, h * 2 // 5, w * 3 // 5, h * 3 // 5)
    s.apply([ops.AddBox(box=box), ops.Segment(prompt="box"), ops.Propagate()])
    saves, reopens, size = [], [], 0
    for _ in range(args.repeats):
        began = time.perf_counter()
        (saved,) = s.apply([ops.SaveSession()])
        saves.append(time.perf_counter() - began)
        path = saved.files[0]
        size = Path(path).stat().st_size
        other = Session(backend, folder / "o")
        began = time.perf_counter()
        (opened,) = other.apply([ops.OpenBundle(path=str(path))])
        reopens.append(time.perf_counter() - began)
        assert opened.ok, opened.message
        other.close()
    print(
        json.dumps(
            {
                "volume": volume.name,
                "shape": list(s.current.ct.volume.shape),
                "bundle_mb": round(size / 1e6, 1),
                "save_s": [round(t, 2) for t in saves],
                "reopen_s": [round(t, 2) for t in reopens],
            }
        )
    )


if __name__ == "__main__":
    main()
