"""Binary morphology and mask geometry the classical segmenter is built from.

Why hand-built: each replaces a scipy/skimage call the point path makes many times per click
(a disk dilation, a closing, hole filling, h-maxima) with an exactly equal but cheaper form —
separable shifts, labelling only a mask's bounds, labelling the background once — so a click
stays within its latency budget. `tests/test_classical.py` checks each against the library.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

MAXIMA_PROOF_STEPS = 3  # cheap geodesic dilations that rule out most h-maximum candidates

Sides = tuple[bool, bool, bool, bool]  # top, bottom, left, right
NO_WALLS: Sides = (False, False, False, False)
Box = tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive pixel bounds
EIGHT = np.ones((3, 3), dtype=bool)


def dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by `disk(radius)` (zero outside the array), built from shifted rows.

    A disk is a stack of centred rows, so the dilation is the union of each row offset's
    horizontal dilation by that row's half-width; those grow one pixel per step by OR-ing
    shifted copies. A few dozen cheap passes instead of a distance transform or a 2-D
    structuring element, with exactly the same result.
    """
    grown = mask.astype(bool)  # grown[w]: dilated horizontally by w pixels each way
    rows = [grown]
    for _ in range(radius):
        wider = grown.copy()
        wider[:, 1:] |= grown[:, :-1]
        wider[:, :-1] |= grown[:, 1:]
        rows.append(wider)
        grown = wider
    h = mask.shape[0]
    out = rows[radius].copy()
    for dy in range(1, min(radius, h - 1) + 1):
        row = rows[math.isqrt(radius * radius - dy * dy)]
        out[: h - dy] |= row[dy:]
        out[dy:] |= row[: h - dy]
    return out


def dilate_square(mask: np.ndarray) -> np.ndarray:
    """`ndi.binary_dilation(mask, EIGHT)` (the 8 neighbours, zero outside the array) as two
    shifted ORs per axis: the 3×3 square is separable, and this is a tenth of the cost."""
    wide = mask.copy()
    wide[:, 1:] |= mask[:, :-1]
    wide[:, :-1] |= mask[:, 1:]
    out = wide.copy()
    out[1:] |= wide[:-1]
    out[:-1] |= wide[1:]
    return out


def erode_cross(mask: np.ndarray, iterations: int) -> np.ndarray:
    """`ndi.binary_erosion(mask, iterations=iterations, border_value=1)` (the 4-neighbour
    cross, one pixel per pass, the array's outside counted as set) as four shifted ANDs per
    pass: the same result at a fraction of the cost for the few passes of an edge band."""
    out = mask.copy()
    for _ in range(iterations):
        last = out.copy()
        out[1:] &= last[:-1]
        out[:-1] &= last[1:]
        out[:, 1:] &= last[:, :-1]
        out[:, :-1] &= last[:, 1:]
    return out


def close_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing by a disk that does not erode objects touching the array edge."""
    if radius < 1:
        return mask
    pad = radius + 1
    dilated = dilate_disk(np.pad(mask, pad), radius)
    closed = ~dilate_disk(~dilated, radius)
    return closed[pad:-pad, pad:-pad]


def array_sides(array: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views of the top, bottom, left and right rims, in the order of `Sides`."""
    return array[0], array[-1], array[:, 0], array[:, -1]


def fill_holes(mask: np.ndarray, walls: Sides = NO_WALLS) -> np.ndarray:
    """`ndi.binary_fill_holes`, by labelling the background once instead of flooding it.

    `walls` are sides where the image border cuts the object off: an object cut open there
    is still closed, so background reaching only those sides is inside it. Without walls only
    the mask's bounds and a pixel around them are labelled: holes lie within the bounds, and
    every background pixel beyond them lies on a background row or column that runs to the
    border, so the same background reaches out (a bone map in a search window is sparse).
    """
    window = (slice(None), slice(None))
    if not any(walls) and mask.any():
        x0, y0, x1, y1 = mask_bounds(mask)
        window = (slice(max(y0 - 1, 0), y1 + 2), slice(max(x0 - 1, 0), x1 + 2))
    background, _ = ndi.label(~mask[window])
    rims = [rim for rim, wall in zip(array_sides(background), walls, strict=True) if not wall]
    edge = np.concatenate(rims or array_sides(background))
    outside = np.zeros(int(background.max()) + 1, dtype=bool)
    outside[edge] = True
    outside[0] = True  # the mask itself
    filled = mask.copy()
    if outside.all():  # no holes (the usual case): skip the look-up over every pixel
        return filled
    filled[window] |= ~np.take(outside, background)  # `take` skips fancy indexing's index copy
    return filled


