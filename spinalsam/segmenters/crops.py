"""The learned segmenter's view of a slice: a square crop around the prompt, resampled.

The network always sees a fixed-size crop (e.g. 96×96) that is square in millimetres when the
pixel spacing is known, so the same vertebra looks the same at 0.25 mm and at 3 mm, on isotropic
axial slices and on coronal/sagittal slices with 2.5 mm between rows. A crop is an affine
`Frame`: crop coordinates in [-1, 1]² map to slice pixels through `center + matrix @ (a, b)`.
Inference uses axis-aligned frames; training rotates and flips them, which is why the mapping is
a full 2×2 matrix. Everything here is numpy/scipy so that inference never imports torch.

Input channels (all in 0..1): 0 intensity (8-bit render / 255), 1 box (inside = 1),
2 positive clicks, 3 negative clicks (Gaussian blobs), 4 prior mask (propagation / corrections).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "CHANNELS",
    "Frame",
    "box_frame",
    "encode",
    "gray_of",
    "paste",
    "point_frame",
    "sample",
]

CHANNELS = 5
CLICK_SIGMA = 2.5  # crop pixels: a click is a small blob, so a few pixels off still reads alike
# The bone-friendly window every HU slice is rendered with for the network (the app's "spine"
# preset), whatever window the user looks through: a soft-tissue display would saturate bone.
HU_WINDOW = (300.0, 1500.0)


@dataclass(frozen=True)
class Frame:
    """Crop coordinates (a, b) ∈ [-1, 1]² → slice pixel (x, y) = center + matrix @ (a, b)."""

    center: tuple[float, float]  # (x, y) slice pixels
    matrix: np.ndarray  # (2, 2): columns are the crop's a and b axes in slice pixels (half sizes)

    def grid(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice (x, y) coordinates of every crop pixel centre, each (size, size)."""
        t = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
        b, a = np.meshgrid(t, t, indexing="ij")  # rows follow b, columns follow a
        m = self.matrix
        return (
            self.center[0] + m[0, 0] * a + m[0, 1] * b,
            self.center[1] + m[1, 0] * a + m[1, 1] * b,
        )

    def to_crop(self, points_xy: np.ndarray, size: int) -> np.ndarray:
        """Slice (x, y) points → crop (column, row) coordinates in pixels."""
        ab = np.linalg.solve(self.matrix, (np.asarray(points_xy, float) - self.center).T).T
        return (ab + 1.0) * size / 2.0 - 0.5

    def step(self, size: int) -> float:
        """Slice pixels per crop pixel along the coarser axis (how much the crop shrinks)."""
        return float(np.abs(self.matrix).sum(axis=0).max() * 2.0 / size)


def _spacing(spacing: tuple[float, float] | None) -> tuple[float, float]:
    return spacing if spacing is not None else (1.0, 1.0)


