"""Training smoke benchmark: steps/s and peak memory of LoRA + CBAM (+ decoder) fine-tuning.

Prepared for a GPU machine: a few hundred steps of a random-weight ViT-B (the real compute and
memory of `sam_vit_b`, without a 375 MB download) on the shared PNG slices, bf16 autocast on GPU.
Random weights cannot learn much, so this measures throughput, not accuracy. Also runs on CPU:

    python bench/train_smoke.py --steps 2 --model-type vit_tiny          # known to work on CPU
    python bench/train_smoke.py --steps 300 --model-type vit_b           # GPU

Prints one JSON object. Step times exclude validation and the first `--warmup` steps (CUDA
kernel selection, allocator growth).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import get_args

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from spinalsam.sam.model import ModelType
from spinalsam.training.data import load_data, split_by_case
from spinalsam.training.loop import TrainConfig, resolve_device, train

SHARED_PNGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "spinalsam-r1-sample"
SLABS = r"^(.+_\d)\d$"  # the axial sample is one patient: validate on slabs of ten slices


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=SHARED_PNGS / "axial")
    p.add_argument("--model-type", choices=get_args(ModelType), default="vit_b")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--correction-clicks", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    p.add_argument(
        "--train-decoder",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also train the mask decoder (its cost on top of LoRA + CBAM)",
    )
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data at {args.data}; pass --data DIR with images/ and masks/", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    train_samples, val_samples = split_by_case(load_data([args.data], case_pattern=SLABS), 0.2, 0)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            out=Path(out),
            model_type=args.model_type,
            steps=args.steps,
            batch_size=args.batch_size,
            correction_clicks=args.correction_clicks,
            train_decoder=args.train_decoder,
            val_every=args.steps,
            save_every=args.steps,
            device=str(device),
            progress=False,
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result = train(config, train_samples, val_samples[:4])
    steps = [r for r in result.history if r["step"] > 0]
    timed = steps[args.warmup :] or steps
    seconds = sum(r["seconds"] for r in timed)
    report = {
        "model_type": args.model_type,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "bf16_autocast": device.type == "cuda",
        "image_size": result.model.img_size,
        "steps": args.steps,
        "timed_steps": len(timed),
        "batch_size": args.batch_size,
        "correction_clicks": args.correction_clicks,
        "train_decoder": args.train_decoder,
        "steps_per_s": len(timed) / seconds,
        "objects_per_s": len(timed) * args.batch_size / seconds,
        "trainable_parameters": result.model.parameter_counts()["trainable"],
        "first_loss": steps[0]["loss"],
        "last_loss": steps[-1]["loss"],
        "val_dice": result.history[-1]["val_dice"],
        # ru_maxrss is in KiB on Linux: the whole process, model and data included
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    if device.type == "cuda":
        report["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
