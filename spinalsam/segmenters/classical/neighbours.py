"""Dropping the bone a neighbour brought into a box through one of its sides.

Why: a box encloses its object with a margin, so the object spans most of the box from every
side it touches, while a neighbour only enters near the side it comes through (PENETRATION).
Box sides on the image border are walls (`Sides`): the image cuts the object off there and
nothing enters through them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.morphology import EIGHT, Box, Sides

PENETRATION = 0.5  # bone entering the box reaching less than this far across it is a neighbour
EDGE_KEEP_FRACTION = 0.3  # keep edge-crossing bone when dropping it would lose more than this


def _reach(bounds: Box, shape: tuple[int, int], walls: Sides) -> float:
    """How far something with these bounds reaches into the box from the open sides it touches,
    as a fraction of the box (the least over those sides); 1.0 when it touches none."""
    x0, y0, x1, y1 = bounds
    h, w = shape
    sides = ((y0 == 0, (y1 + 1) / h), (y1 == h - 1, (h - y0) / h))
    sides += ((x0 == 0, (x1 + 1) / w), (x1 == w - 1, (w - x0) / w))
    depths = [
        depth for (touches, depth), wall in zip(sides, walls, strict=True) if touches and not wall
    ]
    return min(depths, default=1.0)


def entrants(pieces: np.ndarray, walls: Sides) -> np.ndarray:
    """The connected pieces that enter the box through an open side without reaching far in."""
    labels, _ = ndi.label(pieces, structure=EIGHT)
    out = np.zeros_like(pieces)
    for index, (ys, xs) in enumerate(ndi.find_objects(labels), start=1):
        bounds = (xs.start, ys.start, xs.stop - 1, ys.stop - 1)
        if _reach(bounds, pieces.shape, walls) < PENETRATION:
            out[ys, xs] |= labels[ys, xs] == index
    return out


def drop_edge_crossers(bone: np.ndarray, walls: Sides) -> np.ndarray:
    """Bone entering through the box edge belongs to a neighbour, unless it is most of the bone.

    Each piece is judged on its own (`entrants`), so one reaching across the box (the object,
    clipped by a tight box) does not keep a neighbour's endplate at the other side. When
    dropping would still lose most of the bone, it is all kept.
    """
    kept = bone & ~entrants(bone, walls)
    return kept if kept.sum() >= EDGE_KEEP_FRACTION * bone.sum() else bone
