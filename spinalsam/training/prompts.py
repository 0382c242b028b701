"""Simulated user prompts for one ground-truth object, as SAM was trained (Kirillov et al. 2023).

Users never click the exact centre or draw the tight box, so training prompts are noisy: boxes
are jittered in proportion to the object's size, positive points fall anywhere inside, negative
points fall just outside (where a user would correct a leak), and correction clicks are drawn
from the error region of the previous prediction. All coordinates are (x, y) image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "PromptConfig",
    "SimulatedPrompt",
    "correction_click",
    "jittered_box",
    "sample_points",
    "simulate_prompt",
]


@dataclass(frozen=True)
class PromptConfig:
    """How noisy and how rich the simulated prompts are."""

    box_probability: float = 0.5  # else the object is prompted with points only
    box_jitter: float = 0.1  # std of each box edge shift, as a fraction of the box side
    max_positive: int = 3
    max_negative: int = 2
    negative_margin: float = 0.25  # negatives lie within this fraction of the object's size


@dataclass(frozen=True)
class SimulatedPrompt:
    """Prompts for one object: points (N, 2) with labels 1/0, and an optional (4,) box."""

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None


def jittered_box(mask: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """The tight box of `mask` with each edge moved by N(0, jitter × side), kept in the image."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    width, height = x1 - x0 + 1, y1 - y0 + 1
    noise = rng.normal(0.0, jitter, size=4) * np.array([width, height, width, height])
    box = np.array([x0, y0, x1, y1], dtype=np.float64) + noise
    h, w = mask.shape
    box[[0, 2]] = np.clip(box[[0, 2]], 0, w - 1)
    box[[1, 3]] = np.clip(box[[1, 3]], 0, h - 1)
    # Heavy noise could invert a box; keep the corners ordered so it stays a box.
    return np.array([min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]),
                     max(box[1], box[3])])  # fmt: skip


def _pick(region: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct (x, y) pixels drawn uniformly from a boolean region (fewer if small)."""
    ys, xs = np.nonzero(region)
    chosen = rng.choice(len(xs), size=min(count, len(xs)), replace=False)
    return np.stack([xs[chosen], ys[chosen]], axis=1).astype(np.float64)


def sample_points(
    mask: np.ndarray,
    rng: np.random.Generator,
    n_positive: int,
    n_negative: int,
    margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Positives inside the object; negatives in a ring around it `margin` × its size wide."""
    size = np.sqrt(mask.sum())
    ring = ~mask & (ndimage.distance_transform_edt(~mask) <= max(2.0, margin * size))
    positives = _pick(mask, n_positive, rng)
    negatives = _pick(ring, n_negative, rng) if n_negative else np.zeros((0, 2))
    points = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))]).astype(np.int64)
    return points, labels


def simulate_prompt(
    mask: np.ndarray, rng: np.random.Generator, config: PromptConfig
) -> SimulatedPrompt:
    """A jittered box or a few positive/negative points for one object mask."""
    if rng.random() < config.box_probability:
        return SimulatedPrompt(
            np.zeros((0, 2)), np.zeros(0, np.int64), jittered_box(mask, rng, config.box_jitter)
        )
    n_positive = int(rng.integers(1, config.max_positive + 1))
    n_negative = int(rng.integers(0, config.max_negative + 1))
    points, labels = sample_points(mask, rng, n_positive, n_negative, config.negative_margin)
    return SimulatedPrompt(points, labels, None)


def correction_click(
    prediction: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, int] | None:
    """A click drawn uniformly from the error region, labelled as a user would label it.

    A missed object pixel gets a positive click, a leaked background pixel a negative one.
    Returns None when the prediction is already perfect.
    """
    errors = prediction != target
    if not errors.any():
        return None
    point = _pick(errors, 1, rng)[0]
    return point, int(target[int(point[1]), int(point[0])])
