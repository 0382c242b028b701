"""The sagittal cross-check of an axial propagation: one read of the mid-sagittal slice.

Propagating a vertebra through axial slices, a prior-following segmenter's worst error is a
gradual slide into the next vertebra's body where the slices cut the disc obliquely or
partial-volumed (thoracic kyphosis, thick slices): no per-slice signal separates it, since the
disc is never seen as a gap. On the mid-sagittal slice the disc *is* a gap between two bodies.
So once the axial pass is done, the segmenter reads that one slice, prompted with what the
axial result says there (its cross-section as the prior and its box), a positive click at the
start mask's deepest point on that slice (which vertebra), and the box held to the vertebra's
reach (`_REACH_OF_DEPTH`, so a result that slid into two neighbours does not make the prompt
three vertebrae tall). The read is trusted only when it holds the start mask's own line on that
slice, the one cross-section the user checked. Then the axial result loses

* its voxels in the body zone (in front of the start body's posterior wall, where the next
  vertebra's body lies; the pedicles and arch behind it are left alone) on every axial row
  that the axial result has on the mid-sagittal line and the read does not, the row taken
  across the whole slice, and
* whole axial slices beyond the read's superior/inferior reach.

Cost: one segmenter read (the 30-slice propagation benchmark adds one slice's time). Measured
on the development sources in docs/3d.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from spinalsam.planes import slice_image
from spinalsam.segmenters.base import Prompt, Segmenter, SegmenterError
from spinalsam.segmenters.morphology import mask_bounds
from spinalsam.windowing import Window

__all__ = ["CrossCheck", "sagittal_cross_check"]

# The read's box reaches at most this fraction of the start mask's front-to-back depth on the
# mid-sagittal line above and below the start slice: a vertebra (body and processes) is about as
# tall as half its depth either side of its largest cross-section, while a result that slid on
# through two discs is three vertebrae tall (docs/3d.md: 0.4–0.6 measured alike).
_REACH_OF_DEPTH = 0.5
_BOX_MARGIN_MM = 3.5  # the box a user draws: the evaluation protocol's margin around the object
_MIN_HELD = 0.5  # of the start mask's line on the slice that the read must hold to be trusted
_AGREE_MM = 1.5  # the read counts as "vertebra" this far around itself (partial volume)
_WALL_MM = 3.0  # the body zone reaches this far behind the start body's posterior wall
# An axial slice is trimmed only where the read disagrees with most of its body-zone line: a
# slice that slid into the next body disagrees wholly, while a read's small gaps on a slice of
# this vertebra would otherwise remove whole rows of it.
_MAX_DISAGREE = 0.5


@dataclass(frozen=True)
class CrossCheck:
    """What the check did: the slice it read, whether it trusted the read, voxels removed."""

    sagittal_index: int
    trusted: bool
    removed_voxels: int
    note: str


def _runs(column: np.ndarray) -> list[np.ndarray]:
    """Index runs of True in a 1-D boolean array, front to back."""
    idx = np.flatnonzero(column)
    return np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)


def _read(
    segmenter: Segmenter,
    image_args: tuple[np.ndarray, bool, tuple[float, float, float] | None, Window | None],
    x: int,
    cross: np.ndarray,
    start_row: int,
    column: np.ndarray,
) -> np.ndarray:
    """The segmenter's mask on sagittal slice `x` (display rows: superior at the top)."""
    volume, is_hu, spacing, window = image_args
    image = slice_image(volume, is_hu, spacing, "sagittal", x, window)
    sy, sz = image.spacing or (1.0, 1.0)
    front, back = np.flatnonzero(column)[[0, -1]]
    reach = round(_REACH_OF_DEPTH * (back - front + 1) * sy / sz)
    held_to = np.zeros_like(cross)
    held_to[max(0, start_row - reach) : start_row + reach + 1] = True
    prior = cross & held_to
    x0, y0, x1, y1 = mask_bounds(prior)
    mx, my = max(1, round(_BOX_MARGIN_MM / sy)), max(1, round(_BOX_MARGIN_MM / sz))
    h, w = prior.shape
    box = np.array([max(0, x0 - mx), max(0, y0 - my), min(w - 1, x1 + mx), min(h - 1, y1 + my)])
    body = _runs(column)[0]
    depth = ndi.distance_transform_edt(np.pad(column, 1))[1:-1]
    click = int(body[np.argmax(depth[body])])
    segmenter.set_image(image)
    prompt = Prompt(
        points=np.array([[click, start_row]]),
        labels=np.ones(1, dtype=np.int64),
        box=box,
        mask_input=prior,
    )
    return np.asarray(segmenter.predict(prompt), dtype=bool)


