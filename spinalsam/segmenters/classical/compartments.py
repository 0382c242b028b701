"""A point mask that holds several pieces: take the cortex-walled compartment around the click.

Why: cancellous bone is barely brighter than a disc, but cortex is clearly brighter than both,
so the end plates wall a body off from its disc even where the bright bone of two bodies has
been joined (bridged discs in sagittal views). The compartment is taken where a disc separates
it from the rest (`disc_side`), where the rest is a thin spill past the end plates (`spilled`),
or where it is better centred and what it leaves is a body of its own; not where it was cut
across continuing cortex (a lobe of one elongated piece, `cut_through_bone`) or from a slab the
image edge cuts off (`cut_by_same_edge`), unless it alone holds that edge (`holds_cut_edge`).
"""

from __future__ import annotations

import numpy as np

from spinalsam.segmenters.classical.joints import split_at_joint
from spinalsam.segmenters.classical.maps import SliceMaps
from spinalsam.segmenters.classical.necks import APPENDAGE_RATIO, BASIN_CELL_MM, neck_region
from spinalsam.segmenters.classical.shape import (
    CENTRED_TIE,
    click_depth,
    max_depth,
    straight,
)
from spinalsam.segmenters.morphology import (
    dilate_disk,
    dilate_square,
    largest_component,
    mask_bounds,
)

WALL_MM = 1.75  # thickness of the cortical wall added back around a compartment
CUT_BAND_MM = 3.5  # band beyond a compartment's wall looked at to tell a disc from bone
CUT_CORTEX_FRACTION = 0.5  # a cut band mostly of cortex runs through one piece, not a disc


def walled_off(s: SliceMaps, score: float, mask: np.ndarray, y: int, x: int) -> np.ndarray:
    """The point path's winning `mask` (centred by `score`), or its cortex-walled compartment
    around the click where that is the clicked piece (see the module docstring)."""
    part = compartment(s, mask, y, x) if score + CENTRED_TIE < 1.0 else None
    if part is None:
        return mask
    side = disc_side(s, mask, part)
    if side is not None:  # a column of bodies: this body, up to the discs' middle lines
        return largest_component(part & side)
    at, depth = click_depth(part, y, x)
    rest = max_depth(mask & ~part)
    if rest < APPENDAGE_RATIO * depth and spilled(s, mask, part):
        return part  # the body, without what leaked past its end plates
    if at / depth < score:
        return mask  # no better centred than the mask it was cut from
    if APPENDAGE_RATIO * rest > depth:
        return part  # far thicker than the lobe around the click: a body it touches
    if rest < APPENDAGE_RATIO * depth:
        return mask  # far thinner than the compartment: its own appendages, which stay
    if at / depth >= score + CENTRED_TIE and holds_cut_edge(mask, part, s.px(WALL_MM)):
        return part  # a piece the image cuts off, and the piece beyond it
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


def disc_side(s: SliceMaps, mask: np.ndarray, part: np.ndarray) -> np.ndarray | None:
    """The side of `mask` that `part` lies on where it meets the rest across a disc, otherwise
    None.

    The bodies of a lumbar column joined through bridged discs are about equally wide, so
    neither centredness nor thickness tells the column from one body. The disc does: a line
    across the mask between the part and what lies beyond its wall band, darker than the end
    plates either side of it by at least the step the bone threshold resolves (floor − soft
    tissue; a vascular channel or trabecular line inside one body is bright on one side only),
    and about straight (`DISC_BOW`; a seam curving around a lobe of one body is no disc).
    """
    x0, y0, x1, y1 = mask_bounds(mask)
    window = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    crop, inside = mask[window], part[window]
    markers = (inside & ~dilate_disk(~inside, s.px(CUT_BAND_MM))).astype(np.int32)
    markers[crop & ~dilate_disk(inside, s.px(CUT_BAND_MM))] = 2
    rise = s.floor - s.soft  # an end plate is a step the bone threshold resolves
    kept = split_at_joint(s, crop, markers, window, rise)
    if kept is None or not straight(kept & dilate_square(crop & ~kept)):
        return None
    out = np.zeros_like(mask)
    out[window] = kept
    return out


def spilled(s: SliceMaps, mask: np.ndarray, part: np.ndarray) -> bool:
    """Whether the thin rest of `mask` beyond the compartment `part` spilled past a body's end
    plates (into its discs and the neighbours' end plates) rather than being part of it.

    Where an end plate has gaps the closing bridges, the mask runs on into the disc beyond it,
    while the compartment, walled by the cortex, stops at its end plate. A spill meets the
    body along its end plates, lines that are about straight (`DISC_BOW`; corners shorter than
    a wall's thickness tell nothing), with no cortex running on across them and not at an
    image edge the piece is cut off by. The thin rests of axial bodies meet their compartment
    along bowed lines and stay.
    """
    contact = part & dilate_square(mask & ~part)
    return (
        not cut_by_same_edge(mask, part)
        and not cut_through_bone(s, mask, part)
        and straight(contact, s.px(WALL_MM))
    )


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


def holds_cut_edge(mask: np.ndarray, part: np.ndarray, sliver: int) -> bool:
    """Whether `part` reaches the image's top or bottom row and the rest of `mask` meets that
    row along less than `sliver` pixels (a wall's thickness).

    A slab the image cuts off meets the edge along its whole width, so a lobe of it shares the
    edge with the slab's rest. A piece beyond a cut-off piece (an articular process the edge
    cuts off, joined through its facet joint to the pillar behind it) touches the edge at most
    with a corner.
    """
    rest = mask & ~part
    return any(part[row].any() and int(rest[row].sum()) < sliver for row in (0, mask.shape[0] - 1))
