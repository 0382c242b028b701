"""Splitting a mask at a joint or disc: the darkest line between two marked parts, kept only
where it is darker than the bone on both sides of it.

Why: a joint space or disc is a thin line darker than the cortex (end plates, joint surfaces)
on both sides even where partial volume bridges it, while a line through one piece has only
its cancellous core to cut through, about as dark as the bone beside the cut. Used for chains
of articular pieces (`chain_piece`) and for columns of bodies (`compartments.disc_side`).
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import watershed

from spinalsam.segmenters.classical.maps import SliceMaps
from spinalsam.segmenters.classical.outline import CORTEX_REACH_MM
from spinalsam.segmenters.classical.shape import (
    SLENDER,
    axis,
    centredness,
    centredness_of,
    click_depth,
)
from spinalsam.segmenters.morphology import dilate_disk, dilate_square, fill_holes, mask_bounds


def split_at_joint(
    s: SliceMaps,
    crop: np.ndarray,
    markers: np.ndarray,
    window: tuple[slice, slice],
    rise: float = 0.0,
) -> np.ndarray | None:
    """The part of `crop` (the mask over `window`) on marker 1's side of the darkest line
    between markers 1 and 2, or None where that line is no joint or disc.

    A watershed on the grey levels splits the mask at the darkest line between the markers. It
    is a joint space or disc only where it is darker than the bone right beside it on both
    sides (within `CORTEX_REACH_MM`), yet brighter than soft tissue. Each side must be at least
    `rise` brighter than the line.
    """
    if markers.max() < 2 or not (markers == 1).any():
        return None
    grey = s.smooth[window]
    kept = watershed(-grey, markers, mask=crop) == 1
    lost = crop & ~kept
    if not lost.any():
        return None
    seam = (kept & dilate_square(lost)) | (lost & dilate_square(kept))
    near = dilate_disk(seam, s.px(CORTEX_REACH_MM)) & ~seam
    if not (kept & near).any() or not (lost & near).any():
        return None
    line = float(grey[seam].mean())
    if not s.floor < line < min(grey[kept & near].mean(), grey[lost & near].mean()) - rise:
        return None  # no joint: no darker line, or one as dark as soft tissue (no bone)
    return kept


def cut_chain(s: SliceMaps, mask: np.ndarray, y: int, x: int) -> tuple[np.ndarray, float]:
    """The clicked piece of a chain (`chain_piece`) or the mask itself, and its centredness:
    the chain test and the score share their measurements."""
    if not mask[y, x]:
        return mask, 0.0
    at, deepest = click_depth(mask, y, x)
    length, direction = axis(mask)
    if length > SLENDER * 2.0 * deepest:
        piece = chain_piece(s, mask, y, x, deepest, direction)
        if piece is not None:
            return piece, centredness_of(piece, y, x)
    return mask, centredness(at, deepest, length)


def chain_piece(
    s: SliceMaps, mask: np.ndarray, y: int, x: int, deepest: float, direction: np.ndarray
) -> np.ndarray | None:
    """The clicked piece of a chain of pieces joined end to end through their joints, or None
    where the mask (longer than one piece, `deepest` thick along `direction`) is no chain.

    Articular pillars meet at facet joints, which the bone map joins into one mask longer than
    one piece can be (`SLENDER`). The mask's ends farther from the click than half the longest
    piece are other pieces; `split_at_joint` splits the chain at the darkest line between the
    click and those ends, where that line is a joint. A single long piece (a spinous process)
    has only its darker cancellous core to cut through and stays whole.
    """
    x0, y0, x1, y1 = mask_bounds(mask)
    crop = mask[y0 : y1 + 1, x0 : x1 + 1]
    ys, xs = np.indices(crop.shape)
    along = (ys + y0 - y) * direction[0] + (xs + x0 - x) * direction[1]
    markers = (crop & (np.hypot(ys + y0 - y, xs + x0 - x) <= deepest)).astype(np.int32)
    reach = SLENDER * deepest
    lo, hi = float(along[crop].min()), float(along[crop].max())
    if lo < -reach:
        markers[crop & (along <= lo + deepest)] = 2
    if hi > reach:
        markers[crop & (along >= hi - deepest)] = 2
    kept = split_at_joint(s, crop, markers, (slice(y0, y1 + 1), slice(x0, x1 + 1)))
    if kept is None:
        return None
    out = np.zeros_like(mask)
    out[y0 : y1 + 1, x0 : x1 + 1] = fill_holes(kept)
    return out
