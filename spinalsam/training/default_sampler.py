"""Random training crops for the learned default, from the packs default_data.py writes.

numpy/scipy only, so crops can be made on a training machine without SimpleITK or the app's
dependencies. Every crop goes through crops.encode, the function inference uses, with the
variation users bring: boxes loose or tight (jittered edges), clicks off-centre (up to 35 % of
the object's inner radius) or anywhere inside, negative clicks, a prior mask from the next slice
(propagation) or a distorted copy (corrections), HU under many windows and 8-bit renders,
gamma, noise and blur (3 mm slices look blurred at crop scale), rotations, flips and 90° turns
(a flipped slice must read alike), crops from 1.15× to 3× the object (a click does not say how
large the object is), and volumes cut tightly next to the object.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from spinalsam.planes import n_slices, slice_spacing, take_slice
from spinalsam.segmenters.crops import HU_WINDOW, Frame, encode, gray_of, sample

__all__ = [
    "HU_OFFSET",
    "HU_STEP",
    "Entry",
    "Item",
    "dequantise",
    "entries",
    "load_pack",
    "make_sample",
    "slice_of",
]

HU_OFFSET, HU_STEP = -300.0, 7.0
MIN_AREA_PX = 50


@dataclass
class Item:
    """One volume (or stack of independent 2-D slices) with its label map."""

    volume: np.ndarray  # (Z, Y, X) uint8: quantised HU when is_hu, else 0..255 render
    labels: np.ndarray  # (Z, Y, X) uint8 label ids (0 = background)
    spacing: tuple[float, float, float] | None  # (x, y, z) mm
    is_hu: bool
    planes: tuple[str, ...]
    stacked: bool  # slices are independent images (no neighbour slices)


@dataclass(frozen=True)
class Entry:
    """One object on one slice: the unit that is sampled and evaluated."""

    item: int
    plane: str
    index: int
    label: int


def dequantise(volume: np.ndarray) -> np.ndarray:
    """HU back from the 8-bit storage (7 HU steps)."""
    return volume.astype(np.float32) * HU_STEP + HU_OFFSET


def load_pack(path: Path) -> list[Item]:
    """The items of one pack written by default_data.build_packs."""
    with np.load(path) as pack:
        items = []
        for i in range(sum(1 for k in pack.files if k.startswith("meta_"))):
            meta = json.loads(str(pack[f"meta_{i}"]))
            spacing = tuple(meta["spacing"]) if meta["spacing"] else None
            items.append(
                Item(
                    pack[f"volume_{i}"],
                    pack[f"labels_{i}"],
                    spacing,  # type: ignore[arg-type]
                    meta["is_hu"],
                    tuple(meta["planes"]),
                    meta["stacked"],
                )
            )
    return items


def entries(items: list[Item]) -> list[Entry]:
    """Every object of ≥ 50 px on every slice of every allowed plane."""
    found = []
    for i, item in enumerate(items):
        for plane in item.planes:
            for index in range(n_slices(item.labels.shape, plane)):
                counts = np.bincount(take_slice(item.labels, plane, index).ravel())
                for label in np.flatnonzero(counts >= MIN_AREA_PX):
                    if label:
                        found.append(Entry(i, plane, index, int(label)))
    return found


def slice_of(
    item: Item, plane: str, index: int
) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
    """(pixels as the app holds them: HU or 0..255, labels, (x, y) spacing) of one slice."""
    raw = take_slice(item.volume, plane, index)  # type: ignore[arg-type]
    pixels = dequantise(raw) if item.is_hu else raw.astype(np.float32)
    spacing = slice_spacing(item.spacing, plane) if item.spacing else None  # type: ignore[arg-type]
    return pixels, np.ascontiguousarray(take_slice(item.labels, plane, index)), spacing  # type: ignore[arg-type]


def _bbox(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=float)


def _gray(pixels: np.ndarray, is_hu: bool, rng: np.random.Generator) -> np.ndarray:
    if is_hu:
        if rng.random() < 0.5:
            level, width = (
                HU_WINDOW[0] + rng.uniform(-60, 60),
                HU_WINDOW[1] * rng.uniform(0.85, 1.15),
            )
        else:
            level, width = rng.uniform(150, 600), rng.uniform(700, 2500)
        gray = gray_of(pixels, True, (level, width))
    else:
        gray = pixels
    return gray


def _cut_tight(
    gray: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The slice (and object) ending at a line just past the object, as a tightly cut volume."""
    x0, y0, x1, y1 = _bbox(target).astype(int)
    side = int(rng.integers(4))
    extent = (x1 - x0 + 1) if side < 2 else (y1 - y0 + 1)
    gap = int(rng.uniform(-0.05, 0.15) * extent)
    keep = np.ones_like(target)
    if side == 0:
        keep[:, max(x0 + 1, x1 + 1 + gap) :] = False
    elif side == 1:
        keep[:, : min(x1, max(0, x0 - gap))] = False
    elif side == 2:
        keep[max(y0 + 1, y1 + 1 + gap) :] = False
    else:
        keep[: min(y1, max(0, y0 - gap))] = False
    return np.where(keep, gray, 0.0), target & keep


