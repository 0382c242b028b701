"""Slice-to-slice propagation: one mask on one slice becomes a 3-D object.

Each neighbouring slice is segmented with a prompt made from the previous slice's mask — its
bounding box (enlarged, so the object may grow), one positive point deep inside each sizeable
piece (the distance-transform maximum, which is far from the edges and thus robust to small
shifts), and the mask itself as `mask_input` for backends that use a prior. Only the Segmenter
interface is used, so every backend propagates. Propagation stops on a side when the object
vanishes (area below a fraction of the start area) or changes abruptly (low IoU with the previous
slice, or an area jump), which is what happens at an intervertebral disc.

The caller applies the result as one undo step; nothing here touches the session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from spinalsam.metrics import iou
from spinalsam.planes import Plane, n_slices, put_slice, slice_spacing, take_slice
from spinalsam.segmenters.base import Prompt, Segmenter, SegmenterError, SliceImage
from spinalsam.windowing import Window, render

__all__ = [
    "PropagationError",
    "PropagationResult",
    "PropagationRules",
    "prompt_from_mask",
    "propagate",
]

Direction = Literal["both", "up", "down"]
_STEPS = {"both": (1, -1), "up": (1,), "down": (-1,)}


class PropagationError(ValueError):
    """Propagation cannot start (no mask, bad slice); the message is shown as is."""


@dataclass(frozen=True)
class PropagationRules:
    """What is kept and when a side stops. Defaults suit vertebrae on 1–3 mm slices (docs/3d.md).

    keep_overlapping: keep only the pieces of a new mask that overlap the previous slice's mask.
    An object continues from slice to slice; a piece that appears elsewhere in the box is a
    neighbour (the next vertebra's body showing up beside this one's posterior elements).
    """

    min_area_fraction: float = 0.15  # of the start mask's area: below it the object vanished
    min_pixels: int = 10
    min_iou: float = 0.3  # with the previous slice's mask: below it the shape jumped
    max_area_ratio: float = 2.2  # growth or shrinkage factor from one slice to the next
    keep_overlapping: bool = True


@dataclass
class PropagationResult:
    """Masks by slice index (the start slice included) and why each side stopped."""

    masks: dict[int, np.ndarray] = field(default_factory=dict)
    stopped_up: str = ""
    stopped_down: str = ""

    @property
    def n_slices(self) -> int:
        """Slices with a mask, the start slice included."""
        return len(self.masks)

    def to_volume(self, shape: tuple[int, int, int], plane: Plane) -> np.ndarray:
        """The masks as one boolean volume, ready to merge into a label map in one step."""
        volume = np.zeros(shape, dtype=bool)
        for index, mask in self.masks.items():
            put_slice(volume, plane, index, mask)
        return volume


def prompt_from_mask(mask: np.ndarray, margin_fraction: float = 0.1) -> Prompt:
    """A prompt that asks a backend for "this object again" on the next slice.

    The box is enlarged by `margin_fraction` of its size (at least 2 px) on each side; one
    positive point is put at the deepest pixel of every piece holding ≥ 10 % of the area.
    """
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise PropagationError("the mask to propagate is empty")
    h, w = mask.shape
    pad_x = max(2, round(margin_fraction * (xs.max() - xs.min() + 1)))
    pad_y = max(2, round(margin_fraction * (ys.max() - ys.min() + 1)))
    box = np.array(
        [
            max(0, xs.min() - pad_x),
            max(0, ys.min() - pad_y),
            min(w - 1, xs.max() + pad_x),
            min(h - 1, ys.max() + pad_y),
        ]
    )
    # Work on the bounding box with a background border only (far less work than the full
    # slice); the image edge then counts as background, keeping points off the edge too.
    y0, x0 = ys.min() - 1, xs.min() - 1
    crop = np.pad(mask[y0 + 1 : ys.max() + 1, x0 + 1 : xs.max() + 1], 1)
    pieces, count = ndi.label(crop)
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)[1:]
    depth = ndi.distance_transform_edt(crop)
    points = []
    for piece in np.flatnonzero(sizes >= 0.1 * sizes.sum()) + 1:
        y, x = np.unravel_index(np.argmax(np.where(pieces == piece, depth, 0)), crop.shape)
        points.append((x + x0, y + y0))
    return Prompt(
        points=np.array(points, dtype=np.int64),
        labels=np.ones(len(points), dtype=np.int64),
        box=box,
        mask_input=mask,
    )


def _overlapping_pieces(mask: np.ndarray, previous: np.ndarray) -> np.ndarray:
    pieces, _ = ndi.label(mask)
    touching = np.unique(pieces[mask & previous])
    return np.isin(pieces, touching[touching > 0])


def _stop_reason(
    mask: np.ndarray, previous: np.ndarray, start_area: int, rules: PropagationRules
) -> str | None:
    area, previous_area = int(mask.sum()), int(previous.sum())
    if area < max(rules.min_pixels, rules.min_area_fraction * start_area):
        return "object vanished"
    overlap, ratio = iou(mask, previous), area / previous_area
    jumped = max(ratio, 1 / ratio) > rules.max_area_ratio
    if overlap < rules.min_iou or jumped:
        return f"shape changed abruptly (IoU {overlap:.2f}, area ×{ratio:.2f})"
    return None


def propagate(
    volume: np.ndarray,
    is_hu: bool,
    spacing: tuple[float, float, float] | None,
    plane: Plane,
    start_index: int,
    start_mask: np.ndarray,
    segmenter: Segmenter,
    *,
    window: Window | None = None,
    direction: Direction = "both",
    max_slices: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    rules: PropagationRules = PropagationRules(),  # frozen, so the shared default is safe
) -> PropagationResult:
    """Propagate `start_mask` (on slice `start_index` of `plane`) through neighbouring slices.

    `spacing` is (x, y, z) mm as CTImage stores it; `window` is what `windowing.render` takes.
    "up" is increasing slice index (superior for axial slices of an LPS volume); `max_slices`
    limits each side; `on_progress(done, total)` is called after every slice;
    setting `cancel` stops both sides and keeps what was done so far.
    """
    if direction not in _STEPS:
        raise PropagationError(f"direction must be one of {', '.join(_STEPS)}, not {direction!r}")
    count = n_slices(volume.shape, plane)
    if not 0 <= start_index < count:
        raise PropagationError(f"slice {start_index} is outside the volume (0–{count - 1})")
    start_mask = np.asarray(start_mask, dtype=bool)
    expected = take_slice(volume, plane, start_index).shape
    if start_mask.shape != expected:
        raise PropagationError(f"the mask {start_mask.shape} does not fit the slice {expected}")
    start_area = int(start_mask.sum())
    if start_area == 0:
        raise PropagationError("segment the object on this slice first, then propagate")

    limit = count if max_slices is None else max(0, max_slices)
    sides = {
        step: range(start_index + step, (count if step > 0 else -1), step)[:limit]
        for step in _STEPS[direction]
    }
    total, finished = sum(len(r) for r in sides.values()), 0
    pixel_spacing = slice_spacing(spacing, plane)
    result = PropagationResult(masks={start_index: start_mask})
    reasons = {1: "not propagated upwards", -1: "not propagated downwards"}
    for step, indices in sides.items():
        previous = start_mask
        reasons[step] = "edge of the volume" if len(indices) < limit else "slice limit reached"
        for offset, index in enumerate(indices, start=1):
            if cancel is not None and cancel.is_set():
                reasons[step] = "cancelled"
                break
            pixels = take_slice(volume, plane, index).astype(np.float32)
            try:
                segmenter.set_image(
                    SliceImage(pixels, render(pixels, is_hu, window), is_hu, pixel_spacing)
                )
                mask = np.asarray(segmenter.predict(prompt_from_mask(previous)), dtype=bool)
            except SegmenterError as error:
                reasons[step] = f"segmenter failed: {error}"
                break
            if rules.keep_overlapping:
                mask = _overlapping_pieces(mask, previous)
            reason = _stop_reason(mask, previous, start_area, rules)
            if reason is not None:
                reasons[step] = reason
                break
            result.masks[index] = previous = mask
            if on_progress is not None:
                on_progress(finished + offset, total)
        finished += len(indices)  # a side that stopped early counts as done
        if on_progress is not None:
            on_progress(finished, total)
    result.stopped_up, result.stopped_down = reasons[1], reasons[-1]
    return result
