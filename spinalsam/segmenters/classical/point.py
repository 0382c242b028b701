"""A click: estimate the object's extent, read it as a box, keep the mask best centred on it.

Why: a point gives no extent, so extents are estimated first (`estimates.py`, from the most
local to the rays) and each is segmented like a box; a user clicks the middle of what they
want, so the mask centred on the click wins (`shape.centredness`). Each mask is also cut at
narrow necks (against a box that joined the clicked piece to a neighbour) and at the joints of
a chain of articular pieces. The winner is then checked for a walled-off compartment
(`compartments.py`), read once more as a drawn box (`redrawn`), and regains the sacrum's fused
segments (`sacrum.py`).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from spinalsam.metrics import dice
from spinalsam.segmenters.classical.box import BOX_MARGIN_MM, segment_box
from spinalsam.segmenters.classical.compartments import WALL_MM, walled_off
from spinalsam.segmenters.classical.estimates import (
    Shells,
    basin_extent,
    blob_extent,
    enclosed_extent,
    ray_extent,
)
from spinalsam.segmenters.classical.joints import cut_chain
from spinalsam.segmenters.classical.maps import BASIN_CLOSE_MM, SliceMaps
from spinalsam.segmenters.classical.necks import BASIN_CELL_MM, neck_region
from spinalsam.segmenters.classical.sacrum import with_fused_rest
from spinalsam.segmenters.classical.shape import (
    CENTRED_TIE,
    box_walls,
    centredness_of,
    grow,
)
from spinalsam.segmenters.morphology import Box, array_sides, box_overlap, mask_bounds

SAME_BOX_OVERLAP = 0.98  # a box overlapping a tried one this much (IoU) gives about the same mask
REDRAWN_AGREE = 0.8  # a redrawn point mask (Dice with the winner) this similar is the same object


def segment_point(s: SliceMaps, positives: np.ndarray) -> np.ndarray:
    """Estimate the extent around the first click; keep the best-centred resulting mask.

    A later estimate replaces the current best only when its mask is clearly better centred
    (CENTRED_TIE). An estimate whose box nearly equals one already tried is skipped: its mask
    would be about the same. The plain cortical shell (the first estimate) is closed by the
    piece's own cortex, so its box's mask is also tried without the neck cut, ahead of the cut
    one (two lobes of one posterior piece meet through a lamina thinner than either), unless
    it is longer than one piece (then it is a chain). The sacral rests are cut from the
    estimates' masks, so a redrawn mask that ran out of its box has them judged against the
    mask before the redraw.
    """
    x, y = (int(v) for v in positives[0])
    margin = s.px(BOX_MARGIN_MM)
    best: tuple[float, np.ndarray] | None = None
    tried: list[Box] = []
    raws: list[np.ndarray] = []  # each estimate's mask before the neck and chain cuts
    shells = Shells(s)
    estimates = (
        partial(shells.extent, necks=False),
        partial(shells.extent, necks=True),
        *(partial(basin_extent, s, close_mm=mm) for mm in BASIN_CLOSE_MM),
        partial(blob_extent, s),
    )
    extents = [partial(enclosed_extent, s, estimate, x, y) for estimate in estimates]
    for rank, find in enumerate((*extents, partial(ray_extent, s, y, x))):
        if best is not None and best[0] + CENTRED_TIE >= 1.0:
            break  # centredness is at most 1: no later estimate could replace this one
        extent = find()
        if extent is None:
            continue
        box = grow(extent, margin, s.shape)
        if any(box_overlap(box, t) >= SAME_BOX_OVERLAP for t in tried):
            continue  # (about) the same box, (about) the same mask: it would not beat the best
        tried.append(box)
        mask = segment_box(s, box, positives)
        raws.append(mask)
        necked = cut_at_necks(s, mask, y, x)
        for reading in (mask, necked) if rank == 0 else (necked,):  # 0: the plain shell
            cut, score = cut_chain(s, reading, y, x)
            if reading is mask and cut is not mask:
                continue  # longer than one piece: a chain, which the neck cut is there for
            if best is None or score > best[0] + CENTRED_TIE:
                best = (score, cut)
    if best is None:
        return np.zeros(s.shape, dtype=bool)
    score, winner = best
    mask = walled_off(s, score, winner, y, x)
    if not mask[y, x]:  # a mask that missed the click gives no box to redraw, no piece to join
        return mask
    if mask is not winner:  # a compartment: its centredness is not the winner's score
        score = centredness_of(mask, y, x)
    redrawn, ran_out = redraw(s, mask, score, positives, y, x)
    if ran_out:  # wider than the estimates saw it: their rests are judged against their piece
        return redrawn | with_fused_rest(s, mask, raws, positives) & ~mask
    return with_fused_rest(s, redrawn, raws, positives)


def cut_at_necks(s: SliceMaps, mask: np.ndarray, y: int, x: int) -> np.ndarray:
    """Keep the clicked part of a mask that a too-large box joined to a neighbour."""
    if not mask[y, x]:
        return mask
    x0, y0, x1, y1 = mask_bounds(mask)
    crop = mask[y0 : y1 + 1, x0 : x1 + 1]
    cut = mask.copy()
    cut[y0 : y1 + 1, x0 : x1 + 1] = crop & neck_region(crop, y - y0, x - x0, s.px(BASIN_CELL_MM))
    return cut


def redraw(
    s: SliceMaps, mask: np.ndarray, score: float, positives: np.ndarray, y: int, x: int
) -> tuple[np.ndarray, bool]:
    """The point path's `mask` (centred on the click by `score`) read again as if the user had
    drawn a box around it, and whether the reading taken ran out of that box.

    The estimated boxes fit a guess at the object, so they are read as a guess must be; a box
    a user draws encloses the object with a margin (BOX_MARGIN_MM), and its reading is the
    better one: neighbours cut off piece by piece, bays filled, the edge settled against the
    cortex nearby. It replaces the mask where it is the same object (REDRAWN_AGREE: a box
    around a wrong mask may take in a neighbour) and about as well centred on the click.

    A reading that runs out to an open side of the box may have followed a neighbour through a
    bridged disc or joint, or be the whole piece where the estimates missed a lobe. A neighbour
    followed in pulls the mask's centre away from the click; a missed lobe, restored, brings it
    back. So such a reading is taken only where it is clearly better centred. A reading that
    meets an image edge the mask does not reach, along more than a wall's thickness (a slab the
    image cuts off, not a corner), has run out of the box as well.
    """
    box = grow(mask_bounds(mask), s.px(BOX_MARGIN_MM), s.shape)
    drawn = segment_box(s, box, positives, "drawn")
    x0, y0, x1, y1 = box
    sides = array_sides(drawn[y0 : y1 + 1, x0 : x1 + 1])
    walls = box_walls(box, s.shape)
    leaks = any(rim.any() for rim, wall in zip(sides, walls, strict=True) if not wall)
    slab = s.px(WALL_MM)  # a neighbour's slab meets the edge wider than a wall, not a corner
    leaks |= any(
        rim.sum() >= slab and not own.any()
        for rim, own in zip(array_sides(drawn), array_sides(mask), strict=True)
    )
    if not drawn[y, x] or (leaks and score + CENTRED_TIE > 1.0):
        return mask, False  # (centredness is at most 1: it could not be clearly better)
    if dice(drawn, mask) < REDRAWN_AGREE:
        return mask, False
    redrawn = centredness_of(drawn, y, x)
    if leaks:  # a neighbour followed in pulls the centre away: only a clear gain shows none
        return (drawn, True) if redrawn >= score + CENTRED_TIE else (mask, False)
    return (drawn, False) if redrawn + CENTRED_TIE >= score else (mask, False)
