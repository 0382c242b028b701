"""What a user waits for on a new slice when SAM embeds the neighbours in the background.

Prints one JSON object. The served stack runs as in the app (settings -> `load_backend` ->
`Session`), on a seeded random-weight checkpoint of the real file's layout (no Hub access here;
compute is the same as with the real weights). A simulated user opens a CT, looks at a slice
for `--dwell` seconds, steps to the next slice and clicks, `--steps` times. With background
embedding (`spinalsam.prefetch`) the click on the new slice finds its embedding ready when the
encoder finished within the dwell; without it (`--radius 0`) every step waits for the encoder.

    python bench/prefetch.py --model vit_b --method openvino --dwell 20 --steps 3
    python bench/prefetch.py --model vit_b --method openvino --dwell 20 --steps 3 --radius 0
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHEST_CT = REPO.parent / "shared-cache" / "chest-ct" / "cxr.nii.gz"


def _checkpoint(model: str, folder: Path) -> Path:
    """A seeded random-weight checkpoint with the real file name, so the model type is inferred."""
    import torch

    from spinalsam.sam.fidelity import random_sam

    name = {"vit_b": "sam_vit_b_random.pth", "mobile_sam": "mobile_sam.pt"}[model]
    path = folder / name
    torch.save(random_sam(model, seed=0).state_dict(), path)
    return path


def _volume(folder: Path) -> Path:
    """The fetched chest CT when present (real anatomy), else a synthetic 24-slice volume."""
    if CHEST_CT.is_file():
        return CHEST_CT
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    vol = rng.normal(40, 30, (24, 512, 512)).astype(np.int16)
    image = sitk.GetImageFromArray(vol)
    image.SetSpacing((0.8, 0.8, 2.5))
    path = folder / "synthetic.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def run(args: argparse.Namespace) -> dict[str, object]:
    from spinalsam import ops
    from spinalsam.backends import SamAppBackend, load_backend
    from spinalsam.limits import Budget
    from spinalsam.session import Session
    from spinalsam.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="spinalsam-prefetch-") as tmp:
        folder = Path(tmp)
        os.environ.update(
            {
                "SPINALSAM_SAM_CHECKPOINT": str(_checkpoint(args.model, folder)),
                "SPINALSAM_BACKEND": "sam",
                "SPINALSAM_DEVICE": "cpu",
                "SPINALSAM_ENCODER_OPT": args.method,
                "SPINALSAM_CACHE": args.cache_dir or str(folder / "cache"),
                "HF_HUB_OFFLINE": "1",
            }
        )
        started = time.perf_counter()
        backend = load_backend(load_settings().sam)
        if not isinstance(backend, SamAppBackend):
            return {"error": backend.info.reason}
        load_s = time.perf_counter() - started
        session = Session(
            backend, workdir=folder / "work", budget=Budget(prefetch_radius=args.radius)
        )
        try:
            session.open_files([_volume(folder)])
            first = session.slice_count // 2
            steps = []
            for step in range(args.steps + 1):
                session.apply([ops.GotoSlice(index=first + step)])
                shown = time.perf_counter()
                session.prefetch()  # what the UI does whenever it shows a slice
                if step:  # the first slice only starts the walk
                    t0, c0 = time.perf_counter(), time.process_time()
                    results = session.apply(
                        [
                            ops.ClickImage(x=0.5, y=0.5, mode="positive"),
                            ops.Segment(prompt="points"),
                        ]
                    )
                    wait = time.perf_counter() - t0
                    steps.append(
                        {
                            "slice": first + step,
                            "click_s": round(wait, 3),
                            "click_cpu_s": round(time.process_time() - c0, 3),
                            "ok": all(r.ok for r in results),
                        }
                    )
                time.sleep(max(0.0, args.dwell - (time.perf_counter() - shown)))
            stats = backend.sam.cache.stats()
        finally:
            session.close()
    clicks = sorted(s["click_s"] for s in steps)
    return {
        "model": args.model,
        "method": args.method,
        "radius": args.radius,
        "dwell_s": args.dwell,
        "load_s": round(load_s, 1),
        "steps": steps,
        "new_slice_click_p50_s": clicks[len(clicks) // 2],
        "cache": {"hits": stats.hits, "misses": stats.misses},
        "cpu_count": len(os.sched_getaffinity(0)),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "isa_caps": {
            k: os.environ[k]
            for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")
            if k in os.environ
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_b", choices=["vit_b", "mobile_sam"])
    parser.add_argument("--method", default="auto", help="SPINALSAM_ENCODER_OPT")
    parser.add_argument("--radius", type=int, default=3, help="slices embedded on each side")
    parser.add_argument("--dwell", type=float, default=20.0, help="seconds spent on each slice")
    parser.add_argument("--steps", type=int, default=3, help="steps to the next slice")
    parser.add_argument("--cache-dir", default=None, help="export cache (SPINALSAM_CACHE)")
    print(json.dumps(run(parser.parse_args(argv)), indent=2))


if __name__ == "__main__":
    main()
