"""Robustness modes: prompts as real users give them (jitter) and mirrored slices (flip).

A protocol prompt is exact; a user's is not. `--jitter` moves every box corner by up to ±5 px,
but no more than ±10 % of the box's side (a 5 px error on a 15 px box at 3 mm would be a third
of the object), and moves the point 15–30 % of the object's inner radius (its deepest pixel's
distance to the boundary) in a random direction, so it always stays inside the object.
Random numbers come from the run's seed and the target's name, never from visiting order: every
backend gets the same jittered prompts, and a rerun reproduces them.

`--flip` mirrors image, mask and prompts left-right and up-down. Anatomy does not care which way
a slice is stored or shown, so a segmenter's Dice should not either; the prompts are mirrored
exactly (not re-derived), so ties in the deepest pixel cannot change the question asked.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

from spinalsam.evaluation.protocol import Target
from spinalsam.segmenters.base import SliceImage

__all__ = [
    "BOX_JITTER_FRACTION",
    "BOX_JITTER_PX",
    "FLIPS",
    "POINT_OFFSET_RANGE",
    "Flip",
    "flip_box",
    "flip_image",
    "flip_mask",
    "flip_point",
    "flip_target",
    "jitter_box",
    "jitter_point",
    "target_rng",
]

BOX_JITTER_PX = 5
BOX_JITTER_FRACTION = 0.10
POINT_OFFSET_RANGE = (0.15, 0.30)  # × the object's inner radius

Flip = Literal["horizontal", "vertical"]
FLIPS: tuple[Flip, ...] = ("horizontal", "vertical")


def target_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the run's seed and a stable name of the target."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def jitter_box(box: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Every corner coordinate moved by a uniform integer in ±min(5 px, 10 % of that side).

    Clipped to the image; the box keeps at least one pixel of extent per axis.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = shape
    reach = [
        min(BOX_JITTER_PX, round(BOX_JITTER_FRACTION * (side + 1))) for side in (x1 - x0, y1 - y0)
    ]
    dx0, dx1 = rng.integers(-reach[0], reach[0] + 1, size=2)
    dy0, dy1 = rng.integers(-reach[1], reach[1] + 1, size=2)
    nx0, nx1 = np.clip([x0 + dx0, x1 + dx1], 0, w - 1)
    ny0, ny1 = np.clip([y0 + dy0, y1 + dy1], 0, h - 1)
    if nx1 <= nx0:
        nx0, nx1 = x0, x1
    if ny1 <= ny0:
        ny0, ny1 = y0, y1
    return np.array([nx0, ny0, nx1, ny1])


def jitter_point(target: Target, rng: np.random.Generator) -> np.ndarray:
    """The deepest point moved 15–30 % of the inner radius in a random direction.

    The deepest pixel is `inner_radius` from the boundary, so an offset under that stays inside.
    """
    low, high = POINT_OFFSET_RANGE
    distance = rng.uniform(low, high) * target.inner_radius
    angle = rng.uniform(0.0, 2.0 * np.pi)
    x, y = target.point + distance * np.array([np.cos(angle), np.sin(angle)])
    h, w = target.mask.shape
    return np.array([int(np.clip(round(x), 0, w - 1)), int(np.clip(round(y), 0, h - 1))])


def flip_mask(array: np.ndarray, flip: Flip) -> np.ndarray:
    """Mirror a 2-D array left-right ("horizontal") or up-down ("vertical")."""
    return np.ascontiguousarray(array[:, ::-1] if flip == "horizontal" else array[::-1])


def flip_image(image: SliceImage, flip: Flip) -> SliceImage:
    """The slice mirrored; spacing is unchanged by a mirror."""
    return SliceImage(
        pixels=flip_mask(image.pixels, flip),
        display=flip_mask(image.display, flip),
        is_hu=image.is_hu,
        spacing=image.spacing,
    )


def flip_box(box: np.ndarray, shape: tuple[int, int], flip: Flip) -> np.ndarray:
    """The box of the mirrored object: the mirrored corners, re-sorted."""
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = shape
    if flip == "horizontal":
        return np.array([w - 1 - x1, y0, w - 1 - x0, y1])
    return np.array([x0, h - 1 - y1, x1, h - 1 - y0])


def flip_point(point: np.ndarray, shape: tuple[int, int], flip: Flip) -> np.ndarray:
    x, y = (int(v) for v in point)
    h, w = shape
    return np.array([w - 1 - x, y]) if flip == "horizontal" else np.array([x, h - 1 - y])


def flip_target(target: Target, flip: Flip) -> Target:
    """The same object in the mirrored slice: mask, box and point mirrored exactly."""
    shape = target.mask.shape
    return Target(
        key=f"{target.key}/{flip}",
        mask=flip_mask(target.mask, flip),
        box=flip_box(target.box, shape, flip),
        point=flip_point(target.point, shape, flip),
        inner_radius=target.inner_radius,
    )
