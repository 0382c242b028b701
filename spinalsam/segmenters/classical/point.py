"""A click: estimate the object's extent, read it as a box, keep the mask best centred on it.

Why: a point gives no extent, so extents are estimated first (`estimates.py`) and each is read
like a box; a user clicks the middle of what they want, so the mask centred on the click wins
(`shape.centredness_of`). Each reading is cut at narrow necks first (`necks.py`): a box that is
too large joins the clicked piece to a neighbour. The winner is then checked for a walled-off
compartment (`compartments.py`): bodies joined through bridged discs.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from spinalsam.segmenters.classical.box import BOX_MARGIN_MM, segment_box
from spinalsam.segmenters.classical.compartments import walled_off
from spinalsam.segmenters.classical.estimates import (
    basin_extent,
    enclosed_extent,
    ray_extent,
    shell_extent,
)
from spinalsam.segmenters.classical.maps import BASIN_CLOSE_MM, SliceMaps
from spinalsam.segmenters.classical.necks import BASIN_CELL_MM, neck_region
from spinalsam.segmenters.classical.shape import CENTRED_TIE, centredness_of, grow
from spinalsam.segmenters.morphology import Box, box_overlap, mask_bounds

SAME_BOX_OVERLAP = 0.98  # a box overlapping a tried one this much (IoU) gives about the same mask


def segment_point(s: SliceMaps, positives: np.ndarray) -> np.ndarray:
    """Estimate the extent around the first click; keep the best-centred resulting mask.

    Estimates run from the most local (the cortical shell, then basins of a barely closed bone
    map) to the rays; a later one replaces the current best only when its mask is clearly
    better centred (CENTRED_TIE). An estimate whose box nearly equals one already tried is
    skipped: its mask would be about the same, so it could not clearly beat it.
    """
    x, y = (int(v) for v in positives[0])
    margin = s.px(BOX_MARGIN_MM)
    best: tuple[float, np.ndarray] | None = None
    tried: list[Box] = []
    estimates = (
        partial(shell_extent, s),
        *(partial(basin_extent, s, close_mm=mm) for mm in BASIN_CLOSE_MM),
    )
    extents = [partial(enclosed_extent, s, estimate, x, y) for estimate in estimates]
    for find in (*extents, partial(ray_extent, s, y, x)):
        if best is not None and best[0] + CENTRED_TIE >= 1.0:
            break  # centredness is at most 1: no later estimate could replace this one
        extent = find()
        if extent is None:
            continue
        box = grow(extent, margin, s.shape)
        if any(box_overlap(box, t) >= SAME_BOX_OVERLAP for t in tried):
            continue  # (about) the same box, (about) the same mask: it would not beat the best
        tried.append(box)
        mask = cut_at_necks(s, segment_box(s, box, positives, bays=False), y, x)
        score = centredness_of(mask, y, x) if mask[y, x] else 0.0
        if best is None or score > best[0] + CENTRED_TIE:
            best = (score, mask)
    if best is None:
        return np.zeros(s.shape, dtype=bool)
    return walled_off(s, *best, y, x)


def cut_at_necks(s: SliceMaps, mask: np.ndarray, y: int, x: int) -> np.ndarray:
    """Keep the clicked part of a mask that a too-large box joined to a neighbour."""
    if not mask[y, x]:
        return mask
    x0, y0, x1, y1 = mask_bounds(mask)
    crop = mask[y0 : y1 + 1, x0 : x1 + 1]
    cut = mask.copy()
    cut[y0 : y1 + 1, x0 : x1 + 1] = crop & neck_region(crop, y - y0, x - x0, s.px(BASIN_CELL_MM))
    return cut
