"""Cutting a mask at narrow necks: the distance-map watershed, regrown through wide necks.

Why: touching vertebrae meet through narrow bridges (facet joints, bridged disc rims), which
the distance map's watershed cuts, while a vertebra's own lobes, pedicles and processes meet
its body through necks about as wide as they are thick, so they are joined back.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from spinalsam.segmenters.classical.shape import component_at
from spinalsam.segmenters.morphology import EIGHT, dilate_square, mask_bounds, regional_h_maxima

WATERSHED_H_PX = 2.0  # distance-map maxima shallower than this are noise, not separate blobs
NECK_RATIO = 0.5  # basins join when their neck is at least this fraction of the thinner one
APPENDAGE_RATIO = 0.5  # a basin this much thinner than the clicked one counts as an appendage
GROWTH_ROUNDS = 2  # how many basins away from the clicked one may be attached
BASIN_CELL_MM = 0.75  # grid on which the distance-map watershed runs


def neck_region(filled: np.ndarray, y: int, x: int, step: int) -> np.ndarray:
    """The distance-map basin under (y, x), grown by basins joined through wide-enough necks.

    A neighbouring basin joins when the neck is at least NECK_RATIO of the thinner side's
    thickness, so a vertebra's own lobes, pedicles and processes stay attached. Runs on a grid
    coarsened by `step`, since only the region's outline at that scale matters.
    """
    shape = filled.shape
    coarse = filled[::step, ::step]
    if not coarse.any():  # smaller than one grid cell: nothing to split
        return filled
    y, x = min(y // step, coarse.shape[0] - 1), min(x // step, coarse.shape[1] - 1)
    if not coarse[y, x]:  # the basin nearest to the click may lie in any piece
        region = _basins_joined(coarse, y, x, step)
    else:  # basins never grow across the background: only the clicked piece's are needed
        # (cropped to its bounds and a background pixel around them where the grid goes on,
        # which keeps their distance map), not all of the search window's
        pieces, _ = ndi.label(coarse, structure=EIGHT)
        x0, y0, x1, y1 = mask_bounds(pieces == pieces[y, x])
        y0, x0 = max(y0 - 1, 0), max(x0 - 1, 0)
        crop = (slice(y0, y1 + 2), slice(x0, x1 + 2))
        region = np.zeros_like(coarse)
        region[crop] = _basins_joined(pieces[crop] == pieces[y, x], y - y0, x - x0, step)
    fine = np.repeat(np.repeat(region, step, axis=0), step, axis=1)
    return fine[: shape[0], : shape[1]]


def _basins_joined(coarse: np.ndarray, y: int, x: int, step: int) -> np.ndarray:
    """`neck_region`'s growth from the basin under (y, x), on its grid of `step` pixels."""
    depth = ndi.distance_transform_edt(coarse)
    markers, _ = ndi.label(regional_h_maxima(depth, WATERSHED_H_PX / step))
    basins = watershed(-depth, markers, mask=coarse)
    seed = basins == component_at(basins, y, x)
    seed_depth = float(depth[seed].max())
    peaks = np.zeros(int(basins.max()) + 1)  # deepest point per basin, without a sort
    np.maximum.at(peaks, basins.ravel(), depth.ravel())
    region = seed
    for _ in range(GROWTH_ROUNDS):
        rim = dilate_square(region) & ~region & (basins > 0)
        grown = region.copy()
        for b in np.unique(basins[rim]):
            neck = float(depth[rim & (basins == b)].max())
            if neck > NECK_RATIO * min(peaks[b], seed_depth) or (
                peaks[b] < APPENDAGE_RATIO * seed_depth and neck > NECK_RATIO * peaks[b]
            ):
                grown |= basins == b
        if grown.sum() == region.sum():
            break
        region = grown
    return region