def _jittered_box(
    target: np.ndarray, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    x0, y0, x1, y1 = _bbox(target)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    out = rng.uniform(-0.08, 0.22, 4) * np.array([w, h, w, h])
    if rng.random() < 0.5:
        out += rng.integers(0, 6, 4)
    box = np.array([x0 - out[0], y0 - out[1], x1 + out[2], y1 + out[3]])
    box[[0, 2]] = np.clip(box[[0, 2]], 0, shape[1] - 1)
    box[[1, 3]] = np.clip(box[[1, 3]], 0, shape[0] - 1)
    return np.round(box)


def _clicks(
    target: np.ndarray, gray: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A click near the deepest pixel or anywhere well inside; sometimes more, and negatives."""
    x0, y0, x1, y1 = _bbox(target).astype(int)
    depth = np.zeros(target.shape, dtype=np.float32)  # only the object's box is measured
    depth[y0 : y1 + 1, x0 : x1 + 1] = ndi.distance_transform_edt(
        np.pad(target[y0 : y1 + 1, x0 : x1 + 1], 1)
    )[1:-1, 1:-1]
    radius = float(depth.max())
    if rng.random() < 0.6:
        y, x = np.unravel_index(np.argmax(depth), depth.shape)
        angle, r = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.35) * radius
        point = (x + r * math.cos(angle), y + r * math.sin(angle))
    else:
        ys, xs = np.nonzero(depth >= 0.3 * radius)
        k = rng.integers(len(ys))
        point = (xs[k], ys[k])
    positive = [point]
    if rng.random() < 0.15:
        ys, xs = np.nonzero(depth >= 2)
        if len(ys):
            k = rng.integers(len(ys), size=rng.integers(1, 3))
            positive += list(zip(xs[k], ys[k], strict=True))
    negative = []
    if rng.random() < 0.25:  # on bright pixels (neighbouring bone) around the object
        pad = max(x1 - x0, y1 - y0) // 2
        near = (slice(max(0, y0 - pad), y1 + pad + 1), slice(max(0, x0 - pad), x1 + pad + 1))
        candidates = ~ndi.binary_dilation(target[near], iterations=2)
        bright = candidates & (gray[near] > np.percentile(gray[near], 70))
        ys, xs = np.nonzero(bright if bright.any() else candidates)
        if len(ys):
            k = rng.integers(len(ys), size=rng.integers(1, 3))
            negative = list(zip(xs[k] + near[1].start, ys[k] + near[0].start, strict=True))
    return np.array(positive, dtype=float), np.array(negative, dtype=float).reshape(-1, 2)


def _prior(item: Item, entry: Entry, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same object on a neighbouring slice (propagation) or a distorted copy (a correction)."""
    if not item.stacked and rng.random() < 0.7:
        count = n_slices(item.labels.shape, entry.plane)  # type: ignore[arg-type]
        k = entry.index + int(rng.choice([-2, -1, 1, 2]))
        if 0 <= k < count:
            prior = take_slice(item.labels, entry.plane, k) == entry.label  # type: ignore[arg-type]
            if prior.sum() >= 10:
                return prior
    prior = target
    steps = int(rng.integers(1, 4))
    prior = (
        ndi.binary_dilation(prior, iterations=steps)
        if rng.random() < 0.5
        else ndi.binary_erosion(prior, iterations=steps)
    )
    prior = np.roll(prior, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
    return prior if prior.sum() >= 10 else target


def _frame(
    center: tuple[float, float],
    side_mm: float,
    spacing: tuple[float, float] | None,
    rng: np.random.Generator,
) -> Frame:
    """A square crop in mm, turned by a small angle, maybe a quarter turn, maybe flipped."""
    sx, sy = spacing or (1.0, 1.0)
    angle = rng.uniform(-0.18, 0.18) if rng.random() < 0.5 else 0.0
    angle += (math.pi / 2) * int(rng.integers(4)) if rng.random() < 0.25 else 0.0
    c, s = math.cos(angle), math.sin(angle)
    flips = np.diag(np.where(rng.random(2) < 0.5, -1.0, 1.0))
    matrix = np.diag([1 / sx, 1 / sy]) @ np.array([[c, -s], [s, c]]) @ flips * (side_mm / 2)
    return Frame((float(center[0]), float(center[1])), matrix)


def make_sample(
    items: list[Item],
    entry: Entry,
    rng: np.random.Generator,
    size: int = 96,
    box_context: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """One random (inputs uint8 (CHANNELS, size, size), target uint8 (size, size)) pair."""
    item = items[entry.item]
    pixels, labels, spacing = slice_of(item, entry.plane, entry.index)
    target = labels == entry.label
    gray = _gray(pixels, item.is_hu, rng)
    if not item.stacked and rng.random() < 0.15:
        gray, target = _cut_tight(gray, target, rng)
    sx, sy = spacing or (1.0, 1.0)
    mode = rng.random()
    prompt: dict[str, object] = {}
    positive, negative = _clicks(target, gray, rng)
    if mode < 0.42:  # a box
        prompt["box"] = _jittered_box(target, target.shape, rng)
        if rng.random() < 0.15:
            prompt["negative"] = negative
    elif mode < 0.50:  # a box and clicks
        prompt.update(
            box=_jittered_box(target, target.shape, rng), positive=positive, negative=negative
        )
    elif mode < 0.70:  # a prior and its box (propagation, or the second look at a click's answer)
        prior = _prior(item, entry, target, rng)
        box = _bbox(prior) + np.array([-1, -1, 1, 1]) * rng.integers(0, 4)
        prompt.update(box=box, prior=prior)
        if rng.random() < 0.5:
            prompt["positive"] = positive
    else:  # clicks alone
        prompt.update(positive=positive, negative=negative)
    if "box" in prompt:
        x0, y0, x1, y1 = prompt["box"]  # type: ignore[misc]
        side = max((x1 - x0 + 1) * sx, (y1 - y0 + 1) * sy) * box_context * rng.uniform(0.9, 1.12)
        center = ((x0 + x1) / 2, (y0 + y1) / 2)
    else:
        x0, y0, x1, y1 = _bbox(target)
        side = max((x1 - x0 + 1) * sx, (y1 - y0 + 1) * sy) * rng.uniform(1.15, 3.0)
        shift = rng.uniform(-0.3, 0.3, 2) * side / 2 / np.array([sx, sy])
        center = tuple(positive[0] + shift)
    frame = _frame(center, side, spacing, rng)
    inputs = encode(gray, frame, size, **prompt)  # type: ignore[arg-type]
    if rng.random() < 0.4:
        inputs[0] **= rng.uniform(0.7, 1.5)
    if rng.random() < 0.3:
        inputs[0] = ndi.gaussian_filter(inputs[0], rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:
        inputs[0] += rng.normal(0, rng.uniform(0, 0.03), inputs[0].shape).astype(np.float32)
    xs, ys = frame.grid(size)
    goal = sample(target.astype(np.float32), xs, ys, frame.step(size)) > 0.5
    return (np.clip(inputs, 0, 1) * 255).round().astype(np.uint8), goal.astype(np.uint8)