def mask_bounds(mask: np.ndarray) -> Box:
    """Bounds from the row and column projections, cheaper than listing every pixel."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])


def box_overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    if x1 < x0 or y1 < y0:
        return 0.0
    inter = (x1 - x0 + 1) * (y1 - y0 + 1)
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (area - inter)


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """The mask filled out to the convex hull of its pixel centres.

    `skimage.morphology.convex_hull_image` does the same (around pixel corners) at ten times
    the cost, nearly all of it in rasterising the polygon: the hull of a mask is that of each
    row's end pixels, and a convex polygon meets each row in one run, bounded by where its
    edges cross the row.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    ends = mask[rows]
    left = ends.argmax(axis=1)
    right = ends.shape[1] - 1 - ends[:, ::-1].argmax(axis=1)
    points = np.concatenate([np.column_stack([rows, left]), np.column_stack([rows, right])])
    try:
        corners = points[ConvexHull(points).vertices].astype(np.float64)
    except QhullError:  # the pixels lie on one line: the mask is its own hull
        return mask
    y0, x0 = corners.T
    y1, x1 = np.roll(corners, -1, axis=0).T
    y = np.arange(mask.shape[0], dtype=np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (y - y0) / (y1 - y0)  # where along each edge it crosses row y (NaN: along the row)
        x = x0 + t * (x1 - x0)
    crosses = (t >= 0) & (t <= 1)
    lo = np.ceil(np.where(crosses, x, np.inf).min(axis=1) - 1e-9)
    hi = np.floor(np.where(crosses, x, -np.inf).max(axis=1) + 1e-9)
    cols = np.arange(mask.shape[1])
    return mask | ((cols >= lo[:, None]) & (cols <= hi[:, None]))


def components_touching(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The labelled components (label 0 is background) with a pixel in `where`: a look-up
    table over the labels, cheaper than `np.isin` against the touched labels."""
    hit = np.zeros(int(labels.max()) + 1, dtype=bool)
    hit[labels[where]] = True
    hit[0] = False
    return hit[labels]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected piece of a mask: dropping a part can split off slivers."""
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def regional_h_maxima(image: np.ndarray, h: float) -> np.ndarray:
    """`skimage.morphology.h_maxima` for a float image, without its sort-based reconstruction.

    A pixel p is an h-maximum when the grey reconstruction of (image - h) under the image stays
    at least h below it, i.e. when no pixel q whose lowered value comes within h of p is
    reachable through pixels that all come within h of p. A few geodesic dilations of the
    lowered image under the image are a lower bound of that reconstruction, so the pixels
    they already lift to within h are out (most are, on a distance map's ridges); the rest
    share few grey levels, and one labelling per level decides them. Same float arithmetic
    (and the same `resolution` margin) as skimage, so the result is identical.
    """
    out = np.zeros(image.size, dtype=bool)
    if h > np.ptp(image):
        return out.reshape(image.shape)
    lowered = image - h - 2 * np.finfo(image.dtype).resolution * np.abs(image)
    reconstructed = lowered
    for _ in range(MAXIMA_PROOF_STEPS):
        grown = ndi.maximum_filter(reconstructed, footprint=EIGHT, mode="nearest")
        reconstructed = np.minimum(grown, image)
    candidates = np.flatnonzero(image - reconstructed >= h)
    values = image.ravel()[candidates]
    rows, cols = np.divmod(candidates, image.shape[1])
    top, left, bottom, right = 0, 0, image.shape[0], image.shape[1]
    labels, n, size = np.zeros(0), 0, -1
    for level in np.unique(values):
        # Levels ascend, so each level's set lies within the last one's bounds, and its
        # components within its own: the labelling shrinks to the deeper levels' few pixels.
        near = level - image[top:bottom, left:right] < h
        x0, y0, x1, y1 = mask_bounds(near)
        top, left, bottom, right = top + y0, left + x0, top + y1 + 1, left + x1 + 1
        near = near[y0 : y1 + 1, x0 : x1 + 1]
        at = values == level  # each lies in its own set
        higher = level - lowered[top:bottom, left:right] < h
        if near.all():  # one component (the lowest level of a distance map: all of it)
            out[candidates[at]] = not higher.any()
            continue
        if int(near.sum()) != size:  # else the same set as the last level's: same labels
            labels, n = ndi.label(near, structure=EIGHT)
            size = int(near.sum())
        reaches_higher = np.zeros(n + 1, dtype=bool)
        reaches_higher[labels[higher]] = True
        free = ~reaches_higher[labels[rows[at] - top, cols[at] - left]]
        out[candidates[at][free]] = True
    return out.reshape(image.shape)
