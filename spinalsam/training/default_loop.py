"""Training and leave-one-source-out validation of the learned default (torch; training only).

`generate` draws a fixed, seeded set of random crops per source (in parallel processes; each
chunk has its own seed, so the set does not depend on the number of processes). `fit` trains a
U-Net on the crops of some sources with Dice + BCE. `validate` scores a network on a source's
slices through the same `predict_mask` the app runs, with the evaluation protocol's prompts
(box = tight box + 5 px; point = the deepest pixel), jittered prompts (box edges ±10 %, clicks
15–30 % of the inner radius off the deepest pixel) and flipped slices.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from spinalsam.metrics import dice
from spinalsam.segmenters.base import Prompt, SliceImage
from spinalsam.segmenters.crops import CHANNELS
from spinalsam.segmenters.learned import LearnedConfig, predict_mask
from spinalsam.training.default_model import UNet
from spinalsam.training.default_sampler import Entry, Item, entries, make_sample, slice_of
from spinalsam.windowing import render

__all__ = [
    "KINDS",
    "FitConfig",
    "fit",
    "generate",
    "learned",
    "resize_crops",
    "torch_runner",
    "validate",
]

KINDS = ("box", "box_jitter", "box_flip", "point", "point_jitter", "point_flip")
BOX_MARGIN_PX = 5  # the 2-D protocol's box margin (shared/data/README.md)
CHUNK = 256
Segment = Callable[[SliceImage, Prompt], np.ndarray]


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings (stored with the weights)."""

    widths: tuple[int, ...] = (16, 32, 64, 128)
    steps: int = 6000
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    seconds: float = 0.0  # > 0: train for this long (steps ignored; the count done is logged)


# Set in the parent right before the worker pool forks; workers only read it.
_FORK_ITEMS: dict[str, tuple[list[Item], list[Entry]]] = {}


def _chunk(task: tuple[str, int, int, int, int]) -> tuple[str, np.ndarray, np.ndarray]:
    source, source_id, chunk, count, seed = task
    items, found = _FORK_ITEMS[source]
    rng = np.random.default_rng([seed, source_id, chunk])
    size = LearnedConfig().size
    xs = np.empty((count, CHANNELS, size, size), dtype=np.uint8)
    ys = np.empty((count, size, size), dtype=np.uint8)
    for k in range(count):
        xs[k], ys[k] = make_sample(items, found[rng.integers(len(found))], rng, size)
    return source, xs, ys


