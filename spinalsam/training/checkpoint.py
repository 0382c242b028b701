"""Training checkpoints that let `--resume` continue exactly where a run stopped.

A checkpoint holds only what training changes (the LoRA, CBAM and any decoder parameters; the
rest of the base SAM is frozen and comes from its own checkpoint), the optimiser and scheduler
state, every random generator's state and the step, so a resumed run draws the same batches and
prompts and follows the same loss curve as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from spinalsam.sam.model import SpinalSAM
from spinalsam.training.errors import TrainingError

__all__ = ["CHECKPOINT_DIR", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_DIR = "checkpoints"


def _trainable(model: SpinalSAM) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    folder: Path,
    model: SpinalSAM,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    rng: np.random.Generator,
    step: int,
    best_val_dice: float,
) -> Path:
    """Write `folder/step_<step>.pt`; written to a temporary name first, so a run killed while
    saving leaves the previous checkpoint usable."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:07d}.pt"
    state = {
        "step": step,
        "best_val_dice": best_val_dice,
        "trainable": {name: p.detach().cpu() for name, p in _trainable(model).items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": rng.bit_generator.state,
        },
    }
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)
    return path


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint of the highest step in `folder`, or None when there is none."""
    paths = sorted(folder.glob("step_*.pt")) if folder.is_dir() else []
    return paths[-1] if paths else None


def load_checkpoint(
    path: Path,
    model: SpinalSAM,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    rng: np.random.Generator,
) -> tuple[int, float]:
    """Restore everything `save_checkpoint` wrote; returns (step, best validation Dice)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise TrainingError(f"cannot read training checkpoint {path}: {err}") from err
    params = _trainable(model)
    saved = state["trainable"]
    if set(saved) != set(params) or any(saved[n].shape != p.shape for n, p in params.items()):
        raise TrainingError(
            f"{path.name} was written by a differently shaped model; resume with the same "
            "--model-type, --image-size, --lora-rank, CBAM and --train-decoder settings as the "
            "original run"
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved[name])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    rng.bit_generator.state = state["rng"]["numpy"]
    return int(state["step"]), float(state["best_val_dice"])
