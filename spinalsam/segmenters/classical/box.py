"""Reading a box: threshold the shell, drop neighbours, close, fill, pick, outline.

Why this order: in a bone window a vertebra is a bright cortical shell around cancellous bone
barely brighter than soft tissue, so the mask is built from the shell: threshold at the box's
mean grey level (never below the soft-tissue level), drop bone entering through a side (a
neighbour, since a box encloses its object), close gaps in the shell, fill the enclosed inside,
keep the object, cut off what a bridged disc or joint still joins to it, and settle the outline.

Who made the box changes what may be assumed (`BoxOrigin`): a drawn box encloses its object
with a margin; an estimated one (the point path's) fits a guess at the object; a prior's
(propagation's previous mask) is tight, and what touches its edge is the object growing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.classical.maps import CLOSE_MM, SOFT_FLOOR, SliceMaps
from spinalsam.segmenters.classical.neighbours import cut_entrants, drop_edge_crossers
from spinalsam.segmenters.classical.outline import fill_bays, settle_edge
from spinalsam.segmenters.classical.shape import box_walls
from spinalsam.segmenters.morphology import Box, close_disk, fill_holes, largest_component

BoxOrigin = Literal["drawn", "estimated", "prior"]
BOX_MARGIN_MM = 1.25  # margin a user leaves around an object when drawing its box
MIN_BOX_PX = 4  # a box narrower than this (in either direction) cannot hold a vertebra
SEAM_MM = 1.0  # a joint space is 1–2 mm wide: on coarser pixels it is no seam one can follow
SEAM_TRIM_MM = 2.0  # how far from a cut-off neighbour the seam's dark rest is looked for
BOX_JITTER_MM = 1.0  # a drawn box is read again with its sides this much further out and in
# Boxes up to this many pixels are read three times: together no dearer than one reading of the
# largest box a whole vertebra takes on a 512² slice (≈ 120 000 px), so the vote stays within
# the latency budget; larger boxes are read once.
VOTE_MAX_PIXELS = 40_000


def segment_box(
    s: SliceMaps, box: Box, positives: np.ndarray, origin: BoxOrigin = "estimated"
) -> np.ndarray:
    """Shell threshold inside the box → drop edge-crossing bone → close → fill → pick →
    cut off neighbours joined through the box edge → fill enclosed bays (drawn boxes) → settle.

    The cut needs a box around the object with a margin, so not a prior's, and pixels fine
    enough to show a joint space as a seam (SEAM_MM). A drawn box has its cut-off pieces judged
    one by one and its seam rest trimmed, its bays filled and its edge settled against the
    cortex nearby: in propagation the prior already has the hollows it should, and the point
    path reads several estimated boxes per click, whose choice by shape the rippled outline
    of a local settling would tip.
    """
    x0, y0, x1, y1 = box
    out = np.zeros(s.shape, dtype=bool)
    if not s.cortex[y0 : y1 + 1, x0 : x1 + 1].any():
        return out  # no cortex, no vertebra: whatever passes the threshold is noise
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
    if origin != "prior" and s.px_per_mm * SEAM_MM >= 1.0:
        trim = s.px(SEAM_TRIM_MM) if origin == "drawn" else 0
        obj = cut_entrants(obj, crop, walls, each=origin == "drawn", trim=trim)
    if origin == "drawn":
        obj = fill_bays(obj, crop, s.soft, SOFT_FLOOR * contrast, walls)
    sharp = s.sharp[y0 : y1 + 1, x0 : x1 + 1]
    out[y0 : y1 + 1, x0 : x1 + 1] = settle_edge(s, obj, sharp, walls, origin == "drawn")
    return out


def moved(box: Box, step: int, shape: tuple[int, int]) -> Box:
    """The box with its sides moved `step` pixels outwards (inwards when negative), clipped.

    Sides on the image border stay there (the image cuts the object off); a box that would
    shrink below twice the smallest box accepted is left as it is.
    """
    h, w = shape
    x0, y0, x1, y1 = box
    out = (
        x0 if x0 == 0 else max(0, x0 - step),
        y0 if y0 == 0 else max(0, y0 - step),
        x1 if x1 == w - 1 else min(w - 1, x1 + step),
        y1 if y1 == h - 1 else min(h - 1, y1 + step),
    )
    too_small = min(out[2] - out[0], out[3] - out[1]) < 2 * MIN_BOX_PX
    return box if too_small else out


def segment_drawn(s: SliceMaps, box: Box, positives: np.ndarray) -> np.ndarray:
    """The pixels that at least two of three readings of a drawn box agree on.

    A user's box is never exact: the same object could as well have been boxed a millimetre
    tighter or looser. The box sets the bone threshold (the crop's mean), which pieces count as
    entering through a side, and where a neighbour is cut off, so a leak may open for one exact
    box only; the object itself is found in every reading. So the box is also read with all its
    sides moved out and in by BOX_JITTER_MM (sides on the image border stay there) and the
    majority kept. Boxes over VOTE_MAX_PIXELS are read once, for latency.
    """
    x0, y0, x1, y1 = box
    if (x1 - x0 + 1) * (y1 - y0 + 1) > VOTE_MAX_PIXELS:
        return segment_box(s, box, positives, "drawn")
    step = s.px(BOX_JITTER_MM)
    votes = np.zeros(s.shape, dtype=np.uint8)
    for reading in (box, moved(box, step, s.shape), moved(box, -step, s.shape)):
        votes += segment_box(s, reading, positives, "drawn")
    return largest_component(fill_holes(votes >= 2, box_walls(box, s.shape)))
