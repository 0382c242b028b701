"""The fine-tuning loop: simulated prompts, Dice + BCE, AdamW with warmup + cosine, checkpoints.

LoRA (in the image encoder) and CBAM train, and with `train_decoder` the mask decoder too. The
encoder's output changes every step, so embeddings cannot be cached: each step embeds its batch
afresh. One encoder pass serves all prompting rounds of an object (initial prompt plus correction
clicks), which is where SAM's design makes interactive training cheap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm

from spinalsam.sam.adapters import save_adapter
from spinalsam.sam.model import ModelType, SamConfig, SpinalSAM, build_spinalsam
from spinalsam.training.batch import (
    autocast,
    decode_prompt,
    input_frame_masks,
    upsample_to_input,
)
from spinalsam.training.checkpoint import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from spinalsam.training.data import Sample
from spinalsam.training.errors import TrainingError
from spinalsam.training.losses import LossKind, segmentation_loss
from spinalsam.training.prompts import PromptConfig, correction_click, simulate_prompt
from spinalsam.training.validate import validate

__all__ = ["ADAPTER_DIR", "TrainConfig", "TrainResult", "resolve_device", "train"]

ADAPTER_DIR = "adapter"  # the best-by-validation adapter, in the app's adapter format
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; `steps` counts optimiser updates (each `accum` batches)."""

    out: Path
    model_type: ModelType = "vit_b"
    checkpoint: Path | None = None  # local base weights (None: random init, for smoke runs)
    checkpoint_spec: str | None = None  # as the user named it, recorded in the adapter
    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # None: 5% of the steps
    accum: int = 1
    val_every: int = 100
    save_every: int = 500
    seed: int = 0
    device: str = "auto"
    lora_rank: int = 8
    lora_targets: tuple[str, ...] = ("qkv",)
    use_cbam: bool = True
    train_decoder: bool = False
    correction_clicks: int = 0
    loss: LossKind = "dice_bce"
    grad_clip: float = 1.0
    prompts: PromptConfig = field(default_factory=PromptConfig)
    log_jsonl: Path | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "accum", "val_every", "save_every"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1")
        if self.correction_clicks < 0:
            raise TrainingError("--correction-clicks cannot be negative")


@dataclass(frozen=True)
class TrainResult:
    """One record per step: step, loss, lr, seconds, val_dice (None between validations).

    When training starts from scratch, a step-0 record holds the untrained model's validation.
    """

    history: list[dict[str, float | int | None]]
    best_val_dice: float
    adapter: Path | None  # the best adapter's folder; None only when resumed past every save
    model: SpinalSAM


def resolve_device(name: str) -> torch.device:
    """`auto` picks the GPU when there is one; naming an absent GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but this machine has no usable GPU")
    return device


def _seed_everything(seed: int) -> None:
    """Seed torch and ask for deterministic kernels (warn only: some CUDA backward passes,
    e.g. bilinear upsampling, have no deterministic variant and must not abort training)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warmup to 1, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _trainable_items(model: SpinalSAM, samples: Sequence[Sample]) -> list[tuple[int, int]]:
    """(sample, object) pairs whose object survives resizing to the input frame.

    A speck on a large slice can vanish at the tiny model's 128-pixel input; prompting an empty
    target would teach nothing and break the prompt simulation.
    """
    items = []
    for i, sample in enumerate(samples):
        _, info = model.preprocess(sample.image)
        targets = input_frame_masks(list(sample.objects), info, model.img_size)
        items += [(i, k) for k in range(len(sample.objects)) if targets[k].any()]
    if not items:
        raise TrainingError("no training object is large enough at the model's input size")
    return items


def _object_loss(
    model: SpinalSAM,
    embedding: torch.Tensor,
    target: torch.Tensor,
    rng: np.random.Generator,
    config: TrainConfig,
) -> torch.Tensor:
    """Mean loss over the first prompt and each correction round of one object.

    Each correction click is drawn from the error of the round before and that round's low-res
    logits are fed back as the mask prompt, as SAM does when a user keeps clicking.
    """
    target_np = target.bool().cpu().numpy()
    prompt = simulate_prompt(target_np, rng, config.prompts)
    points, labels, mask_input = prompt.points, prompt.labels, None
    losses = []
    for round_index in range(config.correction_clicks + 1):
        with autocast(embedding.device):
            low_res = decode_prompt(model, embedding, points, labels, prompt.box, mask_input)
        logits = upsample_to_input(low_res.float(), model.img_size)[0]
        losses.append(segmentation_loss(logits, target[None], config.loss))
        if round_index == config.correction_clicks:
            break
        click = correction_click((logits[0] > 0).cpu().numpy(), target_np, rng)
        if click is None:
            break
        points = np.concatenate([points, click[0][None]])
        labels = np.append(labels, click[1])
        mask_input = low_res.detach()
    return torch.stack(losses).mean()


