"""A point mask that holds several pieces: take the cortex-walled compartment around the click.

Why: cancellous bone is barely brighter than a disc, but cortex is clearly brighter than both,
so the end plates wall a body off from its disc even where the bright bone of two bodies has
been joined (bridged discs in sagittal views). The compartment is taken where it is better
centred on the click than the whole mask.
"""

from __future__ import annotations

import numpy as np

from spinalsam.segmenters.classical.maps import SliceMaps
from spinalsam.segmenters.classical.necks import BASIN_CELL_MM, neck_region
from spinalsam.segmenters.classical.shape import CENTRED_TIE, centredness_of
from spinalsam.segmenters.morphology import dilate_disk, mask_bounds

WALL_MM = 1.75  # thickness of the cortical wall added back around a compartment


def walled_off(s: SliceMaps, score: float, mask: np.ndarray, y: int, x: int) -> np.ndarray:
    """The point path's winning `mask` (centred by `score`), or its cortex-walled compartment
    around the click where the click is better centred in that."""
    part = compartment(s, mask, y, x) if score + CENTRED_TIE < 1.0 else None
    if part is None or centredness_of(part, y, x) < score:
        return mask
    return part


def compartment(s: SliceMaps, mask: np.ndarray, y: int, x: int) -> np.ndarray | None:
    """The cortex-walled compartment of `mask` around the click, with its wall.

    The inside of the mask without the cortex splits at the walls (narrow gaps in them are
    necks); the click's basin plus a wall's thickness is the body. None where the click is on
    the cortex.
    """
    if not mask[y, x]:
        return None
    x0, y0, x1, y1 = mask_bounds(mask)
    crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    inner = mask[crop] & ~s.cortex[crop]
    if not inner[y - y0, x - x0]:
        return None
    region = neck_region(inner, y - y0, x - x0, s.px(BASIN_CELL_MM))
    out = np.zeros_like(mask)
    out[crop] = dilate_disk(region, s.px(WALL_MM)) & mask[crop]
    return out