def box_frame(
    box: np.ndarray, spacing: tuple[float, float] | None, context: float, min_pixels: float = 0.0
) -> Frame:
    """A crop centred on the box, `context` × its longer side (in mm) across, and at least
    `min_pixels` slice pixels across (their geometric-mean size where rows and columns differ).

    The floor matters on coarse slices only: at 3 mm a vertebra's box is ~10 pixels, and a crop
    of 1.5 × that magnifies them ~6× for the network, which saw at most ~2× in training
    (docs/learned.md, "Box reads").
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = _spacing(spacing)
    side_mm = max((x1 - x0 + 1) * sx, (y1 - y0 + 1) * sy, 4.0 * max(sx, sy)) * context
    side_mm = max(side_mm, min_pixels * float(np.sqrt(sx * sy)))
    return point_frame(((x0 + x1) / 2, (y0 + y1) / 2), side_mm, spacing)


def point_frame(
    center: tuple[float, float], side_mm: float, spacing: tuple[float, float] | None
) -> Frame:
    """An axis-aligned crop `side_mm` across (pixels when there is no spacing)."""
    sx, sy = _spacing(spacing)
    half = side_mm / 2.0
    return Frame((float(center[0]), float(center[1])), np.diag([half / sx, half / sy]))


def gray_of(pixels: np.ndarray, is_hu: bool, window: tuple[float, float] = HU_WINDOW) -> np.ndarray:
    """The 0..255 float intensity the network reads: HU windowed, 8-bit renders as they are."""
    pixels = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0)
    if not is_hu:
        return np.clip(pixels, 0.0, 255.0)
    level, width = window
    return np.clip((pixels - (level - width / 2)) * (255.0 / width), 0.0, 255.0)


def sample(
    image: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    step: float = 1.0,
    cval: float = 0.0,
    order: int = 1,
) -> np.ndarray:
    """`image` at (xs, ys), outside = `cval`; low-pass first where the crop shrinks the slice.

    Only the region the grid covers is read (and blurred), so a crop of a 512² slice costs
    about as much as the crop itself.
    """
    h, w = image.shape
    pad = 2 + int(2 * step)
    x0, x1 = max(0, int(np.floor(xs.min())) - pad), min(w, int(np.ceil(xs.max())) + pad + 1)
    y0, y1 = max(0, int(np.floor(ys.min())) - pad), min(h, int(np.ceil(ys.max())) + pad + 1)
    if x0 >= x1 or y0 >= y1:
        return np.full(xs.shape, cval, dtype=np.float32)
    region = np.asarray(image[y0:y1, x0:x1], dtype=np.float32)
    if step > 1.5:  # anti-aliasing: about one crop pixel of blur
        region = ndi.gaussian_filter(region, 0.4 * step, mode="nearest")
    out = ndi.map_coordinates(
        region, [ys - y0, xs - x0], order=order, mode="constant", cval=cval, prefilter=False
    )
    return out.astype(np.float32)


def _clicks(frame: Frame, points: np.ndarray, size: int) -> np.ndarray:
    """Gaussian blobs at the clicks, in crop pixels (a click outside the crop adds nothing)."""
    out = np.zeros((size, size), dtype=np.float32)
    if len(points) == 0:
        return out
    uv = frame.to_crop(points, size)
    t = np.arange(size, dtype=np.float32)
    for u, v in uv:
        blob = np.exp(-((t[None, :] - u) ** 2 + (t[:, None] - v) ** 2) / (2 * CLICK_SIGMA**2))
        np.maximum(out, blob, out=out)
    return out


def encode(
    gray: np.ndarray,
    frame: Frame,
    size: int,
    box: np.ndarray | None = None,
    positive: np.ndarray | None = None,
    negative: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """The network input (CHANNELS, size, size) float32 for one prompt in one frame."""
    xs, ys = frame.grid(size)
    step = frame.step(size)
    channels = np.zeros((CHANNELS, size, size), dtype=np.float32)
    channels[0] = sample(gray, xs, ys, step) / 255.0
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        channels[1] = (xs >= x0 - 0.5) & (xs <= x1 + 0.5) & (ys >= y0 - 0.5) & (ys <= y1 + 0.5)
    if positive is not None:
        channels[2] = _clicks(frame, positive, size)
    if negative is not None:
        channels[3] = _clicks(frame, negative, size)
    if prior is not None and np.any(prior):
        channels[4] = np.clip(sample(prior.astype(np.float32), xs, ys, step), 0.0, 1.0)
    return channels


def paste(
    logits: np.ndarray, frame: Frame, shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Crop logits back onto the slice: (region logits, region slices); outside the crop = -50.

    Only for axis-aligned frames (inference); the region is the crop's footprint on the slice.
    """
    size = logits.shape[-1]
    h, w = shape
    (cx, cy), m = frame.center, frame.matrix
    hx, hy = abs(m[0, 0]), abs(m[1, 1])
    x0, x1 = max(0, int(np.floor(cx - hx))), min(w, int(np.ceil(cx + hx)) + 1)
    y0, y1 = max(0, int(np.floor(cy - hy))), min(h, int(np.ceil(cy + hy)) + 1)
    region = (slice(y0, y1), slice(x0, x1))
    if x0 >= x1 or y0 >= y1:
        return np.zeros((0, 0), dtype=np.float32), region
    u = ((np.arange(x0, x1) - cx) / m[0, 0] + 1.0) * size / 2.0 - 0.5
    v = ((np.arange(y0, y1) - cy) / m[1, 1] + 1.0) * size / 2.0 - 0.5
    vv, uu = np.meshgrid(v, u, indexing="ij")
    out = ndi.map_coordinates(
        np.asarray(logits, dtype=np.float32),
        [vv, uu],
        order=1,
        mode="constant",
        cval=-50.0,
        prefilter=False,
    )
    return out, region