def generate(
    packs: dict[str, list[Item]], total: int, seed: int, workers: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`total` crops shared among sources ∝ √(objects): large sources lead, small ones count."""
    found = {name: entries(items) for name, items in packs.items()}
    weights = {name: math.sqrt(len(e)) for name, e in found.items() if e}
    tasks = []
    for source_id, name in enumerate(sorted(weights)):
        count = max(CHUNK, int(total * weights[name] / sum(weights.values())))
        for chunk in range(0, count, CHUNK):
            tasks.append((name, source_id, chunk // CHUNK, min(CHUNK, count - chunk), seed))
    _FORK_ITEMS.clear()
    _FORK_ITEMS.update({name: (packs[name], found[name]) for name in weights})
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_chunk, tasks, chunksize=1)
    else:
        parts = [_chunk(task) for task in tasks]
    _FORK_ITEMS.clear()
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in weights:
        mine = [p for p in parts if p[0] == name]
        out[name] = (np.concatenate([p[1] for p in mine]), np.concatenate([p[2] for p in mine]))
    return out


def resize_crops(xs: np.ndarray, ys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored crops at another network size (area averaging; the target re-thresholded)."""
    if xs.shape[-1] == size:
        return xs, ys
    out_x = np.empty((len(xs), xs.shape[1], size, size), dtype=np.uint8)
    out_y = np.empty((len(ys), size, size), dtype=np.uint8)
    for i in range(0, len(xs), 512):
        x = F.interpolate(torch.from_numpy(xs[i : i + 512]).float(), size=size, mode="area")
        y = F.interpolate(torch.from_numpy(ys[i : i + 512, None]).float(), size=size, mode="area")
        out_x[i : i + 512] = x.round().clamp(0, 255).byte().numpy()
        out_y[i : i + 512] = (y[:, 0] > 0.5).byte().numpy()
    return out_x, out_y


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    soft_dice = (2 * inter + 1) / (prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + (1 - soft_dice).mean()


def fit(
    xs: np.ndarray,
    ys: np.ndarray,
    config: FitConfig,
    device: str,
    log: Callable[[str], None] = print,
    init: Path | None = None,
) -> UNet:
    """Train a U-Net on uint8 crops; the crops live on `device` as uint8 (4.6 kB each)."""
    torch.manual_seed(config.seed)
    torch.backends.cudnn.benchmark = device.startswith("cuda")
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    model = UNet(config.widths)
    if init is not None:  # continue an earlier run (its widths must match)
        model.load_state_dict(torch.load(init, map_location="cpu")["state"])
    model = model.to(device).to(memory_format=torch.channels_last)
    x_all = torch.from_numpy(xs).to(device)
    y_all = torch.from_numpy(ys).to(device)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    amp = device.startswith("cuda")
    started = time.perf_counter()
    model.train()
    step = 0
    while True:
        elapsed = time.perf_counter() - started
        progress = elapsed / config.seconds if config.seconds else step / config.steps
        if progress >= 1.0:
            break
        # 5 % warm-up, then cosine decay: by steps, or by the wall clock with --seconds
        scale = progress / 0.05 if progress < 0.05 else 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimiser.param_groups:
            group["lr"] = config.lr * max(scale, 0.01)
        index = torch.randint(0, len(x_all), (config.batch,), generator=generator).to(device)
        x = x_all[index].float().div_(255)
        y = y_all[index].float().unsqueeze(1)
        turns = int(torch.randint(0, 4, (1,), generator=generator))  # 8× the stored crops
        flip = bool(torch.randint(0, 2, (1,), generator=generator))
        x, y = torch.rot90(x, turns, (2, 3)), torch.rot90(y, turns, (2, 3))
        if flip:
            x, y = x.flip(3), y.flip(3)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = _loss(logits.float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 100 == 0:
            log(f"step {step} loss {loss.item():.4f} {time.perf_counter() - started:.0f}s")
        step += 1
    model.steps_done = step
    log(f"trained {step} steps in {time.perf_counter() - started:.0f}s")
    model.seconds_per_step = (time.perf_counter() - started) / max(1, step)
    return model.eval()


def torch_runner(model: UNet) -> Callable[[np.ndarray], np.ndarray]:
    """`predict_mask`'s runner over a torch model on the CPU (what the ONNX file computes)."""
    model = model.cpu().eval()

    def run(inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))).numpy()

    return run


def _protocol_box(target: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(target)
    h, w = target.shape
    m = BOX_MARGIN_PX
    return np.array(
        [
            max(0, xs.min() - m),
            max(0, ys.min() - m),
            min(w - 1, xs.max() + m),
            min(h - 1, ys.max() + m),
        ]
    )


def _deepest(target: np.ndarray) -> tuple[np.ndarray, float]:
    depth = ndi.distance_transform_edt(np.pad(target, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    return np.array([x, y], dtype=float), float(depth.max())


def _prompt(kind: str, target: np.ndarray, rng: np.random.Generator) -> Prompt:
    """The evaluation prompt of one kind (flips use the clean prompt on the flipped slice)."""
    if kind.startswith("box"):
        box = _protocol_box(target).astype(float)
        if kind == "box_jitter":
            w, h = box[2] - box[0], box[3] - box[1]
            box = box + np.round(rng.uniform(-0.1, 0.1, 4) * np.array([w, h, w, h]))
        return Prompt(box=box.astype(np.int64))
    point, radius = _deepest(target)
    if kind == "point_jitter":
        angle = rng.uniform(0, 2 * math.pi)
        for fraction in (rng.uniform(0.15, 0.3), 0.15, 0.0):
            moved = np.round(
                point + fraction * radius * np.array([math.cos(angle), math.sin(angle)])
            )
            if target[int(moved[1]), int(moved[0])]:
                point = moved
                break
    return Prompt(points=point[None].astype(np.int64), labels=np.ones(1, dtype=np.int64))


def _flipped(image: SliceImage, target: np.ndarray, axis: int) -> tuple[SliceImage, np.ndarray]:
    flip = (lambda a: a[::-1]) if axis == 0 else (lambda a: a[:, ::-1])
    pixels = np.ascontiguousarray(flip(image.pixels))
    return (
        SliceImage(pixels, render(pixels, image.is_hu), image.is_hu, image.spacing),
        np.ascontiguousarray(flip(target)),
    )


def learned(
    run: Callable[[np.ndarray], np.ndarray], config: LearnedConfig | None = None
) -> Segment:
    """`validate`'s segment function for a network runner."""
    config = config or LearnedConfig()
    return lambda image, prompt: predict_mask(run, image, prompt, config)


def validate(
    segment: Segment,
    items: list[Item],
    per_plane: int,
    seed: int,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, dict[str, float]]:
    """Mean per-object Dice by plane and prompt kind on up to `per_plane` objects per plane.

    `segment(image, prompt)` is any backend (the learned runner via `learned`, or a Segmenter's
    set_image + predict), so every backend is scored on the same objects and prompts.
    """
    rng = np.random.default_rng(seed)
    found = entries(items)
    scores: dict[str, dict[str, list[float]]] = {}
    for plane in sorted({e.plane for e in found}):
        mine = [e for e in found if e.plane == plane]
        pick = rng.choice(len(mine), size=min(per_plane, len(mine)), replace=False)
        for k in sorted(pick):
            entry = mine[k]
            item = items[entry.item]
            pixels, labels, spacing = slice_of(item, entry.plane, entry.index)
            image = SliceImage(pixels, render(pixels, item.is_hu), item.is_hu, spacing)
            target = labels == entry.label
            for kind in kinds:
                if kind.endswith("flip"):
                    view, goal = _flipped(image, target, axis=k % 2)
                else:
                    view, goal = image, target
                mask = segment(view, _prompt(kind, goal, rng))
                scores.setdefault(plane, {}).setdefault(kind, []).append(dice(mask, goal))
    return {
        plane: {kind: float(np.mean(v)) for kind, v in by_kind.items()}
        | {"n": len(by_kind[kinds[0]])}
        for plane, by_kind in scores.items()
    }
