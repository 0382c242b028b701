"""Reading a box: threshold the shell, drop neighbours entering through a side, close, fill,
keep the object.

Why this order: in a bone window a vertebra is a bright cortical shell around cancellous bone
barely brighter than soft tissue, so the mask is built from the shell: threshold at the box's
mean grey level (never below the soft-tissue level), drop bone entering through a side (a
neighbour, since a box encloses its object: `neighbours.py`), close gaps in the shell, fill the
enclosed inside, keep the piece under a positive point (else the largest). A box the user drew
also has the hollows behind a gapped cortex filled (`bays.py`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.classical.bays import fill_bays
from spinalsam.segmenters.classical.maps import CLOSE_MM, SOFT_FLOOR, SliceMaps
from spinalsam.segmenters.classical.neighbours import drop_edge_crossers
from spinalsam.segmenters.classical.shape import box_walls
from spinalsam.segmenters.morphology import Box, close_disk, fill_holes

BOX_MARGIN_MM = 1.25  # margin a user leaves around an object when drawing its box
MIN_BOX_PX = 4  # a box narrower than this (in either direction) cannot hold a vertebra


def segment_box(s: SliceMaps, box: Box, positives: np.ndarray, bays: bool) -> np.ndarray:
    """Shell threshold inside the box → drop edge-crossing bone → close → fill → pick → fill
    enclosed bays (with `bays`: boxes the user drew).

    No cortex in the box gives an empty mask: whatever passes the threshold is noise, and
    propagation reads an empty answer as the object's end. Bays are filled in drawn boxes
    only: in propagation the prior already has the hollows it should (the fill took in the
    canal), and the point path's boxes are its own guesses at the object.
    """
    x0, y0, x1, y1 = box
    out = np.zeros(s.shape, dtype=bool)
    if not s.cortex[y0 : y1 + 1, x0 : x1 + 1].any():
        return out
    crop = s.smooth[y0 : y1 + 1, x0 : x1 + 1]
    contrast = max(float(np.percentile(crop, 99)) - s.soft, 1.0)
    bone = crop > max(float(crop.mean()), s.soft + SOFT_FLOOR * contrast)
    walls = box_walls(box, s.shape)
    bone = drop_edge_crossers(bone, walls)
    filled = fill_holes(close_disk(bone, s.px(CLOSE_MM)), walls)
    labels, n = ndi.label(filled)
    if n == 0:
        return out
    inside = [(y - y0, x - x0) for x, y in positives if x0 <= x <= x1 and y0 <= y <= y1]
    picked = {int(labels[p]) for p in inside} - {0}
    if not picked:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        picked = {int(sizes.argmax())}
    obj = np.isin(labels, list(picked))
    if bays:
        obj = fill_bays(obj, crop, s.soft, SOFT_FLOOR * contrast, walls)
    out[y0 : y1 + 1, x0 : x1 + 1] = obj
    return out