def _solid_body_zone(read: np.ndarray, wall: int) -> np.ndarray:
    """The read with each row's gaps in front of the body's posterior wall filled.

    There a mid-sagittal row crosses one solid body, so a gap between two read pixels is the
    read's miss, not anatomy; left open it would cut a band out of every axial slice (the app's
    synthetic example, a uniform body read as two rims, lost 0.08 3-D Dice that way).
    """
    zone = read[:, : wall + 1]
    cols = np.arange(zone.shape[1])
    first = np.argmax(zone, axis=1)[:, None]
    last = zone.shape[1] - 1 - np.argmax(zone[:, ::-1], axis=1)[:, None]
    filled = read.copy()
    filled[:, : wall + 1] |= (cols >= first) & (cols <= last) & zone.any(axis=1)[:, None]
    return filled


@dataclass(frozen=True)
class _ReadSays:
    """What a trusted mid-sagittal read says about each axial slice."""

    x: int  # the sagittal slice read
    vertebra: np.ndarray  # (axial slice, y): the read, grown by `_AGREE_MM`
    wall: int  # the last row (y) of the body zone
    lowest: int  # the axial slices the read reaches, with `_AGREE_MM` to spare
    highest: int

    def trim(self, masks: dict[int, np.ndarray], keep: int) -> int:
        """Remove from `masks` (in place) what the read says is not this vertebra; the mask of
        slice `keep` is never changed, slices left empty are dropped. Returns voxels removed."""
        removed = 0
        for z in [z for z in masks if z != keep]:
            mask = masks[z]
            if z < self.lowest or z > self.highest:
                kept = np.zeros_like(mask)
            else:
                line = mask[: self.wall + 1, self.x]
                off = line & ~self.vertebra[z, : self.wall + 1]
                kept = mask.copy()
                if np.count_nonzero(off) > _MAX_DISAGREE * np.count_nonzero(line):
                    kept[np.flatnonzero(off)] = False
            removed += int(np.count_nonzero(mask & ~kept))
            if kept.any():
                masks[z] = kept
            else:
                del masks[z]
        return removed


def sagittal_cross_check(
    masks: dict[int, np.ndarray],
    volume: np.ndarray,
    is_hu: bool,
    spacing: tuple[float, float, float] | None,
    start_index: int,
    segmenter: Segmenter,
    window: Window | None = None,
) -> CrossCheck:
    """Trim the axial `masks` (slice index → mask, changed in place) by one mid-sagittal read.

    The start slice's mask is the user's and is never changed; slices left empty are removed.
    A read the segmenter refuses, or one that misses the start mask's line, changes nothing.
    """
    start = masks[start_index]
    x = round(float(np.nonzero(start)[1].mean()))
    column = start[:, x]
    if not column.any():  # a start mask with a hole on its centre line: no line to hold
        return CrossCheck(x, False, 0, "not used: the start mask does not cross its centre line")
    nz = volume.shape[0]
    cross = np.zeros((nz, volume.shape[1]), dtype=bool)  # the sagittal view: superior on top
    for z, mask in masks.items():
        cross[nz - 1 - z] = mask[:, x]
    start_row = nz - 1 - start_index
    try:
        read = _read(segmenter, (volume, is_hu, spacing, window), x, cross, start_row, column)
    except SegmenterError as error:
        return CrossCheck(x, False, 0, f"not used: the sagittal read failed ({error})")
    _, sy, sz = spacing or (1.0, 1.0, 1.0)
    wall = _runs(column)[0][-1] + round(_WALL_MM / sy)
    read = _solid_body_zone(read, wall)
    held = np.count_nonzero(read[start_row] & column) / np.count_nonzero(column)
    if held < _MIN_HELD:
        return CrossCheck(x, False, 0, f"not used: the read holds {held:.0%} of the start line")
    near = ndi.distance_transform_edt(~read, sampling=(sz, sy)) <= _AGREE_MM
    rows = np.flatnonzero(read[::-1].any(axis=1))
    margin = round(_AGREE_MM / sz)
    said = _ReadSays(
        x=x,
        vertebra=near[::-1],  # rows by axial slice index
        wall=wall,
        lowest=int(rows[0]) - margin,
        highest=int(rows[-1]) + margin,
    )
    removed = said.trim(masks, start_index)
    return CrossCheck(x, True, removed, f"{removed} voxels beyond this vertebra removed")