def _batch_loss(
    model: SpinalSAM,
    samples: Sequence[Sample],
    items: Sequence[tuple[int, int]],
    rng: np.random.Generator,
    config: TrainConfig,
) -> torch.Tensor:
    """Loss of one micro-batch of `batch_size` objects drawn uniformly with replacement."""
    images, targets = [], []
    for pick in rng.integers(len(items), size=config.batch_size):
        index, obj = items[pick]
        image, info = model.preprocess(samples[index].image)
        images.append(image)
        targets.append(input_frame_masks([samples[index].objects[obj]], info, model.img_size))
    with autocast(model.device):
        embeddings = model.embed(torch.cat(images))
    losses = [
        _object_loss(model, embeddings[b : b + 1], target[0].to(model.device), rng, config)
        for b, target in enumerate(targets)
    ]
    return torch.stack(losses).mean()


def train(
    config: TrainConfig,
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample],
    resume: Path | None = None,
) -> TrainResult:
    """Fine-tune LoRA + CBAM (+ decoder); validate every `val_every` steps; keep the best."""
    if not train_samples or not val_samples:
        raise TrainingError("training needs at least one training and one validation slice")
    _seed_everything(config.seed)
    device = resolve_device(config.device)
    sam_config = SamConfig(
        config.model_type,
        lora_rank=config.lora_rank,
        lora_alpha=2 * config.lora_rank,  # keeps LoRA's scale alpha/r at 2 for every rank
        lora_targets=config.lora_targets,
        use_cbam=config.use_cbam,
        train_decoder=config.train_decoder,
    )
    model = build_spinalsam(sam_config, checkpoint=config.checkpoint).to(device).train()
    counts = model.parameter_counts()
    log.info(
        "trainable parameters: %s of %s (LoRA %s, CBAM %s, decoder %s) on %s",
        f"{counts['trainable']:,}",
        f"{counts['total']:,}",
        f"{counts['lora']:,}",
        f"{counts['cbam']:,}",
        f"{counts['decoder']:,}",
        device,
    )
    optimizer = AdamW(model.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = config.warmup_steps if config.warmup_steps is not None else config.steps // 20
    scheduler = LambdaLR(optimizer, partial(_warmup_cosine, warmup=warmup, total=config.steps))
    rng = np.random.default_rng(config.seed)
    start, best = 0, -math.inf
    if resume is not None:
        start, best = load_checkpoint(resume, model, optimizer, scheduler, rng)
        log.info("resumed from %s at step %d", resume, start)
    items = _trainable_items(model, train_samples)
    history: list[dict[str, float | int | None]] = []
    if start == 0:  # the untrained model's score: the baseline the curve starts from
        history.append({"step": 0, "loss": None, "lr": None, **validate(model, val_samples)})
        best = _keep_if_best(model, history[-1], best, config)
        _log_record(config.log_jsonl, history[-1])
    bar = tqdm(
        range(start + 1, config.steps + 1),
        initial=start,
        total=config.steps,
        desc="training",
        disable=not config.progress,
    )
    for step in bar:
        started = time.perf_counter()
        record = _train_step(model, optimizer, scheduler, train_samples, items, rng, config, step)
        record["seconds"] = time.perf_counter() - started  # the step alone, not validation
        if step % config.val_every == 0 or step == config.steps:
            record.update(validate(model, val_samples))
            best = _keep_if_best(model, record, best, config)
        if step % config.save_every == 0 or step == config.steps:
            save_checkpoint(
                config.out / CHECKPOINT_DIR, model, optimizer, scheduler, rng, step, best
            )
        bar.set_postfix(loss=f"{record['loss']:.4f}", best_dice=f"{best:.3f}")
        _log_record(config.log_jsonl, record)
        history.append(record)
    adapter = config.out / ADAPTER_DIR
    return TrainResult(history, best, adapter if adapter.is_dir() else None, model)


def _keep_if_best(
    model: SpinalSAM, record: dict[str, float | int | None], best: float, config: TrainConfig
) -> float:
    """Save the adapter when this validation beats every earlier one; returns the best Dice."""
    score = float(record["val_dice"])  # type: ignore[arg-type]
    if score <= best:
        return best
    save_adapter(model, config.out / ADAPTER_DIR, config.checkpoint_spec, model.key_check.sha256)
    return score


def _train_step(
    model: SpinalSAM,
    optimizer: AdamW,
    scheduler: LambdaLR,
    samples: Sequence[Sample],
    items: Sequence[tuple[int, int]],
    rng: np.random.Generator,
    config: TrainConfig,
    step: int,
) -> dict[str, float | int | None]:
    """One optimiser update over `accum` micro-batches; returns the step's log record."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for _ in range(config.accum):
        loss = _batch_loss(model, samples, items, rng, config) / config.accum
        loss.backward()
        total += loss.item()
    if not math.isfinite(total):
        raise TrainingError(f"the loss became {total} at step {step}; lower --lr and resume")
    torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), config.grad_clip)
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    return {"step": step, "loss": total, "lr": lr, "val_dice": None}


def _log_record(path: Path | None, record: dict[str, float | int | None]) -> None:
    """Append one JSON line per step, so a run's curve can be plotted while it trains."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
