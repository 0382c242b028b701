"""Filling the hollow a gapped cortex leaves open in a box reading.

Why: the mask is built from the cortical shell, closed and filled, so where the shell has a
gap wider than the closing (often a body's thin posterior wall) the inside stays open.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.morphology import (
    Sides,
    array_sides,
    convex_hull,
    dilate_disk,
    fill_holes,
)

BAY_MOUTH = 0.4  # a bay of the hull is enclosed when its mouth is shorter than this × its sides
CUT_BAY_MOUTH = 0.6  # the same, in a piece the image border cuts (a sacrum): its thin walls gape


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
