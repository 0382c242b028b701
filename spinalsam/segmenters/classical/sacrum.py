"""The sacrum's segments below S1, regained for a click on S1.

Why: the sacrum is one bone whose segments meet at thin remnant lines of their former discs,
cortex-lined like an end plate, so the neck and compartment cuts stop a click's mask at the
first of them and return S1 alone. An intervertebral disc is a band several millimetres wide
and darker than bone, while a remnant line is about a millimetre: the shell of the rest
FUSED_SHELL_MM beyond the cut lies inside a disc, but in the next segment's bone past a remnant
line, so it is mostly bone (FUSED_BONE) only there; or the sacrum's outer wall runs on across
the junction (`cortex_runs_on`), which no disc's rim does. The rest must also meet the piece
along a contact as wide as a neck the basins would join through, reach the image's bottom row
(in a head-up sagittal view the sacrum runs out of the image there) and be at most FUSED_REST
times the clicked piece (more is the column beyond, leaked into through bridged discs).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from spinalsam.segmenters.classical.box import BOX_MARGIN_MM, segment_drawn
from spinalsam.segmenters.classical.compartments import CUT_BAND_MM, WALL_MM
from spinalsam.segmenters.classical.maps import SliceMaps
from spinalsam.segmenters.classical.necks import APPENDAGE_RATIO, NECK_RATIO
from spinalsam.segmenters.classical.shape import grow, max_depth
from spinalsam.segmenters.morphology import (
    EIGHT,
    components_touching,
    dilate_disk,
    mask_bounds,
)

FUSED_SHELL_MM = (1.0, 2.0)  # shell beyond a cut lying inside a disc, past a fused junction's line
FUSED_BONE = 0.5  # past a fused junction that shell is mostly bone; inside a disc it is not
FUSED_REST = 2.0  # a fused rest is at most this × the clicked piece: more is the column beyond
# Estimates ending this near the bottom row stopped at the sacrum's faint lower end, not at a
# disc: too little room is left for a disc and a further vertebra below
BOTTOM_GAP_MM = 8.0


def with_fused_rest(
    s: SliceMaps, mask: np.ndarray, candidates: list[np.ndarray], positives: np.ndarray
) -> np.ndarray:
    """`mask` plus the parts of the estimates' uncut masks (`candidates`) joined to it across
    a fused junction (see the module docstring).

    Where the estimates reach the bottom row, or end less than BOTTOM_GAP_MM above it, a box
    read around the piece and the bone below it (`to_bottom`) is one more candidate: its rest
    is the sacrum as a drawn box finds it, where the estimates' rests fail the tests.
    """
    x, y = (int(v) for v in positives[0])
    if not mask[y, x]:
        return mask
    h, w = mask.shape
    lo, hi = (s.px(mm) for mm in FUSED_SHELL_MM)
    gap = max(hi + 1, s.px(BOTTOM_GAP_MM))
    joined = np.logical_or.reduce([mask, *candidates])
    if grow(mask_bounds(joined), gap, (h, w))[3] < h - 1:
        return mask  # nothing reaches (near) the bottom row
    candidates = [*candidates, to_bottom(s, mask, candidates, positives)]
    joined |= candidates[-1]
    x0, y0, x1, y1 = grow(mask_bounds(joined), hi + 1, (h, w))
    crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    piece = mask[crop]
    touching = dilate_disk(piece, 1)
    shell = dilate_disk(piece, hi) & ~dilate_disk(piece, lo)
    neck = NECK_RATIO * 2.0 * max_depth(piece)
    out = piece.copy()
    for candidate in candidates:
        if not candidate[y, x]:
            continue
        labels, _ = ndi.label(candidate[crop] & ~piece)
        for label in np.unique(labels[touching & (labels > 0)]):
            rest = labels == label
            beyond = rest & shell
            if (
                rest[-1].any()
                and rest.sum() <= FUSED_REST * piece.sum()
                and (piece & dilate_disk(rest, 1)).sum() >= neck
                and (
                    (beyond.any() and float(s.bone[crop][beyond].mean()) >= FUSED_BONE)
                    or cortex_runs_on(s, piece, rest, crop)
                )
            ):
                out |= rest
    fused = mask.copy()
    fused[crop] = out
    return fused


def cortex_runs_on(
    s: SliceMaps, piece: np.ndarray, rest: np.ndarray, crop: tuple[slice, slice]
) -> bool:
    """Whether the outer wall runs on from well inside `piece` to well inside `rest`.

    The sacrum's anterior and posterior walls are one cortex running on past each fused
    junction, while a disc's rim is annulus, not cortex. So cortex along the joined outline
    (within a wall's thickness, WALL_MM) reaching further than CUT_BAND_MM into both sides
    joins one bone's segments. Only the outline counts: the articular processes of a facet
    joint, pressed together inside the joined mask, also join two vertebrae's cortex.
    """
    band = s.px(CUT_BAND_MM)
    joined = piece | rest
    outline = joined & dilate_disk(~joined, s.px(WALL_MM))
    labels, _ = ndi.label(s.cortex[crop] & outline, structure=EIGHT)
    far_rest = labels[rest & ~dilate_disk(piece, band)]
    far_piece = labels[piece & ~dilate_disk(rest, band)]
    return bool(np.intersect1d(far_rest[far_rest > 0], far_piece[far_piece > 0]).size)


def to_bottom(
    s: SliceMaps, piece: np.ndarray, candidates: list[np.ndarray], positives: np.ndarray
) -> np.ndarray:
    """What a user's box around the clicked piece and the bone below it, down to the image's
    bottom row, gives: a further candidate for `with_fused_rest`.

    The box spans the piece and, below it, the columns the estimates through the click reach,
    followed on along the bone map to where that bone ends (the segments below S1 bend back
    from S1's axis). It is read as a drawn one. A reading that adds bone more than twice as
    thick as the piece was clicked on a thin piece beside a body: only the piece is kept. What
    the reading holds beside the piece above the click row (beyond CUT_BAND_MM) is a neighbour,
    so the reading is split from it at the darkest line.
    """
    h, w = piece.shape
    x, y = (int(v) for v in positives[0])
    x0, y0, x1, y1 = mask_bounds(piece)
    below = np.logical_or.reduce([c for c in candidates if c[y, x]] or [piece])
    below[: y1 + 1] = False
    if y1 + 1 < h:  # the bone the estimates' ends and the piece's lowest row run on into
        labels, _ = ndi.label(s.bone[y1 + 1 :])
        seeds = below[y1 + 1 :].copy()
        seeds[0] |= piece[y1]
        below[y1 + 1 :] |= components_touching(labels, seeds)
    if below.any():
        bx0, _, bx1, _ = mask_bounds(below)
        x0, x1 = min(x0, bx0), max(x1, bx1)
    box = grow((x0, y0, x1, h - 1), s.px(BOX_MARGIN_MM), (h, w))
    reading = segment_drawn(s, box, positives[:1]) | piece
    if APPENDAGE_RATIO * max_depth(reading & ~piece) > max_depth(piece):
        return piece  # a thin piece beside a body
    beside = reading & ~dilate_disk(piece, s.px(CUT_BAND_MM))
    beside[y:] = False
    if not beside.any():
        return reading
    x0, y0, x1, y1 = mask_bounds(reading)
    window = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    markers = piece[window].astype(np.int32) + 2 * beside[window]
    out = np.zeros_like(reading)
    out[window] = watershed(-s.smooth[window], markers, mask=reading[window]) == 1
    return out
