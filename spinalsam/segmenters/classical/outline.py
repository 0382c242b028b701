"""The final outline of a box reading: hollows behind a gapped cortex filled, the edge moved in
to the cortex's half height.

Why: the mask is built from the cortical shell, closed and filled, so where the shell has a
gap wider than the closing the inside stays open (`fill_bays`), and the low threshold that
keeps the shell closed also takes in the blurred skirt of the cortex, so the outline sits too
far out (`settle_edge`). Where the image border cuts the object (`walls`) there is no edge.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.classical.maps import SliceMaps
from spinalsam.segmenters.morphology import (
    Sides,
    array_sides,
    convex_hull,
    dilate_disk,
    erode_cross,
    fill_holes,
    largest_component,
)

BAY_MOUTH = 0.4  # a bay of the hull is enclosed when its mouth is shorter than this × its sides
CUT_BAY_MOUTH = 0.6  # the same, in a piece the image border cuts (a sacrum): its thin walls gape
EDGE_BAND_MM = 0.75  # outer band in which the outline may move inwards to the cortex edge
CORTEX_REACH_MM = 1.5  # an edge pixel's height is measured against the cortex this near it


def fill_bays(
    obj: np.ndarray, crop: np.ndarray, soft: float, margin: float, walls: Sides
) -> np.ndarray:
    """Fill the object's enclosed bays whose inside is, on average, brighter than soft tissue.

    A body whose cortex has a gap wider than the closing (often the thin posterior wall) stays
    a C-shaped rim after the fill: its cancellous inside is darker than the box's mean grey
    level (the bone threshold), yet brighter than soft tissue. Such a hollow is a bay of the
    convex hull whose mouth is narrow beside the walls around it; the shallow waist of a body
    or the notch between processes opens wide to the hull's outline and is left alone, and a
    canal or foramen is as dark as soft tissue and is not taken.

    The inside counts as bone when brighter than `soft` + `margin` (the bone floor). In a
    piece the image border cuts (`walls`), the sacrum at the foot of a sagittal slice, the bar
    is mirrored to `soft` − `margin` and the mouth may be longer (CUT_BAY_MOUTH): the sacral
    bodies' marrow is fatty and reads within the soft-tissue band, and their posterior wall is
    a faint line with long gaps, while a canal or foramen lies well below the band.
    """
    hull = convex_hull(obj)
    bays, n = ndi.label(hull & ~obj)
    if n == 0:
        return obj
    mouth = dilate_disk(~np.pad(hull, 1), 1)[1:-1, 1:-1]  # bay pixels on the hull's outline
    mouths = np.bincount(bays[mouth], minlength=n + 1)
    sides = np.bincount(bays[dilate_disk(obj, 1)], minlength=n + 1)
    area = np.maximum(np.bincount(bays.ravel(), minlength=n + 1), 1)
    grey = np.bincount(bays.ravel(), crop.ravel(), minlength=n + 1) / area
    cut = any(wall and rim.any() for rim, wall in zip(array_sides(obj), walls, strict=True))
    mouth_share = CUT_BAY_MOUTH if cut else BAY_MOUTH
    filled = (mouths < mouth_share * sides) & (grey > soft + (-margin if cut else margin))
    filled[0] = False
    return fill_holes(obj | filled[bays], walls)


def settle_edge(
    s: SliceMaps, obj: np.ndarray, crop: np.ndarray, walls: Sides, local: bool
) -> np.ndarray:
    """Move the outline to where the cortex edge is at half height.

    Within a thin outer band, pixels darker than half-way between soft tissue and the cortex
    are outside the bone, as the half-maximum of a blurred step marks the true edge. `crop` is
    the unsmoothed slice: the smoothing that steadies the threshold widens a thin piece's
    half-height outline. With `local`, each pixel is measured against the brightest of the
    object within CORTEX_REACH_MM instead of the band's bright cortex as a whole: the cortex
    of a posterior piece or an endplate is brighter than the thin walls elsewhere, and the
    half-height of a single level sits outside the dim walls and inside the bright ones.
    """
    walled = np.pad(obj, 1)
    for rim, wall in zip(array_sides(walled), walls, strict=True):
        rim[...] = wall
    inner = erode_cross(walled, s.px(EDGE_BAND_MM))[1:-1, 1:-1]
    band = obj & ~inner
    if not band.any():
        return obj
    if local:
        size = 2 * s.px(CORTEX_REACH_MM) + 1
        cortex = ndi.maximum_filter(np.where(obj, crop, 0.0), size=size)
    else:
        cortex = float(np.percentile(crop[band], 90))
    settled = fill_holes(obj & ~(band & (crop < (s.soft + cortex) / 2)), walls)
    return largest_component(settled) if settled.any() else obj
