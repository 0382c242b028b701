"""Dropping what a neighbour brought into a box: bone entering through a side, and what a
bridged disc or joint joined to the object, cut off at the darkest seam.

Why: a box encloses its object with a margin, so the object spans most of the box from every
side it touches, while a neighbour only enters near the side it comes through (PENETRATION).
Box sides on the image border are walls (`Sides`): the image cuts the object off there and
nothing enters through them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from spinalsam.segmenters.morphology import (
    EIGHT,
    Box,
    Sides,
    array_sides,
    components_touching,
    dilate_disk,
    fill_holes,
    largest_component,
    mask_bounds,
)

PENETRATION = 0.5  # bone entering the box reaching less than this far across it is a neighbour
EDGE_KEEP_FRACTION = 0.3  # keep edge-crossing bone when dropping it would lose more than this
CORE_MARGIN = 0.25  # the box's middle (without this fraction at each side) holds the object
CUT_SHARE = 0.3  # a cut taking more than this share of the object runs through the object
FAR_RING_PX = 1  # a lobe lies beyond this pixel ring around the bright part (a grid step)


def reach(bounds: Box, shape: tuple[int, int], walls: Sides) -> float:
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
        if reach(bounds, pieces.shape, walls) < PENETRATION:
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


def _neighbours(cut: np.ndarray, walls: Sides, each: bool) -> np.ndarray:
    """What of the bone cut off at a seam is a neighbour's: the pieces entering through an open
    side without reaching far in (`each`), or all of it when, judged as a whole, it does so."""
    if each:
        return entrants(cut, walls)
    if cut.any() and reach(mask_bounds(cut), cut.shape, walls) < PENETRATION:
        return cut
    return np.zeros_like(cut)


def cut_entrants(
    obj: np.ndarray, crop: np.ndarray, walls: Sides, each: bool = False, trim: int = 0
) -> np.ndarray:
    """Cut off what a neighbour brought in through the box edge, along the darkest seam.

    Object pixels on an open box side belong to a neighbour, joined through a bridged disc or
    touching facets (its bone need not cross the edge before closing, so `drop_edge_crossers`
    cannot see it). The box's middle holds the object; the brightest grey level at which the
    middle still connects to those edge pixels is the seam (a disc or joint space is darker
    than the bone either side). Above it the two fall apart, and a watershed on the grey levels
    shares out the darker rest. What is cut off is a neighbour when it stays near the sides it
    came through; one reaching across the box is the object's own shell touching the edge and
    stays. In a box the user drew (`each`) each piece is judged on its own: judged as a whole,
    the neighbours entering at the top and the bottom of a sagittal box span it and none was
    cut. The point path's estimated boxes are judged as a whole: they fit a guess at the
    object, not the object with a margin. A cut that would take more than CUT_SHARE of the
    object runs through the object itself (the sacral alae of an axial slice, each reaching a
    quarter of the box in from its side). A `trim` above zero then drops the seam's rest the
    watershed left with the object (`trim_seam`). In a drawn box a neighbour's dim lobe beyond
    the bright part, which the seam level cannot reach, is dropped first (`drop_far_entrants`).
    """
    entry = np.zeros_like(obj)
    for rim, obj_rim, wall in zip(array_sides(entry), array_sides(obj), walls, strict=True):
        if not wall:
            rim[...] = obj_rim
    if not entry.any():
        return obj
    h, w = obj.shape
    middle = np.zeros_like(obj)
    qy, qx = round(h * CORE_MARGIN), round(w * CORE_MARGIN)
    middle[qy : h - qy, qx : w - qx] = True
    core = obj & middle
    if not core.any():
        return obj
    value = np.where(core, np.inf, crop)
    # The brightest grey level still joining core and entry, by bisection; no path to the
    # entry is brighter than the brightest entry pixel, which bounds the search. Only the
    # object's bounds are labelled (its pixels all lie there, and the box's margin around
    # it is often most of the crop), and the labelling of the level last found too bright
    # is kept: it is the one the seam is cut at, so that level is not labelled twice.
    x0, y0, x1, y1 = mask_bounds(obj)
    window = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    part, value_part = obj[window], value[window]
    entry_part, core_part = entry[window], core[window]
    lo, hi = 0, int(min(np.floor(value[entry].max()), 255.0)) + 1
    labels = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        mid_labels, _ = ndi.label(part & (value_part >= mid))
        if np.isin(mid_labels[entry_part], mid_labels[core_part]).any():
            lo = mid
        else:
            hi, labels = mid, mid_labels
    if labels is None:  # the search's upper bound was never labelled
        labels, _ = ndi.label(part & (value_part >= hi))
    inner, outer = np.zeros_like(obj), np.zeros_like(obj)
    inner[window] = components_touching(labels, core_part)
    outer[window] = (labels > 0) & ~inner[window]
    outer = _neighbours(outer, walls, each)
    if each:
        obj = drop_far_entrants(obj, inner, entry, core, walls)
        inner &= obj
        outer &= obj
    if not outer.any():
        return obj  # nothing, or only the object's own shell, lies beyond the seam
    markers = inner.astype(np.int32) + 2 * outer
    # The flood stays in the object, so its bounds give the same basins for less work.
    kept = np.zeros_like(obj)
    kept[window] = watershed(-crop[window], markers[window], mask=obj[window]) == 1
    kept = fill_holes(kept, walls)
    lost = _neighbours(obj & ~kept, walls, each)
    if lost.sum() > CUT_SHARE * obj.sum():
        return obj
    return trim_seam(fill_holes(obj & ~lost, walls), lost, crop, hi, trim, walls)


def drop_far_entrants(
    obj: np.ndarray, inner: np.ndarray, entry: np.ndarray, core: np.ndarray, walls: Sides
) -> np.ndarray:
    """Drop the dim lobes of `obj` that came in through an open box side beyond its bright part.

    Where a neighbour touches the object across an unresolved joint (L5's inferior articular
    process on S1's superior one), closing and hole filling turn the neighbour's hollow into a
    solid blob; the seam cut then finds a level brighter than the neighbour's dim base, so it
    cuts at most the bright top and leaves the base on the object as a lobe. The lobe lies
    outside the core-connected bright part `inner`, more than FAR_RING_PX from it, touches an
    open side and reaches less than PENETRATION across the box, as a neighbour does. The
    object's own dim parts (the alae and transverse processes of an axial sacral slice) look
    the same from the side, but they run on into the box's middle, which holds the object, so
    a lobe lying just across the ring from the middle's object (`core`) is kept. As for a seam
    cut, dropping more than CUT_SHARE of the object would cut the object itself.
    """
    labels, _ = ndi.label(obj & ~dilate_disk(inner, FAR_RING_PX))
    groups, _ = ndi.label(components_touching(labels, entry), structure=EIGHT)
    beside_core = dilate_disk(core, FAR_RING_PX + 1)
    drop = np.zeros_like(obj)
    for k, window in enumerate(ndi.find_objects(groups), start=1):
        ys, xs = window
        part = groups[window] == k
        if part[beside_core[window]].any():
            continue  # it runs on into the box's middle: the object's own
        if reach((xs.start, ys.start, xs.stop - 1, ys.stop - 1), obj.shape, walls) < PENETRATION:
            drop[window] |= part
    if not drop.any() or drop.sum() > CUT_SHARE * obj.sum():
        return obj
    return largest_component(fill_holes(obj & ~drop, walls))


def trim_seam(
    kept: np.ndarray, lost: np.ndarray, crop: np.ndarray, level: float, trim: int, walls: Sides
) -> np.ndarray:
    """Drop what is left of the seam on the object's side of a cut.

    The watershed that shares out the pixels darker than the seam level hands about half of a
    disc or joint space to the object, yet the object ends at its own endplate cortex, which
    is brighter than the seam. Pixels of the kept part within `trim` of the cut-off neighbour
    that are darker than the seam `level` and joined to the cut through such dark pixels are
    the seam's rest: the cortex stops the flood, so the cancellous inside beyond it stays.
    The largest piece is kept, as a trim can split off a sliver.
    """
    if trim <= 0 or not lost.any():
        return kept
    dark = kept & dilate_disk(lost, trim) & (crop < level)
    labels, _ = ndi.label(dark)
    drop = components_touching(labels, dilate_disk(lost, 1) & dark)
    return largest_component(fill_holes(kept & ~drop, walls))
