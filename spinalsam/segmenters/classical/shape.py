"""Measures of a mask the point path compares (depth, centredness) and the box arithmetic the
paths share (growing a box, its sides on the image border).

Why depth: a user clicks the middle of what they want, so the mask in which the click sits
deepest, relative to the mask's own deepest point, is the likely answer (`centredness_of`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.morphology import Box, Sides, mask_bounds

CENTRED_TIE = 0.05  # one mask replaces another only when it is this much better centred


def grow(box: Box, margin: int, shape: tuple[int, int]) -> Box:
    """The box with `margin` pixels added on every side, clipped to the image."""
    h, w = shape
    x0, y0, x1, y1 = box
    return (
        max(x0 - margin, 0),
        max(y0 - margin, 0),
        min(x1 + margin, w - 1),
        min(y1 + margin, h - 1),
    )


def box_walls(box: Box, shape: tuple[int, int]) -> Sides:
    """The sides of a box that lie on the image border, where the image cuts the object off
    (see `fill_holes`)."""
    x0, y0, x1, y1 = box
    h, w = shape
    return y0 == 0, y1 == h - 1, x0 == 0, x1 == w - 1


def window_walls(window: tuple[slice, slice], shape: tuple[int, int]) -> Sides:
    """The sides of a search window that lie on the image border."""
    rows, cols = window
    return box_walls((cols.start, rows.start, cols.stop - 1, rows.stop - 1), shape)


def component_at(labels: np.ndarray, y: int, x: int) -> int:
    """Label under (y, x), or of the nearest labelled pixel when the click misses every blob."""
    if labels[y, x]:
        return int(labels[y, x])
    _, (iy, ix) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    return int(labels[iy[y, x], ix[y, x]])


def centredness_of(mask: np.ndarray, y: int, x: int) -> float:
    """How deep inside a non-empty mask the click sits, relative to its deepest point (0..1):
    a user clicks the middle of what they want. The distance map runs over the mask's bounds
    plus one background pixel: identical to the full map there, at a fraction of the cost."""
    x0, y0, x1, y1 = mask_bounds(mask)
    depth = ndi.distance_transform_edt(np.pad(mask[y0 : y1 + 1, x0 : x1 + 1], 1))
    at = float(depth[y - y0 + 1, x - x0 + 1]) if mask[y, x] else 0.0
    return at / float(depth.max())
