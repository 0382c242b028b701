"""A point mask that holds several pieces: take the cortex-walled compartment around the click.

Why: cancellous bone is barely brighter than a disc, but cortex is clearly brighter than both,
so the end plates wall a body off from its disc even where the bright bone of two bodies has
been joined (bridged discs in sagittal views). The compartment is taken where it is better
centred on the click than the whole mask and what it leaves is a body of its own; not where it
was cut across continuing cortex (a lobe of one elongated piece, `cut_through_bone`) or from a
slab the image edge cuts off (`cut_by_same_edge`).
"""

from __future__ import annotations

import numpy as np

from spinalsam.segmenters.classical.maps import SliceMaps
from spinalsam.segmenters.classical.necks import APPENDAGE_RATIO, BASIN_CELL_MM, neck_region
from spinalsam.segmenters.classical.shape import CENTRED_TIE, click_depth, max_depth
from spinalsam.segmenters.morphology import dilate_disk, mask_bounds

WALL_MM = 1.75  # thickness of the cortical wall added back around a compartment
CUT_BAND_MM = 3.5  # band beyond a compartment's wall looked at to tell a disc from bone
CUT_CORTEX_FRACTION = 0.5  # a cut band mostly of cortex runs through one piece, not a disc


def walled_off(s: SliceMaps, score: float, mask: np.ndarray, y: int, x: int) -> np.ndarray:
    """The point path's winning `mask` (centred by `score`), or its cortex-walled compartment
    around the click where that is the clicked piece (see the module docstring)."""
    part = compartment(s, mask, y, x) if score + CENTRED_TIE < 1.0 else None
    if part is None:
        return mask
    at, depth = click_depth(part, y, x)
    rest = max_depth(mask & ~part)
    if at / depth < score:
        return mask  # no better centred than the mask it was cut from
    if APPENDAGE_RATIO * rest > depth:
        return part  # far thicker than the lobe around the click: a body it touches
    if rest < APPENDAGE_RATIO * depth:
        return mask  # far thinner than the compartment: its own appendages, which stay
    # Otherwise the cut must not run through continuing cortex. A piece the image cuts
    # off, with the compartment and the rest at the same cut edge, is thin because of that
    # edge: its walls there tell no piece from its rest.
    if not cut_by_same_edge(mask, part) and not cut_through_bone(s, mask, part):
        return part
    return mask


def compartment(s: SliceMaps, mask: np.ndarray, y: int, x: int) -> np.ndarray | None:
    """The cortex-walled compartment of `mask` around the click, with its wall.

    The inside of the mask without the cortex splits at the walls (narrow gaps in them are
    necks); the click's basin plus a wall's thickness is the body. None where the click is on
    the cortex or the compartment is as dark as soft tissue (a canal or a disc).
    """
    if not mask[y, x]:
        return None
    x0, y0, x1, y1 = mask_bounds(mask)
    crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    inner = mask[crop] & ~s.cortex[crop]
    if not inner[y - y0, x - x0]:
        return None
    region = neck_region(inner, y - y0, x - x0, s.px(BASIN_CELL_MM))
    if float(s.smooth[crop][region].mean()) <= s.floor:
        return None  # as dark as soft tissue: a canal or a disc, not cancellous bone
    out = np.zeros_like(mask)
    out[crop] = dilate_disk(region, s.px(WALL_MM)) & mask[crop]
    return out


def cut_through_bone(s: SliceMaps, mask: np.ndarray, part: np.ndarray) -> bool:
    """Whether `part` was cut from `mask` across continuing cortex rather than a disc.

    Two bodies joined through a bridged disc meet across the disc, which is no cortex; a lobe
    of one piece meets the rest of it where the bright bone runs on. So the band of `mask` just
    beyond `part` is mostly cortex only in the second case.
    """
    beyond = mask & dilate_disk(part, s.px(CUT_BAND_MM)) & ~part
    return bool(beyond.any()) and float(s.cortex[beyond].mean()) > CUT_CORTEX_FRACTION


def cut_by_same_edge(mask: np.ndarray, part: np.ndarray) -> bool:
    """Whether `part` and the mask it was cut from both reach the image's top or bottom row.

    A vertebra cut off by the image edge is a thin slab there, and the cortex of its cut-off
    end plates walls off lobes as thick as the whole slab, so the compartment test cannot tell
    a lobe from a neighbour unless the rest is far thicker.
    """
    return any(mask[row].any() and part[row].any() for row in (0, mask.shape[0] - 1))
