"""Guesses at the extent of the object under a click, each read afterwards as a box.

Why several: a click gives no extent, and no single estimate holds across the pieces of a
vertebra. The cortical shell under the click, unclosed, separates pieces that only meet across
a dark joint space (posterior pieces); the distance-map basins of a gently closed bone map cut
a vertebra from neighbours touching it through narrow bridges; and rays from the click,
stopping where they leave the bone through its cortex, bound a click with no closed shell
around it. The point path keeps the best-centred result (`point.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.classical.maps import SliceMaps
from spinalsam.segmenters.classical.necks import BASIN_CELL_MM, neck_region
from spinalsam.segmenters.classical.shape import window_walls
from spinalsam.segmenters.morphology import Box, fill_holes, mask_bounds

SEARCH_MM = 37.0  # initial half-size of the window searched around a click
RAY_COUNT = 64  # directions cast from a click to find where the clicked bone ends
RAY_MEDIAN = 5  # running median over this many neighbouring rays: drops a few leaking rays
RAY_REACH_MM = 150.0  # longest ray: beyond a whole sacrum, the largest piece in a slice

# An estimate: (search window, click row, click column in it) → the mask found, or None.
Estimate = Callable[[tuple[slice, slice], int, int], "np.ndarray | None"]


def enclosed_extent(s: SliceMaps, estimate: Estimate, x: int, y: int) -> Box | None:
    """Bounds of what `estimate` finds in a window around the click, doubling the window
    while the extent reaches its edge: the search stays local for small objects, yet never
    clips a big one."""
    h, w = s.shape
    r = s.px(SEARCH_MM)
    while True:
        ya, yb, xa, xb = max(y - r, 0), min(y + r + 1, h), max(x - r, 0), min(x + r + 1, w)
        found = estimate((slice(ya, yb), slice(xa, xb)), y - ya, x - xa)
        if found is None:
            return None
        x0, y0, x1, y1 = mask_bounds(found)
        x0, y0, x1, y1 = x0 + xa, y0 + ya, x1 + xa, y1 + ya
        clipped = (
            (xa > 0 and x0 <= xa)
            or (ya > 0 and y0 <= ya)
            or (xb < w and x1 >= xb - 1)
            or (yb < h and y1 >= yb - 1)
        )
        if not clipped:
            return x0, y0, x1, y1
        r *= 2


def shell_extent(s: SliceMaps, window: tuple[slice, slice], y: int, x: int) -> np.ndarray | None:
    """The filled cortical shell under the click, unclosed, cut at narrow necks.

    Posterior pieces (articular and spinous processes in a sagittal cut) are thin and
    elongated: the distance-map basin under the click covers only a disc of them, and any
    closing joins them to their neighbours across the dark joint spaces. Without a closing the
    pieces are separate shells, except where they touch through a narrow contact, which the
    neck cut removes. No estimate when the click is not inside a closed shell: the nearest
    bright speck would be noise. A piece the image cuts off has its shell open at the border,
    so window sides on the image border count as walls, as for a drawn box.
    """
    labels, _ = ndi.label(fill_holes(s.cortex[window], window_walls(window, s.shape)))
    if not labels[y, x]:
        return None
    return neck_region(labels == labels[y, x], y, x, s.px(BASIN_CELL_MM))


def basin_extent(
    s: SliceMaps, window: tuple[slice, slice], y: int, x: int, close_mm: float
) -> np.ndarray | None:
    """The click's distance-map basin plus thin appendages joined by a wide-enough neck, on a
    bone map closed more gently than a box's, which keeps discs open."""
    filled = fill_holes(s.closed[close_mm][window])
    if not filled.any():
        return None
    return neck_region(filled, y, x, s.px(BASIN_CELL_MM))


def ray_extent(s: SliceMaps, y: int, x: int) -> Box:
    """Bounds of where rays from the click leave the bone through its cortex.

    Where no closed cortical shell surrounds the click, the closed-bone estimates spill along
    the spine into the neighbours. A ray, though, leaves the clicked piece where it first
    passes cortex and then reaches dark tissue (a disc, a joint space, soft tissue); a disc
    bridged at one spot lets only a few rays through, and a running median over neighbouring
    directions drops them. A ray that meets the image edge stops there, so a piece the image
    cuts off runs on to the border.
    """
    h, w = s.shape
    reach = s.px(RAY_REACH_MM)
    angles = np.arange(RAY_COUNT) * (2 * np.pi / RAY_COUNT)
    steps = np.arange(reach)
    ys = y + np.outer(np.sin(angles), steps)
    xs = x + np.outer(np.cos(angles), steps)
    inside = (ys > -0.5) & (ys < h - 0.5) & (xs > -0.5) & (xs < w - 0.5)
    yi = np.clip(np.rint(ys).astype(np.int64), 0, h - 1)
    xi = np.clip(np.rint(xs).astype(np.int64), 0, w - 1)
    passed_cortex = np.maximum.accumulate(s.cortex[yi, xi], axis=1)
    leaves = passed_cortex & ~s.bone[yi, xi] & inside
    leaves[:, 0] = False
    ends = leaves | ~inside
    stop = np.where(ends.any(axis=1), ends.argmax(axis=1), reach) - 1
    half = RAY_MEDIAN // 2
    stop = np.median([np.roll(stop, i) for i in range(-half, half + 1)], axis=0)
    stop = np.clip(stop.astype(np.int64), 0, reach - 1)
    rays = np.arange(RAY_COUNT)
    py, px = yi[rays, stop], xi[rays, stop]
    return int(px.min()), int(py.min()), int(px.max()), int(py.max())
