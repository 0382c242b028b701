"""`python -m spinalsam.train`: fine-tune SpinalSAM's LoRA + CBAM (+ decoder) on your own data.

    python -m spinalsam.train --data DIR|VOLUME [--label-map SEG --labels 30,31,32] \
        --model-type vit_b --checkpoint SPEC --out runs/x [--steps N ...] [--push-to-hub REPO]

See docs/finetune.md for worked examples and timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from tqdm.contrib.logging import logging_redirect_tqdm

from spinalsam.sam.errors import SamError
from spinalsam.sam.hub import fetch_checkpoint
from spinalsam.sam.model import ModelType
from spinalsam.sam.tiny import TINY_IMG_SIZE, save_tiny_checkpoint
from spinalsam.training.checkpoint import CHECKPOINT_DIR, latest_checkpoint
from spinalsam.training.data import DEFAULT_CASE_PATTERN, load_data, split_by_case
from spinalsam.training.errors import TrainingError
from spinalsam.training.loop import TrainConfig, train
from spinalsam.training.publish import push_adapter
from spinalsam.windowing import PRESETS

__all__ = ["main", "parse_args"]

log = logging.getLogger("spinalsam.train")


def _labels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"labels must be integers like 30,31,32: {err}") from err


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m spinalsam.train", description=__doc__.split("\n")[0]
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        action="append",
        required=True,
        type=Path,
        help="folder with images/ + masks/ (or with such subfolders), or a CT "
        "volume (NIfTI, DICOM folder/zip) with --label-map; repeatable",
    )
    data.add_argument(
        "--label-map",
        action="append",
        default=[],
        type=Path,
        help="label map of a volume --data, repeated once per volume, in the same order",
    )
    data.add_argument("--labels", type=_labels, default=(), help="label values to train on")
    data.add_argument(
        "--axis",
        choices=("axial", "coronal", "sagittal"),
        default="axial",
        help="slice direction for volumes (default axial)",
    )
    data.add_argument(
        "--window",
        choices=sorted(PRESETS),
        default="bone",
        help="CT window used to render volume slices, as in the app",
    )
    data.add_argument(
        "--case-pattern",
        default=DEFAULT_CASE_PATTERN,
        help="regex whose 'case' group (else group 1) is a slice name's case id; "
        f"unmatched names are their own case (default {DEFAULT_CASE_PATTERN})",
    )
    data.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="fraction of cases (not slices) held out for validation",
    )
    model = p.add_argument_group("model")
    model.add_argument("--model-type", choices=get_args(ModelType), default="vit_b")
    model.add_argument("--checkpoint", help="base SAM weights: a local file or repo_id:filename")
    model.add_argument("--lora-rank", type=int, default=8)
    model.add_argument(
        "--lora-targets",
        type=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
        default=("qkv",),
        help="encoder attention layers that get LoRA: qkv, proj or qkv,proj (default qkv)",
    )
    model.add_argument("--no-cbam", action="store_true", help="train LoRA only")
    model.add_argument(
        "--train-decoder",
        action=argparse.BooleanOptionalAction,
        help="also train the mask decoder (default: on for vit_tiny, whose random decoder "
        "cannot learn otherwise; off for real SAM, which keeps the paper's LoRA + CBAM)",
    )
    model.add_argument(
        "--image-size",
        type=int,
        help=f"input size of the vit_tiny model, a multiple of 16 (default {TINY_IMG_SIZE}); "
        "real SAM is fixed at 1024",
    )
    run = p.add_argument_group("training")
    run.add_argument("--out", type=Path, required=True, help="run folder (adapter/, checkpoints/)")
    run.add_argument("--steps", type=int, default=1000, help="optimiser steps")
    run.add_argument("--batch-size", type=int, default=4, help="objects per micro-batch")
    run.add_argument("--accum", type=int, default=1, help="micro-batches per optimiser step")
    run.add_argument("--lr", type=float, default=1e-4)
    run.add_argument("--warmup-steps", type=int, help="default: 5%% of --steps")
    run.add_argument("--loss", choices=("dice_bce", "dice_focal"), default="dice_bce")
    run.add_argument(
        "--correction-clicks", type=int, default=0, help="simulated correction rounds per object"
    )
    run.add_argument("--val-every", type=int, default=100)
    run.add_argument("--save-every", type=int, default=500)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        help="continue from a checkpoint file, or the latest one in --out",
    )
    run.add_argument("--log-jsonl", type=Path, help="append one JSON line per step here")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--push-to-hub", metavar="REPO", help="upload the best adapter (HF_TOKEN)")
    return p.parse_args(argv)


def _base_checkpoint(args: argparse.Namespace) -> tuple[Path | None, str | None]:
    """(local path, spec as recorded in the adapter) of the base weights.

    The tiny model has no published weights, so a reproducible one is written into the run
    folder: the adapter then pins its hash and can be reloaded onto exactly that base.
    """
    if args.checkpoint:
        return fetch_checkpoint(args.checkpoint), args.checkpoint
    if args.model_type == "vit_tiny":
        size = args.image_size or TINY_IMG_SIZE
        path = save_tiny_checkpoint(args.out / "tiny_base.pth", seed=args.seed, img_size=size)
        return path, str(path)
    log.warning(
        "no --checkpoint: training on a randomly initialised %s (smoke runs only)", args.model_type
    )
    return None, None


def _check_model_args(args: argparse.Namespace) -> None:
    """Refuse an image size that the chosen model cannot take, before any data is loaded."""
    if args.image_size is None:
        return
    if args.model_type != "vit_tiny" or args.checkpoint:
        raise TrainingError(
            "--image-size applies only to a generated vit_tiny base; a SAM checkpoint fixes "
            "its own input size"
        )
    if args.image_size < 16 or args.image_size % 16:
        raise TrainingError(f"--image-size must be a multiple of 16, got {args.image_size}")


def _resume_path(args: argparse.Namespace) -> Path | None:
    if args.resume is None:
        return None
    if args.resume != "latest":
        return Path(args.resume)
    path = latest_checkpoint(args.out / CHECKPOINT_DIR)
    if path is None:
        raise TrainingError(f"--resume: no checkpoint in {args.out / CHECKPOINT_DIR}")
    return path


def run(args: argparse.Namespace) -> dict[str, object]:
    """Load, split, train, optionally push; returns the run's summary."""
    _check_model_args(args)
    samples = load_data(
        args.data, args.label_map, args.labels, args.axis, args.window, args.case_pattern
    )
    train_samples, val_samples = split_by_case(samples, args.val_fraction, args.seed)
    log.info(
        "%d training slices from %d cases, %d validation slices from %d cases",
        len(train_samples),
        len({s.case for s in train_samples}),
        len(val_samples),
        len({s.case for s in val_samples}),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint, spec = _base_checkpoint(args)
    config = TrainConfig(
        out=args.out, model_type=args.model_type, checkpoint=checkpoint, checkpoint_spec=spec,
        steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        warmup_steps=args.warmup_steps, accum=args.accum, val_every=args.val_every,
        save_every=args.save_every, seed=args.seed, device=args.device,
        lora_rank=args.lora_rank, lora_targets=args.lora_targets, use_cbam=not args.no_cbam,
        train_decoder=(
            args.model_type == "vit_tiny" if args.train_decoder is None else args.train_decoder
        ),
        correction_clicks=args.correction_clicks, loss=args.loss,
        log_jsonl=args.log_jsonl, progress=not args.no_progress,
    )  # fmt: skip
    result = train(config, train_samples, val_samples, resume=_resume_path(args))
    summary: dict[str, object] = {
        "best_val_dice": result.best_val_dice,
        "adapter": str(result.adapter) if result.adapter else None,
        "steps": config.steps,
    }
    if args.push_to_hub:
        if result.adapter is None:
            raise TrainingError("no adapter was saved, so there is nothing to push")
        summary["hub_url"] = push_adapter(result.adapter, args.push_to_hub)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with logging_redirect_tqdm():
            summary = run(args)
    except (TrainingError, SamError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
