"""The embedded default segmenter: classical image processing, no weights, runs anywhere.

Why it works the way it does: in a bone window a vertebra is a bright cortical shell around
cancellous bone that is barely brighter than the surrounding soft tissue. So the mask is built
from the *shell*: threshold the bright bone, close small gaps, fill the enclosed interior.

* Box: threshold at the box's mean grey level (never below the soft-tissue level), drop bone
  that enters through the box edge without reaching far in (a neighbour, since a box encloses
  its object), close, fill, keep the object, cut off at the darkest seam what still reaches the
  box edge (a neighbour joined through a bridged disc or facet) and trim the seam's dark rest
  back to the object's own cortex, drop dim pieces a neighbour brought in through a side, fill
  the hollow left where the cortex has a gap wider than the closing (an enclosed bay brighter
  than soft tissue; fatty marrow in a sacrum the image cuts off), then move the outline in to
  the cortex's half-height edge (on the unsmoothed slice; for a drawn box, against the cortex
  nearby). Box sides on the image border are walls instead: the image cuts the object off
  there, nothing enters. A constant margin at the image edge (a render's black frame or
  padding) is first replaced by the content next to it, so that an object the image cuts off
  reaches the border and those walls. A drawn box that is not too large is read three times
  (as drawn, a millimetre looser and tighter) and the majority kept: a user's box is never
  exact, and a leak that opens for one exact box only is voted out.
* Point: a point gives no extent, so the extent is estimated first and then segmented like a
  box. The estimates are the filled, unclosed cortical shell under the click (pieces that
  only meet across a dark joint space are separate shells), as is and cut at narrow necks;
  the distance-map watershed basin under the click, grown by basins joined through wide
  necks (it cuts a vertebra from neighbours touching it through narrow bridges such as facet
  joints), at two gentle closings of the bone map; and the whole filled bone blob under the
  click; and the bounds where rays from the click leave the bone through its cortex (small
  marrow pockets the cortex encloses count as bone, so rays cross a thin piece's spongy
  core). Each result is cut at narrow necks again (the plain shell's is also tried uncut:
  two lobes of one posterior piece meet through a lamina thinner than either), and a result
  longer than one piece can be (a chain of articular pieces) at its joint lines; the one
  centred on the click wins, since a user clicks the middle of what they want. When even
  that one is off-centre, it may hold several bodies joined through bridged discs (sagittal
  views): its cortex-walled compartment around the click is taken instead when a disc
  separates it from the rest (a straight line across the mask, darker than the end plates
  either side by a step the bone threshold resolves; the compartment then ends at the disc's
  middle line), or when it is better centred, is brighter than soft tissue (not a canal or
  disc) and what it leaves is as thick as a body, or when what it leaves is a thin spill
  meeting it along straight end plates with no cortex running on across them (`_spilled`).
  A compartment cut off across continuing cortex rather than a disc is a lobe of one
  elongated piece (an articular or spinous process) and is not taken, unless what it leaves
  is a far thicker body; nor is one that reaches the same image edge as its piece (a slab the
  image cuts off), unless it alone holds that edge (`_holds_cut_edge`: a process the edge
  cuts off, joined through a facet joint to the pillar behind it).
  The result's bounds plus a user's margin are then read once as a drawn box, which replaces
  it where that reading agrees with it and is as well centred, or, where the reading ran out
  of the box (a missed lobe, or a neighbour followed in), clearly better centred (`_redrawn`).
  Last, the sacrum's segments below S1 are added: a rest of the uncut estimates, or of a box
  read around the piece and the bone below it (`_to_bottom`), that runs on to (nearly) the
  bottom image row across a fused junction (bone just beyond the cut, or an outer cortex that
  runs on across it; a disc is neither) and touches the piece along a wide contact.
* Negative points carve out the region around them; `mask_input` (a neighbouring slice's
  mask, from propagation) supplies the box and bounds the result, which is empty when no
  bone lies near it, so propagation can tell that the object has ended. Thin cortex near it
  that is joined to the result is added back: on coarse pixels an arch is one pixel of
  partial-volume cortex that the edge settling would otherwise drop (`_with_attached_arch`).

HU input is mapped through a fixed bone window first, so 8-bit renders and HU slices go
through the same steps. Lengths are physical (mm) where spacing is known and converted at
NOMINAL_MM_PER_PX otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from spinalsam.metrics import dice
from spinalsam.segmenters.base import BackendInfo, Prompt, SegmenterError, SliceImage
from spinalsam.segmenters.morphology import (
    EIGHT,
    Box,
    Sides,
    array_sides,
    box_overlap,
    close_disk,
    components_touching,
    convex_hull,
    dilate_disk,
    dilate_square,
    erode_cross,
    fill_holes,
    largest_component,
    mask_bounds,
    regional_h_maxima,
    small_holes,
)

__all__ = ["BONE_WINDOW_HU", "ClassicalSegmenter", "bone_window"]

BONE_WINDOW_HU = (-700.0, 1300.0)  # wide bone window: soft tissue mid-grey, cortex near white
# Lengths are physical. For images without spacing (8-bit renders) they are converted at
# NOMINAL_MM_PER_PX, the scale of the zoomed spine renders this was developed on
# (a lumbar body of about 45 mm spans about 180 px there).
NOMINAL_MM_PER_PX = 0.25
SMOOTH_MM = 0.25  # denoise before thresholding, about one pixel
CLOSE_MM = 1.75  # gaps in the cortical shell up to twice this are bridged
BASIN_CLOSE_MM = (0.25, 0.75)  # gentler closings for extent estimates that keep discs open
WALL_MM = 1.75  # thickness of the cortical wall added back around a compartment
CORTEX_FRACTION = 0.35  # cortex: brighter than soft tissue by this fraction of the contrast
LOCAL_WINDOW_MM = 25.0  # the neighbourhood of the adaptive bone threshold: half a vertebra
SEARCH_MM = 37.0  # initial half-size of the window searched around a click
EDGE_BAND_MM = 0.75  # outer band in which the outline may move inwards to the cortex edge
CORTEX_REACH_MM = 1.5  # an edge pixel's height is measured against the cortex this near it
NEGATIVE_MM = 2.5  # radius carved around a negative point
MIN_BOX_PX = 4  # a box narrower than this (in either direction) cannot hold a vertebra
BOX_MARGIN_MM = 1.25  # margin added around an estimated extent, as a user draws a box
SOFT_FLOOR = 0.05  # bone threshold floor: soft tissue + this fraction of the bone contrast
PENETRATION = 0.5  # bone entering the box reaching less than this far across it is a neighbour
BAY_MOUTH = 0.4  # a bay of the hull is enclosed when its mouth is shorter than this × its sides
CUT_BAY_MOUTH = 0.6  # the same, in a piece the image border cuts (a sacrum): its thin walls gape
CORE_MARGIN = 0.25  # the box's middle (without this fraction at each side) holds the object
CUT_SHARE = 0.3  # a cut taking more than this share of the object runs through the object
FAR_RING_PX = 1  # a lobe lies beyond this pixel ring around the bright part (a grid step)
SEAM_MM = 1.0  # a joint space is 1–2 mm wide: on coarser pixels it is no seam one can follow
BOX_JITTER_MM = 1.0  # a drawn box is read again with its sides this much further out and in
# Boxes up to this many pixels are read three times: together no dearer than one reading of the
# largest box a whole vertebra takes on a 512² slice (≈ 120 000 px), so the vote stays within
# the latency budget; larger boxes are read once.
VOTE_MAX_PIXELS = 40_000
SEAM_TRIM_MM = 2.0  # how far from a cut-off neighbour the seam's dark rest is looked for
EDGE_KEEP_FRACTION = 0.3  # keep edge-crossing bone when dropping it would lose more than this
WATERSHED_H_PX = 2.0  # distance-map maxima shallower than this are noise, not separate blobs
NECK_RATIO = 0.5  # basins join when their neck is at least this fraction of the thinner one
APPENDAGE_RATIO = 0.5  # a basin this much thinner than the clicked one counts as an appendage
GROWTH_ROUNDS = 2  # how many basins away from the clicked one may be attached
BASIN_CELL_MM = 0.75  # grid on which the distance-map watershed runs
CUT_BAND_MM = 3.5  # band beyond a compartment's wall looked at to tell a disc from bone
CUT_CORTEX_FRACTION = 0.5  # a cut band mostly of cortex runs through one piece, not a disc
SAME_BOX_OVERLAP = 0.98  # a box overlapping a tried one this much (IoU) gives about the same mask
RAY_COUNT = 64  # directions cast from a click to find where the clicked bone ends
RAY_MEDIAN = 5  # running median over this many neighbouring rays: drops a few leaking rays
RAY_REACH_MM = 150.0  # longest ray: beyond a whole sacrum, the largest piece in a slice
CENTRED_TIE = 0.05  # the first estimate wins unless a later one is clearly better centred
RAY_HOLE_MM = 3.0  # a hole in the cortex up to this square's area is marrow inside a thin piece
SLENDER = 5.0  # a piece's length is at most this × its thickness; longer masks chain pieces
# A disc's seam is about straight (end plates are flat, a wedged disc's too): its spread across
# its own line is at most this fraction of its spread along it. A seam curving around a lobe
# of one body is not (sagittal discs ≤ 0.16; lobes in axial bodies ≥ 0.24).
DISC_BOW = 0.2
FUSED_SHELL_MM = (1.0, 2.0)  # shell beyond a cut lying inside a disc, past a fused junction's line
FUSED_BONE = 0.5  # past a fused junction that shell is mostly bone; inside a disc it is not
FUSED_REST = 2.0  # a fused rest is at most this × the clicked piece: more is the column beyond
# Estimates ending this near the bottom row stopped at the sacrum's faint lower end, not at a
# disc: too little room is left for a disc and a further vertebra below
BOTTOM_GAP_MM = 8.0
REDRAWN_AGREE = 0.8  # a redrawn point mask (Dice with the winner) this similar is the same object


def bone_window(pixels: np.ndarray) -> np.ndarray:
    """HU → uint8 through the fixed bone window (also used for HU slices' display fallback)."""
    lo, hi = BONE_WINDOW_HU
    scaled = (np.asarray(pixels, dtype=np.float32) - lo) / (hi - lo)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def _unframed(grey: np.ndarray) -> np.ndarray:
    """The slice with constant rows and columns at its edges replaced by the nearest content.

    Renders often carry a black frame of a pixel or two, or are padded to a wider canvas. An
    object the image cuts off then ends at that margin instead of the image border: the box
    sides on the border are no walls for it (its open inside is not filled) and the dark step
    looks like an edge to settle on. The margin carries no image, so the content next to it
    is the best guess of what lies under it. Returns `grey` itself when there is no margin.
    """
    flat_rows = np.ptp(grey, axis=1) == 0
    flat_cols = np.ptp(grey, axis=0) == 0
    if flat_rows.all() or not (flat_rows[[0, -1]].any() or flat_cols[[0, -1]].any()):
        return grey
    top, bottom = int(np.argmin(flat_rows)), int(np.argmin(flat_rows[::-1]))
    left, right = int(np.argmin(flat_cols)), int(np.argmin(flat_cols[::-1]))
    h, w = grey.shape
    content = grey[top : h - bottom, left : w - right]
    return np.pad(content, ((top, bottom), (left, right)), mode="edge")


# Who made a box: the user, the point path's extent estimate, or propagation's previous mask.
BoxOrigin = Literal["drawn", "estimated", "prior"]
_Estimate = Callable[[tuple[slice, slice], int, int], "np.ndarray | None"]


def _reach(bounds: Box, shape: tuple[int, int], walls: Sides) -> float:
    """How far something with these bounds reaches into the box from the open sides it touches,
    as a fraction of the box (the least over those sides); 1.0 when it touches none."""
    x0, y0, x1, y1 = bounds
    h, w = shape
    sides = ((y0 == 0, (y1 + 1) / h), (y1 == h - 1, (h - y0) / h))
    sides += ((x0 == 0, (x1 + 1) / w), (x1 == w - 1, (w - x0) / w))
    reach = [
        depth for (touches, depth), wall in zip(sides, walls, strict=True) if touches and not wall
    ]
    return min(reach, default=1.0)


def _entrants(pieces: np.ndarray, walls: Sides) -> np.ndarray:
    """The connected pieces that enter the box through an open side without reaching far in.

    A box is drawn around its object, so the object spans most of the box from every side it
    touches, while a neighbour only enters near the side it comes through.
    """
    labels, _ = ndi.label(pieces, structure=EIGHT)
    out = np.zeros_like(pieces)
    for index, (ys, xs) in enumerate(ndi.find_objects(labels), start=1):
        bounds = (xs.start, ys.start, xs.stop - 1, ys.stop - 1)
        if _reach(bounds, pieces.shape, walls) < PENETRATION:
            out[ys, xs] |= labels[ys, xs] == index
    return out


def _neighbours(cut: np.ndarray, walls: Sides, each: bool) -> np.ndarray:
    """What of the bone cut off at a seam is a neighbour's: the pieces entering through an open
    side without reaching far in (`each`), or all of it when, judged as a whole, it does so."""
    if each:
        return _entrants(cut, walls)
    if cut.any() and _reach(mask_bounds(cut), cut.shape, walls) < PENETRATION:
        return cut
    return np.zeros_like(cut)


def _fill_bays(
    obj: np.ndarray, crop: np.ndarray, soft: float, margin: float, walls: Sides
) -> np.ndarray:
    """Fill the object's enclosed bays whose inside is, on average, brighter than soft tissue.

    A body whose cortex has a gap wider than the closing (often the thin posterior wall)
    stays a C-shaped rim after the fill: its cancellous inside is darker than the box's mean
    grey level (the bone threshold), yet brighter than soft tissue. Such a hollow is a
    bay of the convex hull whose mouth is narrow beside the walls around it; the shallow
    waist of a body or the notch between processes opens wide to the hull's outline and is
    left alone, and a canal or foramen is as dark as soft tissue and is not taken. Once a
    neighbour's articular process is cut off, the notch between a body and its own pedicle
    remains, closed only by the hull's chord: its mouth is short beside its long sides, so
    BAY_MOUTH must stay well under one half (sagittal box 0.8857 → 0.8875 at 0.4).

    The inside counts as bone when brighter than `soft` + `margin` (the bone floor). In a
    piece the image border cuts (`walls`), the sacrum at the foot of a sagittal slice, the
    bar is mirrored to `soft` − `margin`: the sacral bodies' marrow is fatty and reads within
    the soft-tissue band, neither brighter nor clearly darker (S2's hollow: 1–2 levels under
    soft tissue), while a canal or foramen, of fat and fluid, lies well below it (6–8). A whole
    vertebra's canal reads within that band too, so the floor stays for pieces the border does
    not cut (the mirrored bar everywhere: axial box 0.9412 → 0.9320). Sagittal box
    0.8951 → 0.8968. The sacrum's posterior wall is a faint line with long gaps, so its marrow
    hollow opens to the hull over a longer mouth than a lumbar body's: in a cut piece a mouth
    up to CUT_BAY_MOUTH × the sides still encloses (tuning half 0.9000 → 0.9015, flat from
    0.55 to 0.7; held-out half 0.8936 → 0.8941; axial box unchanged). A wide-open notch of a
    cut piece is not taken: at 1.0 and above, border posterior pieces fill their notches
    (tuning half 0.9001 and 0.8988).
    """
    hull = convex_hull(obj)
    bays, n = ndi.label(hull & ~obj)
    if n == 0:
        return obj
    mouth = dilate_disk(~np.pad(hull, 1), 1)[1:-1, 1:-1]  # bay pixels on the hull's outline
    mouths = np.bincount(bays[mouth], minlength=n + 1)
    sides = np.bincount(bays[dilate_disk(obj, 1)], minlength=n + 1)
    area = np.maximum(np.bincount(bays.ravel(), minlength=n + 1), 1)
    grey = np.bincount(bays.ravel(), crop.ravel(), minlength=n + 1) / area
    cut = any(wall and rim.any() for rim, wall in zip(array_sides(obj), walls, strict=True))
    mouth_share = CUT_BAY_MOUTH if cut else BAY_MOUTH
    filled = (mouths < mouth_share * sides) & (grey > soft + (-margin if cut else margin))
    filled[0] = False
    return fill_holes(obj | filled[bays], walls)


def _trim_seam(
    kept: np.ndarray, lost: np.ndarray, crop: np.ndarray, level: float, trim: int, walls: Sides
) -> np.ndarray:
    """Drop what is left of the seam on the object's side of a cut.

    The watershed that shares out the pixels darker than the seam level hands about half of a
    disc or joint space to the object, yet the object ends at its own endplate cortex, which
    is brighter than the seam. Pixels of the kept part within `trim` of the cut-off neighbour
    that are darker than the seam `level` and joined to the cut through such dark pixels are
    the seam's rest: the cortex stops the flood, so the cancellous inside beyond it stays.
    The largest piece is kept, as a trim can split off a sliver. Drawn boxes only (see
    `_segment_box`): sagittal box 0.8932 → 0.8951 at SEAM_TRIM_MM = 2 (1: +0.0014, 3: +0.0012
    on the tuning half), mostly the sacra whose S1 kept the lower half of the L5/S1 disc.
    """
    if trim <= 0 or not lost.any():
        return kept
    dark = kept & dilate_disk(lost, trim) & (crop < level)
    labels, _ = ndi.label(dark)
    drop = components_touching(labels, dilate_disk(lost, 1) & dark)
    return largest_component(fill_holes(kept & ~drop, walls))


def _moved(box: Box, step: int, shape: tuple[int, int]) -> Box:
    """The box with its sides moved `step` pixels outwards (inwards when negative), clipped.

    Sides on the image border stay there (the image cuts the object off); a box that would
    shrink below twice the smallest box `_box` accepts is left as it is.
    """
    h, w = shape
    x0, y0, x1, y1 = box
    moved = (
        x0 if x0 == 0 else max(0, x0 - step),
        y0 if y0 == 0 else max(0, y0 - step),
        x1 if x1 == w - 1 else min(w - 1, x1 + step),
        y1 if y1 == h - 1 else min(h - 1, y1 + step),
    )
    too_small = min(moved[2] - moved[0], moved[3] - moved[1]) < 2 * MIN_BOX_PX
    return box if too_small else moved


def _drop_far_entrants(
    obj: np.ndarray, inner: np.ndarray, entry: np.ndarray, core: np.ndarray, walls: Sides
) -> np.ndarray:
    """Drop the dim lobes of `obj` that came in through an open box side beyond its bright part.

    Where a neighbour touches the object across an unresolved joint (L5's inferior articular
    process on S1's superior one), closing and hole filling turn the neighbour's hollow into a
    solid blob; the seam cut (`_cut_entrants`) then finds a level brighter than the
    neighbour's dim base, so it cuts at most the bright top and leaves the base (about soft
    tissue grey) on the object as a lobe. The lobe lies outside the core-connected bright
    part `inner`, more than FAR_RING_PX from it, touches an open side and reaches less than
    PENETRATION across the box, as a neighbour does (sagittal box, tuning half 0.9015 →
    0.9034 unguarded, nearly all of it sacra). The object's own dim parts (the alae and
    transverse processes of an axial sacral slice in a box 450 px wide) look the same from
    the side, and dropping them cost axial box 0.94 → 0.938 (one slice 0.795 → 0.665); but
    they run on into the box's middle, which holds the object, so a lobe lying just across
    the ring from the middle's object (`core`) is kept (axial box 0.9412 → 0.9413; tuning
    half 0.9030, held-out half 0.8941 → 0.8944). As for a seam cut, dropping more than
    CUT_SHARE of the object would cut the object itself.
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
        if _reach((xs.start, ys.start, xs.stop - 1, ys.stop - 1), obj.shape, walls) < PENETRATION:
            drop[window] |= part
    if not drop.any() or drop.sum() > CUT_SHARE * obj.sum():
        return obj
    return largest_component(fill_holes(obj & ~drop, walls))


def _box_walls(box: Box, shape: tuple[int, int]) -> Sides:
    """The sides of a box that lie on the image border, where the image cuts the object off
    (see `fill_holes`)."""
    x0, y0, x1, y1 = box
    h, w = shape
    return y0 == 0, y1 == h - 1, x0 == 0, x1 == w - 1


def _border_walls(window: tuple[slice, slice], shape: tuple[int, int]) -> Sides:
    """The sides of a search window that lie on the image border."""
    rows, cols = window
    return _box_walls((cols.start, rows.start, cols.stop - 1, rows.stop - 1), shape)


def _component_at(labels: np.ndarray, y: int, x: int) -> int:
    """Label under (y, x), or of the nearest labelled pixel when the click misses every blob."""
    if labels[y, x]:
        return int(labels[y, x])
    _, (iy, ix) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    return int(labels[iy[y, x], ix[y, x]])


def _crop_depth(mask: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Distance map of a non-empty mask over its bounding box plus one background pixel, and
    the offset of that crop: identical to the full map there, at a fraction of the cost."""
    x0, y0, x1, y1 = mask_bounds(mask)
    return ndi.distance_transform_edt(np.pad(mask[y0 : y1 + 1, x0 : x1 + 1], 1)), y0 - 1, x0 - 1


def _max_depth(mask: np.ndarray) -> float:
    """Half-thickness of the mask's thickest part (0 for an empty mask)."""
    return float(_crop_depth(mask)[0].max()) if mask.any() else 0.0


def _click_depth(mask: np.ndarray, y: int, x: int) -> tuple[float, float]:
    """How deep inside a non-empty mask the click sits (0 outside it), and its deepest point's
    depth: one distance map for both a mask's centredness and its thickness."""
    depth, oy, ox = _crop_depth(mask)
    return float(depth[y - oy, x - ox]) if mask[y, x] else 0.0, float(depth.max())


def _axis(mask: np.ndarray) -> tuple[float, np.ndarray]:
    """Length of a non-empty mask along its long axis, and that axis (unit vector, (y, x)).

    The length is that of a uniform bar with the same variance along the axis."""
    x0, y0, x1, y1 = mask_bounds(mask)
    ys, xs = np.nonzero(mask[y0 : y1 + 1, x0 : x1 + 1])  # the spread does not depend on offset
    values, vectors = np.linalg.eigh(np.cov(np.stack([ys, xs]).astype(np.float64), bias=True))
    return 2.0 * float(np.sqrt(3.0 * max(values[-1], 0.0))), vectors[:, -1]


def _centredness(at: float, deepest: float, length: float) -> float:
    """How deep inside the mask the click sits, relative to the mask's deepest point (0..1),
    discounted for a mask longer than one piece can be.

    Along a chain of thin pieces joined end to end (articular pillars through their facet
    joints) the mask is evenly thick, so the click sits about as deep as its deepest point
    wherever it is, and depth alone rates the chain as well centred as the single piece. A
    single piece, though, is at most `SLENDER` times as long as it is thick, so a longer mask
    loses score in proportion to its excess length. Takes the click's depth, the deepest
    point's and the length along the axis (`_click_depth`, `_axis`), which the chain cut
    measures anyway.
    """
    longest = SLENDER * 2.0 * deepest
    return at / deepest * (1.0 if length <= longest else longest / length)


def _straight(line: np.ndarray, shortest: int = 3) -> bool:
    """Whether each 8-connected piece of `line` with at least `shortest` pixels lies about
    along a straight line (`DISC_BOW`)."""
    labels, _ = ndi.label(line, structure=EIGHT)
    for window in ndi.find_objects(labels):
        ys, xs = np.nonzero(line[window])
        if len(ys) < shortest:
            continue
        across, along = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64)))
        if across > DISC_BOW**2 * along:
            return False
    return True


def _cut_by_same_edge(mask: np.ndarray, part: np.ndarray) -> bool:
    """Whether `part` and the mask it was cut from both reach the image's top or bottom row.

    A vertebra cut off by the image edge is a thin slab there, and the cortex of its cut-off
    end plates or vascular channels walls off lobes as thick as the whole slab, so the
    compartment test cannot tell a lobe from a neighbour unless the rest is far thicker.
    """
    return any(mask[row].any() and part[row].any() for row in (0, mask.shape[0] - 1))


def _holds_cut_edge(mask: np.ndarray, part: np.ndarray, sliver: int) -> bool:
    """Whether `part` reaches the image's top or bottom row and the rest of `mask` meets that
    row along less than `sliver` pixels (a wall's thickness).

    A slab the image cuts off meets the edge along its whole width, so a lobe of it shares
    the edge with the slab's rest (`_cut_by_same_edge`). A piece beyond a cut-off piece lies
    behind it, away from the edge, touching the edge at most with a corner.
    """
    rest = mask & ~part
    return any(part[row].any() and int(rest[row].sum()) < sliver for row in (0, mask.shape[0] - 1))


def _neck_region(filled: np.ndarray, y: int, x: int, step: int) -> np.ndarray:
    """The distance-map basin under (y, x), grown by basins joined through wide-enough necks.

    Touching objects meet through narrow bridges, which the distance map's watershed cuts;
    a neighbouring basin joins when the neck is at least NECK_RATIO of the thinner side's
    thickness, so a vertebra's own lobes, pedicles and processes stay attached. Runs on a grid
    coarsened by `step`, since only the region's outline at that scale matters.
    """
    shape = filled.shape
    coarse = filled[::step, ::step]
    if not coarse.any():  # smaller than one grid cell: nothing to split
        return filled
    y, x = min(y // step, coarse.shape[0] - 1), min(x // step, coarse.shape[1] - 1)
    if not coarse[y, x]:  # the basin nearest to the click may lie in any piece
        region = _basins_joined(coarse, y, x, step)
    else:  # basins never grow across the background: only the clicked piece's are needed
        # (cropped to its bounds and a background pixel around them where the grid goes on,
        # which keeps their distance map), not all of the search window's
        pieces, _ = ndi.label(coarse, structure=EIGHT)
        x0, y0, x1, y1 = mask_bounds(pieces == pieces[y, x])
        y0, x0 = max(y0 - 1, 0), max(x0 - 1, 0)
        crop = (slice(y0, y1 + 2), slice(x0, x1 + 2))
        region = np.zeros_like(coarse)
        region[crop] = _basins_joined(pieces[crop] == pieces[y, x], y - y0, x - x0, step)
    fine = np.repeat(np.repeat(region, step, axis=0), step, axis=1)
    return fine[: shape[0], : shape[1]]


def _basins_joined(coarse: np.ndarray, y: int, x: int, step: int) -> np.ndarray:
    """`_neck_region`'s growth from the basin under (y, x), on its grid of `step` pixels."""
    depth = ndi.distance_transform_edt(coarse)
    markers, _ = ndi.label(regional_h_maxima(depth, WATERSHED_H_PX / step))
    basins = watershed(-depth, markers, mask=coarse)
    seed = basins == _component_at(basins, y, x)
    seed_depth = float(depth[seed].max())
    peaks = np.zeros(int(basins.max()) + 1)  # deepest point per basin, without a sort
    np.maximum.at(peaks, basins.ravel(), depth.ravel())
    region = seed
    for _ in range(GROWTH_ROUNDS):
        rim = dilate_square(region) & ~region & (basins > 0)
        grown = region.copy()
        for b in np.unique(basins[rim]):
            neck = float(depth[rim & (basins == b)].max())
            if neck > NECK_RATIO * min(peaks[b], seed_depth) or (
                peaks[b] < APPENDAGE_RATIO * seed_depth and neck > NECK_RATIO * peaks[b]
            ):
                grown |= basins == b
        if grown.sum() == region.sum():
            break
        region = grown
    return region


@dataclass(frozen=True)
class _Slice:
    """Per-slice precomputation, so that a prompt only touches its own neighbourhood."""

    smooth: np.ndarray  # (H, W) float32 on the 0..255 bone-window scale
    sharp: np.ndarray  # (H, W) float32, the same before smoothing: where edges are placed
    soft: float  # grey level of soft tissue (the histogram peak above air)
    floor: float  # the lowest grey level taken for bone
    bone: np.ndarray  # (H, W) bool, adaptive bone threshold for extent estimation
    cortex: np.ndarray  # (H, W) bool, the bright cortical shell only
    solid: np.ndarray  # (H, W) bool, bone map plus the marrow the cortex encloses in thin pieces
    closed: dict[float, np.ndarray]  # closing (mm) → (H, W) bool, the bone map closed by it
    px_per_mm: float

    def px(self, mm: float) -> int:
        return max(1, round(mm * self.px_per_mm))


class ClassicalSegmenter:
    """Threshold + morphology + watershed segmenter; see the module docstring for the method."""

    info = BackendInfo(
        name="classical",
        description="Classical segmentation (bone threshold, morphology, watershed); no weights",
        reason="embedded default: works offline without a GPU or model download",
    )

    def __init__(self) -> None:
        self._slice: _Slice | None = None
        # The last search window's labelled shells, (start, stop) of its rows and columns.
        self._shells: tuple[tuple[int, int, int, int], np.ndarray] | None = None

    def set_image(self, image: SliceImage) -> None:
        pixels = np.asarray(image.pixels, dtype=np.float32)
        if pixels.ndim != 2 or min(pixels.shape) < 8:
            raise SegmenterError(f"expected a 2-D slice, got an array of shape {pixels.shape}")
        if not np.isfinite(pixels).all():
            pixels = np.nan_to_num(pixels, nan=float(np.nanmin(pixels)) if image.is_hu else 0.0)
        grey = bone_window(pixels).astype(np.float32) if image.is_hu else np.clip(pixels, 0, 255)
        mm = float(np.mean(image.spacing)) if image.spacing else NOMINAL_MM_PER_PX
        px_per_mm = 1.0 / mm if mm > 0 else 1.0 / NOMINAL_MM_PER_PX
        smooth = ndi.gaussian_filter(grey, SMOOTH_MM * px_per_mm)
        soft = self._soft_tissue_level(smooth)
        contrast = max(float(np.percentile(smooth, 99.5)) - soft, 1.0)
        # Soft tissue and contrast are measured on the slice as given (a padded margin would
        # count as tissue); the maps the prompts work on see the content run to the border.
        unframed = _unframed(grey)
        if unframed is not grey:
            smooth = ndi.gaussian_filter(unframed, SMOOTH_MM * px_per_mm)
        window = max(3, round(LOCAL_WINDOW_MM * px_per_mm) | 1)
        local_mean = ndi.uniform_filter(smooth, window)
        floor = soft + SOFT_FLOOR * contrast
        bone = smooth > np.maximum(local_mean, floor)
        cortex = smooth > soft + CORTEX_FRACTION * contrast
        solid = bone | small_holes(cortex, round((RAY_HOLE_MM * px_per_mm) ** 2))
        # The point path's blob and basin estimates close the bone map in search windows
        # around each click, often twice as the window doubles: closed once per slice here
        # (as an image embedding is computed once), each window only fills its cut-out.
        # Windows no longer erode at their edges (a few sample masks change, no Dice lost).
        closed = {
            mm: close_disk(bone, max(1, round(mm * px_per_mm)))
            for mm in (CLOSE_MM, *BASIN_CLOSE_MM)
        }
        self._slice = _Slice(smooth, unframed, soft, floor, bone, cortex, solid, closed, px_per_mm)
        self._shells = None

    @staticmethod
    def _soft_tissue_level(smooth: np.ndarray) -> float:
        """Most frequent grey level above air: soft tissue fills most of a body CT slice."""
        hist = np.bincount(np.clip(smooth, 0, 255).astype(np.int64).ravel(), minlength=256)
        hist = ndi.gaussian_filter1d(hist[40:].astype(np.float64), 2.0)
        return float(np.argmax(hist) + 40)

    def predict(self, prompt: Prompt) -> np.ndarray:
        s = self._slice
        if s is None:
            raise SegmenterError("load an image before segmenting")
        h, w = s.smooth.shape
        points = np.asarray(prompt.points, dtype=np.int64).reshape(-1, 2)
        labels = np.asarray(prompt.labels).reshape(-1)
        for x, y in points:
            if not (0 <= x < w and 0 <= y < h):
                raise SegmenterError(f"point ({x}, {y}) lies outside the {w}×{h} image")
        positives = points[labels == 1]
        negatives = points[labels != 1]
        prior = self._prior(prompt.mask_input, (h, w))
        box = self._box(prompt.box, (h, w))
        if box is None and prior is not None:
            box = self._grow(mask_bounds(prior), s.px(BOX_MARGIN_MM), (h, w))
        if box is not None and prior is None:
            mask = self._segment_drawn(box, positives)
        elif box is not None:
            mask = self._segment_box(box, positives, "prior")
        elif len(positives):
            mask = self._segment_point(positives)
        else:
            raise SegmenterError(
                "add a positive point or a box: negative points alone select nothing"
            )
        if prior is not None:
            mask = self._with_attached_arch(mask, prior)
        return self._carve(mask, negatives, positives)

    def _with_attached_arch(self, mask: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """The mask near the prior, plus the thin cortex near the prior that is joined to it.

        On pixels coarser than the cortical wall (3 mm) a pedicle or lamina is one or two
        pixels that each hold some cortex: their brightness says how much cortex they hold, not
        how much of them is bone, so the edge settling (half the height of the rim's brightest
        cortex) drops them and the mask shrinks slice after slice. Cortex within reach of the
        neighbouring slice's mask, joined to the mask, and thin beside the prior (thinner than
        APPENDAGE_RATIO of its thickest part: an arch, not an endplate, which is as wide as a
        body) is the same vertebra's arch. Separate pieces are not added: at a disc they would
        carry the mask into the next vertebra. Nothing near the prior still gives an empty mask
        (the object ended).
        """
        s = self._slice
        assert s is not None
        near = dilate_disk(prior, s.px(CLOSE_MM))
        x0, y0, x1, y1 = mask_bounds(near)  # all the work happens around the prior
        crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        body = mask[crop] & near[crop]
        pieces, n = ndi.label(s.cortex[crop] & near[crop], structure=EIGHT)
        depth = ndi.distance_transform_edt(np.pad(pieces > 0, 1))[1:-1, 1:-1]
        deepest = np.zeros(n + 1)
        np.maximum.at(deepest, pieces.ravel(), depth.ravel())
        thin = deepest < APPENDAGE_RATIO * _max_depth(prior)
        thin[0] = False
        joined, _ = ndi.label(body | thin[pieces], structure=EIGHT)
        out = np.zeros_like(mask)
        out[crop] = components_touching(joined, body)
        return out

    @staticmethod
    def _prior(mask_input: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
        if mask_input is None:
            return None
        prior = np.asarray(mask_input, dtype=bool)
        if prior.shape != shape:
            raise SegmenterError(f"the prior mask is {prior.shape}, but the slice is {shape}")
        return prior if prior.any() else None

    @staticmethod
    def _box(box: np.ndarray | None, shape: tuple[int, int]) -> Box | None:
        """Box as ordered, clipped integers; a box of a few pixels cannot hold a vertebra."""
        if box is None:
            return None
        h, w = shape
        x0, y0, x1, y1 = (round(float(v)) for v in np.asarray(box).reshape(4))
        x0, x1 = sorted((max(0, min(x0, w - 1)), max(0, min(x1, w - 1))))
        y0, y1 = sorted((max(0, min(y0, h - 1)), max(0, min(y1, h - 1))))
        if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
            raise SegmenterError(
                "the box is too small (or outside the image): draw it around the vertebra"
            )
        return x0, y0, x1, y1

    @staticmethod
    def _grow(bbox: Box, margin: int, shape: tuple[int, int]) -> Box:
        h, w = shape
        x0, y0, x1, y1 = bbox
        return (
            max(x0 - margin, 0),
            max(y0 - margin, 0),
            min(x1 + margin, w - 1),
            min(y1 + margin, h - 1),
        )

    def _segment_drawn(self, box: Box, positives: np.ndarray) -> np.ndarray:
        """The pixels that at least two of three readings of a drawn box agree on.

        A user's box is never exact: the same object could as well have been boxed a
        millimetre tighter or looser. The box sets the bone threshold (the crop's mean), which
        pieces count as entering through a side, and where a neighbour is cut off, so a leak
        may open for one exact box only; the object itself is found in every reading. So the
        box is also read with all its sides moved out and in by BOX_JITTER_MM (sides on the
        image border stay there) and the majority kept: sagittal box 0.8987 → 0.9024 (tuning
        half 0.9030 → 0.9063, held-out half 0.8944 → 0.8985). Boxes over VOTE_MAX_PIXELS are
        read once, for latency (all three readings of the axial sample's whole-vertebra boxes:
        0.9413 → 0.9419, box p95 33 → 100 ms on 512²). Boxes from a prior or from the point
        path's estimates are read once: the former is already tight, the latter are several
        guesses per click anyway.
        """
        s = self._slice
        assert s is not None
        h, w = s.smooth.shape
        x0, y0, x1, y1 = box
        if (x1 - x0 + 1) * (y1 - y0 + 1) > VOTE_MAX_PIXELS:
            return self._segment_box(box, positives, "drawn")
        step = s.px(BOX_JITTER_MM)
        votes = np.zeros((h, w), dtype=np.uint8)
        for moved in (box, _moved(box, step, (h, w)), _moved(box, -step, (h, w))):
            votes += self._segment_box(moved, positives, "drawn")
        return largest_component(fill_holes(votes >= 2, _box_walls(box, (h, w))))

    def _segment_box(
        self,
        box: Box,
        positives: np.ndarray,
        origin: BoxOrigin = "estimated",
    ) -> np.ndarray:
        """Shell threshold inside the box → drop edge-crossing bone → close → fill → pick →
        cut off neighbours joined through the box edge → fill enclosed bays (drawn boxes).

        The cut assumes a box around the object with a margin (drawn by the user, or estimated
        from a click); a box made from a neighbouring slice's mask (`"prior"`) is tight, and
        what touches its edge is the object growing. It also needs pixels fine enough to show a
        joint space as a seam (SEAM_MM). A box the user drew has its cut-off pieces judged one
        by one (`_cut_entrants`), and its bays filled: in propagation the prior already has the
        hollows it should (the fill took in the canal: evaluate3d T12 0.816 → 0.693), and the
        point path segments several estimated boxes per click within its latency budget, for
        no gain (sagittal point 0.7973 → 0.7968).
        """
        s = self._slice
        assert s is not None
        x0, y0, x1, y1 = box
        out = np.zeros(s.smooth.shape, dtype=bool)
        if not s.cortex[y0 : y1 + 1, x0 : x1 + 1].any():
            return out  # no cortex, no vertebra: whatever passes the threshold is noise
        crop = s.smooth[y0 : y1 + 1, x0 : x1 + 1]
        contrast = max(float(np.percentile(crop, 99)) - s.soft, 1.0)
        bone = crop > max(float(crop.mean()), s.soft + SOFT_FLOOR * contrast)
        h, w = s.smooth.shape
        walls = _box_walls(box, (h, w))
        bone = self._drop_edge_crossers(bone, walls)
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
            obj = self._cut_entrants(obj, crop, walls, each=origin == "drawn", trim=trim)
        if origin == "drawn":
            obj = _fill_bays(obj, crop, s.soft, SOFT_FLOOR * contrast, walls)
        sharp = s.sharp[y0 : y1 + 1, x0 : x1 + 1]
        out[y0 : y1 + 1, x0 : x1 + 1] = self._settle_edge(obj, sharp, walls, origin == "drawn")
        return out

    def _settle_edge(
        self, obj: np.ndarray, crop: np.ndarray, walls: Sides, local: bool
    ) -> np.ndarray:
        """Move the outline to where the cortex edge is at half height.

        The low threshold that keeps the shell closed also takes in the blurred skirt of the
        cortex, so the outline sits too far out. Within a thin outer band, pixels darker than
        half-way between soft tissue and the cortex are outside the bone, as the half-maximum
        of a blurred step marks the true edge. `crop` is the unsmoothed slice: the smoothing
        that steadies the threshold widens a thin piece's half-height outline (sagittal box
        0.8875 → 0.8902). With `local`, each pixel is measured against the brightest of the
        object within CORTEX_REACH_MM instead of the band's bright cortex as a whole: the
        cortex of a posterior piece or an endplate is brighter than the thin walls elsewhere,
        and the half-height of a single level sits outside the dim walls and inside the bright
        ones (sagittal box 0.8902 → 0.8932, posterior pieces most). Only drawn boxes use it:
        the point path chooses among its estimates and their compartments by shape, and the
        rippled outline tipped those choices (a sacrum's point 0.74 → 0.34, axial point
        0.9104 → 0.9033). Where the image border cuts the object (`walls`) there is no edge
        to settle.
        """
        s = self._slice
        assert s is not None
        walled = np.pad(obj, 1)
        for rim, wall in zip(array_sides(walled), walls, strict=True):
            rim[...] = wall
        inner = erode_cross(walled, s.px(EDGE_BAND_MM))[1:-1, 1:-1]
        band = obj & ~inner
        if not band.any():
            return obj
        if local:
            size = 2 * s.px(CORTEX_REACH_MM) + 1
            cortex = ndi.maximum_filter(np.where(obj, crop, 0.0), size=size)
        else:
            cortex = float(np.percentile(crop[band], 90))
        settled = fill_holes(obj & ~(band & (crop < (s.soft + cortex) / 2)), walls)
        return largest_component(settled) if settled.any() else obj

    @staticmethod
    def _cut_entrants(
        obj: np.ndarray, crop: np.ndarray, walls: Sides, each: bool = False, trim: int = 0
    ) -> np.ndarray:
        """Cut off what a neighbour brought in through the box edge, along the darkest seam.

        A box encloses its object with a margin, so object pixels on an open box side belong to
        a neighbour, joined through a bridged disc or touching facets (its bone need not cross
        the edge before closing, so `_drop_edge_crossers` cannot see it). The box's middle
        holds the object; the brightest grey level at which the middle still connects to those
        edge pixels is the seam (a disc or joint space is darker than the bone either side).
        Above it the two fall apart, and a watershed on the grey levels shares out the darker
        rest. What is cut off is a neighbour when it stays near the sides it came through; one
        reaching across the box is the object's own shell touching the edge and stays. In a box
        the user drew (`each`) each piece is judged on its own, as `_drop_edge_crossers` judges
        bone: judged as a whole, the neighbours entering at the top and the bottom of a sagittal
        box span it and none was cut. The point path's estimated boxes are judged as a whole:
        they fit a guess at the object, not the object with a margin (per piece, axial point
        0.909 → 0.895). A cut that would take more than CUT_SHARE of the object runs through
        the object itself (the sacral alae of an axial slice, each reaching a quarter of the box
        in from its side): a neighbour only enters the box's margin and what overlaps it.
        A `trim` above zero then drops the seam's rest the watershed left with the object
        (`_trim_seam`). In a drawn box a neighbour's dim lobe beyond the bright part, which
        the seam level cannot reach, is dropped first (`_drop_far_entrants`).
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
            obj = _drop_far_entrants(obj, inner, entry, core, walls)
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
        return _trim_seam(fill_holes(obj & ~lost, walls), lost, crop, hi, trim, walls)

    @staticmethod
    def _drop_edge_crossers(bone: np.ndarray, walls: Sides) -> np.ndarray:
        """Bone entering through the box edge belongs to a neighbour, unless it is most of the bone.

        A box encloses its object, so a piece that crosses the edge without reaching far in
        comes from outside (`_entrants`); each piece is judged on its own, so one reaching
        across the box (the object, clipped by a tight box) no longer keeps a neighbour's
        endplate at the other side. When dropping would still lose most of the bone, it is all
        kept. Sides on the image border (`walls`) do not count: nothing enters through them.
        """
        kept = bone & ~_entrants(bone, walls)
        return kept if kept.sum() >= EDGE_KEEP_FRACTION * bone.sum() else bone

    def _segment_point(self, positives: np.ndarray) -> np.ndarray:
        """Estimate the extent around the first click; keep the best-centred resulting mask.

        Estimates run from the most local (the unclosed cortical shell, then basins of a barely
        closed bone map) to the whole blob, and last the rays' bounds (`_ray_extent`) for a
        click with no closed shell around it; a later one replaces the current best only when its
        mask is clearly better centred, which happens where a basin missed part of a lone,
        large vertebra. An estimate whose box nearly equals one already tried is skipped: its
        mask would be about the same, so it could not clearly beat it. An off-centre winner is
        then checked for a walled-off compartment (see `_compartment`), read again as a drawn
        box (`_redrawn`), and the result regains the sacral segments the cuts took from it
        (`_with_fused_rest`). Those segments are cut from the estimates' masks, so a redrawn
        mask that ran out of its box (wider than any estimate saw the piece) is not what they
        are judged against: its outline past the estimates' leaves slivers that join it to
        the column below along a wide contact, and its larger size lets that column pass as a
        fused rest (an L5 joined to the whole sacrum, 0.95 → 0.49). The rest is then judged
        against the mask before the redraw.

        Each estimate's mask is cut at narrow necks (`_cut_at_necks`), against a box that
        joined the clicked piece to a neighbour. A posterior piece in a sagittal cut, though, is
        often two lobes of one vertebra (an articular pillar and its spinous process) joined by
        a lamina thinner than either, and the neck cut drops the lobe the click is not in. The
        plain cortical shell (the first estimate) is closed by the piece's own cortex, with no
        closing across joint spaces, so its box's mask is also tried uncut, ahead of the cut one
        so that it wins a tie; unless it is longer than one piece (`SLENDER`: the chain cut would
        split it), as a shell running on through touching pillars is. Sagittal point, tuning
        half 0.8416 → 0.8461 (posterior pieces 0.825 → 0.833), held-out half 0.8425 → 0.8497,
        axial 0.9167 → 0.9192.
        """
        s = self._slice
        assert s is not None
        x, y = (int(v) for v in positives[0])
        margin = s.px(BOX_MARGIN_MM)
        best: tuple[float, np.ndarray] | None = None
        tried: list[Box] = []
        raws: list[np.ndarray] = []  # each estimate's mask before the neck and chain cuts
        basins = [partial(self._basin_extent, close_mm=mm) for mm in BASIN_CLOSE_MM]
        shells = [partial(self._cortex_extent, necks=necks) for necks in (False, True)]
        estimates = (*shells, *basins, self._blob_extent)
        extents = [partial(self._enclosed_extent, estimate, x, y) for estimate in estimates]
        for rank, find in enumerate((*extents, partial(self._ray_extent, y, x))):
            if best is not None and best[0] + CENTRED_TIE >= 1.0:
                break  # centredness is at most 1: no later estimate could replace this one
            extent = find()
            if extent is None:
                continue
            box = self._grow(extent, margin, s.smooth.shape)
            if any(box_overlap(box, t) >= SAME_BOX_OVERLAP for t in tried):
                continue  # (about) the same box, (about) the same mask: it would not beat the best
            tried.append(box)
            mask = self._segment_box(box, positives)
            raws.append(mask)
            necked = self._cut_at_necks(mask, y, x)
            for reading in (mask, necked) if rank == 0 else (necked,):  # 0: the plain shell
                cut, score = self._cut_chain(reading, y, x)
                if reading is mask and cut is not mask:
                    continue  # longer than one piece: a chain, which the neck cut is there for
                if best is None or score > best[0] + CENTRED_TIE:
                    best = (score, cut)
        if best is None:
            return np.zeros(s.smooth.shape, dtype=bool)
        score, winner = best
        mask = self._walled_off(score, winner, y, x)
        if not mask[y, x]:  # a mask that missed the click gives no box to redraw, no piece to join
            return mask
        if mask is not winner:  # a compartment: its centredness is not the winner's score
            score = _centredness(*_click_depth(mask, y, x), _axis(mask)[0])
        redrawn, ran_out = self._redrawn(mask, score, positives, y, x)
        if ran_out:  # wider than the estimates saw it: their rests are judged against their piece
            return redrawn | self._with_fused_rest(mask, raws, positives) & ~mask
        return self._with_fused_rest(redrawn, raws, positives)

    def _redrawn(
        self, mask: np.ndarray, score: float, positives: np.ndarray, y: int, x: int
    ) -> tuple[np.ndarray, bool]:
        """The point path's `mask` (centred on the click by `score`) read again as if the user
        had drawn a box around it.

        The estimated boxes fit a guess at the object, so they are read as a guess must be:
        what enters through a side is judged as a whole, no bays are filled, and the edge
        settles at one level for the whole outline. A box a user draws encloses the object
        with a margin, and its reading is the better one (drawn box 0.9024 against point 0.857
        sagittal): neighbours are cut off piece by piece, bays filled, the edge settled
        against the cortex nearby. The mask's bounds plus the margin a user leaves
        (BOX_MARGIN_MM, the evaluation's 5 px) make such a box. It is read once, not with the
        three-reading vote of `_segment_drawn` (the vote added no Dice and a third of the
        latency), and replaces the mask where it is the same object (REDRAWN_AGREE: a box
        around a wrong mask may take in a neighbour) and about as well centred on the click
        (CENTRED_TIE; without this, axial point 0.9215 → 0.9178). Sagittal point, tuning half
        0.8596 → 0.8660, held-out half 0.8549 → 0.8638; axial 0.9192 → 0.9207; about 10–20 ms
        per click on 512².

        A reading that runs out to an open side of the box (further than the margin beyond
        the mask) may have followed a neighbour through a bridged disc or joint, but it may
        as well be the whole piece where the estimates missed a lobe or an end (a posterior
        piece's spinous end, a body's corner). A neighbour followed in pulls the mask's
        centre away from the click; a missed lobe, restored, brings it back to the click. So
        such a reading is taken only where it is clearly better centred (by CENTRED_TIE, as a
        later estimate must be to replace an earlier one): sagittal point, tuning half
        0.8764 → 0.8777 (posterior pieces 0.856 → 0.859), held-out half 0.8719 → 0.8734, no
        prompt of either half worse by more than 0.010; axial 0.9207 unchanged. Also returns
        whether the reading taken ran out of its box (see `_segment_point`).

        The image border is a wall of the box, through which nothing enters, so the test
        above cannot see a reading leak there: a box around a body just below the top edge
        reads in the slab of the body above (joined through a bridged disc, running to that
        edge) without touching an open side, and even undoes a compartment cut that had
        dropped that slab. So a reading that meets an image edge the mask does not reach,
        along more than a wall's thickness (a slab the image cuts off, not a corner), has run
        out of the box as well. Sagittal point, tuning half 0.88186 → 0.88210 (one body
        0.773 → 0.822, no prompt worse), held-out half and axial unchanged.
        """
        s = self._slice
        assert s is not None
        box = self._grow(mask_bounds(mask), s.px(BOX_MARGIN_MM), mask.shape)
        drawn = self._segment_box(box, positives, "drawn")
        x0, y0, x1, y1 = box
        sides = array_sides(drawn[y0 : y1 + 1, x0 : x1 + 1])
        walls = _box_walls(box, mask.shape)
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
        redrawn = _centredness(*_click_depth(drawn, y, x), _axis(drawn)[0])
        if leaks:  # a neighbour followed in pulls the centre away: only a clear gain shows none
            return (drawn, True) if redrawn >= score + CENTRED_TIE else (mask, False)
        return (drawn, False) if redrawn + CENTRED_TIE >= score else (mask, False)

    def _to_bottom(
        self, piece: np.ndarray, candidates: list[np.ndarray], positives: np.ndarray
    ) -> np.ndarray:
        """What a user's box around the clicked piece and the bone below it, down to the
        image's bottom row, gives: a further candidate for `_with_fused_rest`.

        The estimates' uncut masks that reach the bottom row run on through the bridged discs
        or along the posterior strip, so their rests are often too large or lack the contact
        the junction tests ask for, while a box drawn around the sacrum finds it well (sagittal
        box 0.82–0.93 on these). The box spans the piece and, below it, the columns the
        estimates through the click reach, followed on along the bone map to where that bone
        ends: the segments below S1 bend back from S1's axis, and where the estimates stop at
        the first fused line the box must still hold them as a user's would (sagittal point
        tuning half 0.8817 → 0.8823, held-out half 0.8736 → 0.8746, axial unchanged). It is
        read as a drawn one (`_segment_drawn`). Two guards keep it to a sacrum clicked in S1:

        - A reading that adds bone more than twice as thick as the piece (APPENDAGE_RATIO)
          was clicked on a thin piece beside a body (the sacrum's posterior strip): only the
          piece is kept.
        - The segments below S1 lie below the click. What the reading holds beside the piece
          above the click row (beyond a cut band, CUT_BAND_MM) is a neighbour (the posterior
          strip running up beside S1, or a spill into the disc above), so the reading is split
          from it at the darkest line (a watershed on the grey levels, as in `_split_at_joint`).

        The rest still has to pass every junction test of `_with_fused_rest`.
        """
        s = self._slice
        assert s is not None
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
        box = self._grow((x0, y0, x1, h - 1), s.px(BOX_MARGIN_MM), (h, w))
        reading = self._segment_drawn(box, positives[:1]) | piece
        if APPENDAGE_RATIO * _max_depth(reading & ~piece) > _max_depth(piece):
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

    def _walled_off(self, score: float, mask: np.ndarray, y: int, x: int) -> np.ndarray:
        """The winning `mask` of `_segment_point` (centred by `score`), or its cortex-walled
        compartment around the click where that is the clicked piece (see `_compartment`).

        A compartment as thick as the rest beyond it is a piece of its own where it alone
        holds the image edge the mask is cut by (`_holds_cut_edge`) and the click is clearly
        better centred in it (`CENTRED_TIE`, as between estimates): a small piece the top
        edge cuts off (an articular process) joined through its facet joint to the pillar
        below. The joint's two surfaces are cortex, so `_cut_through_bone` reads them as one
        bone running on, and the piece is shorter than `SLENDER` allows, so the chain cut
        never runs; the cut-off piece is thin along the edge, so every estimate's mask
        scores alike. Sagittal point, tuning half 0.8672 → 0.8711 (posterior pieces
        0.844 → 0.852, at the border 0.832 → 0.846), held-out half 0.8576 → 0.8641, no
        prompt of either half worse (without the centring test one held-out spinous process
        running on to the bottom edge lost its upper half, 0.79 → 0.61); axial unchanged.
        """
        s = self._slice
        assert s is not None
        compartment = self._compartment(mask, y, x) if score + CENTRED_TIE < 1.0 else None
        if compartment is None:
            return mask
        side = self._disc_side(mask, compartment)
        if side is not None:  # a column of bodies: this body, up to the discs' middle lines
            return largest_component(compartment & side)
        at, depth = _click_depth(compartment, y, x)
        rest = _max_depth(mask & ~compartment)
        if rest < APPENDAGE_RATIO * depth and self._spilled(mask, compartment):
            return compartment  # the body, without what leaked past its end plates
        if at / depth < score:
            return mask  # no better centred than the mask it was cut from
        if APPENDAGE_RATIO * rest > depth:
            return compartment  # far thicker than the lobe around the click: a body it touches
        if rest < APPENDAGE_RATIO * depth:
            return mask  # far thinner than the compartment: its own appendages, which stay
        if at / depth >= score + CENTRED_TIE and _holds_cut_edge(mask, compartment, s.px(WALL_MM)):
            return compartment  # a piece the image cuts off, and the piece beyond it
        # Otherwise the cut must not run through continuing cortex. A piece the image cuts
        # off, with the compartment and the rest at the same cut edge, is thin because of that
        # edge: its walls there tell no piece from its rest.
        if not _cut_by_same_edge(mask, compartment) and not self._cut_through_bone(
            mask, compartment
        ):
            return compartment
        return mask

    def _with_fused_rest(
        self, mask: np.ndarray, candidates: list[np.ndarray], positives: np.ndarray
    ) -> np.ndarray:
        """`mask` plus the parts of the estimates' uncut masks joined to it across a fused
        junction: the sacrum's segments below S1.

        The sacrum is one bone whose segments (S1, S2, ...) meet at thin remnant lines of
        their former discs, cortex-lined like an endplate, so the neck and compartment cuts
        stop the clicked mask at the first of them and return S1 alone. An intervertebral disc
        is a band several millimetres wide and darker than bone, while a remnant line is about
        a millimetre: the shell of the rest between FUSED_SHELL_MM beyond the cut lies inside
        a disc, but in the next segment's bone past a remnant line, so it is mostly bone
        (FUSED_BONE) only there. Where the next segment's marrow is as dark as a disc, that
        shell tells nothing, but the sacrum's outer wall still runs on across the junction
        (`_cortex_runs_on`), which no disc's rim does: either sign will do (sagittal point
        0.8572 → 0.8601; tuning half 0.8596 → 0.8632, held-out half 0.8549 → 0.8570, axial
        unchanged). The rest must also be joined along a contact as wide as a
        neck the basins would join through (NECK_RATIO of the piece's thickness; a process
        touching the side of a body meets it along a narrow one), reach the image's bottom row
        (in a head-up sagittal view of the lumbar spine the sacrum runs out of the image there;
        allowing the top row too merged cut-off pieces there with their neighbours: sagittal
        tuning half 0.8416 → 0.8393 instead of 0.8505) and be at most FUSED_REST times the
        clicked piece (more is the column beyond, leaked into through bridged discs). Sagittal
        point 0.8420 → 0.8478 (tuning half 0.8416 → 0.8505, held-out half 0.8425 → 0.8451),
        with no prompt of either half worse; axial unchanged.

        Where the estimates reach the bottom row, or end less than BOTTOM_GAP_MM above it (the
        sacrum's lowest segments are thin and faint, and the estimates can stop at a fused line
        a few millimetres short; no disc and further vertebra fit in that gap, and on the axial
        set no estimate ends that near: the step never runs there), a box read around the piece
        and the bone below it (`_to_bottom`) is one more candidate (the gap: sagittal point
        tuning half 0.8806 → 0.8817, held-out half unchanged, axial unchanged): its rest is
        the sacrum as a drawn box finds it, where the estimates' rests fail the tests
        (sagittal point 0.8624 → 0.8652; tuning half 0.8672 → 0.8713, sacrum prompts
        0.799 → 0.831; held-out half 0.8576 → 0.8592; axial unchanged).
        """
        s = self._slice
        assert s is not None
        x, y = (int(v) for v in positives[0])
        if not mask[y, x]:
            return mask
        h, w = mask.shape
        lo, hi = (s.px(mm) for mm in FUSED_SHELL_MM)
        gap = max(hi + 1, s.px(BOTTOM_GAP_MM))
        joined = np.logical_or.reduce([mask, *candidates])
        if self._grow(mask_bounds(joined), gap, (h, w))[3] < h - 1:
            return mask  # nothing reaches (near) the bottom row
        candidates = [*candidates, self._to_bottom(mask, candidates, positives)]
        joined |= candidates[-1]
        x0, y0, x1, y1 = self._grow(mask_bounds(joined), hi + 1, (h, w))
        crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        piece = mask[crop]
        touching = dilate_disk(piece, 1)
        shell = dilate_disk(piece, hi) & ~dilate_disk(piece, lo)
        neck = NECK_RATIO * 2.0 * _max_depth(piece)
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
                        or self._cortex_runs_on(piece, rest, crop)
                    )
                ):
                    out |= rest
        fused = mask.copy()
        fused[crop] = out
        return fused

    def _cortex_runs_on(
        self, piece: np.ndarray, rest: np.ndarray, crop: tuple[slice, slice]
    ) -> bool:
        """Whether the outer wall runs on from well inside `piece` to well inside `rest`.

        The sacrum's anterior and posterior walls are one cortex running on past each fused
        junction, while a disc's rim is annulus, not cortex: the walls of the bodies on either
        side of a disc stop at their endplates. So cortex along the joined outline (within a
        wall's thickness, WALL_MM, of it) reaching further than CUT_BAND_MM into both sides
        joins one bone's segments, also where the next segment's marrow reads as little bone
        as a disc does. Only the outline counts: the articular processes of a facet joint,
        pressed together inside the joined mask, also join two vertebrae's cortex (L5 with S1
        held-out 0.76 → 0.50 when any cortex counted).
        """
        s = self._slice
        assert s is not None
        band = s.px(CUT_BAND_MM)
        joined = piece | rest
        outline = joined & dilate_disk(~joined, s.px(WALL_MM))
        labels, _ = ndi.label(s.cortex[crop] & outline, structure=EIGHT)
        far_rest = labels[rest & ~dilate_disk(piece, band)]
        far_piece = labels[piece & ~dilate_disk(rest, band)]
        return bool(np.intersect1d(far_rest[far_rest > 0], far_piece[far_piece > 0]).size)

    def _compartment(self, mask: np.ndarray, y: int, x: int) -> np.ndarray | None:
        """The cortex-walled compartment of `mask` around the click, with its wall.

        Cancellous bone is barely brighter than a disc, but cortex is clearly brighter than
        both, so the endplates wall a body off from the disc even where the bright bone of two
        bodies has been joined. The inside of the mask without the cortex splits at those walls
        (narrow gaps in them are necks); the click's basin plus a wall's thickness is the body.
        """
        s = self._slice
        assert s is not None
        if not mask[y, x]:
            return None
        x0, y0, x1, y1 = mask_bounds(mask)
        crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        inner = mask[crop] & ~s.cortex[crop]
        if not inner[y - y0, x - x0]:
            return None
        region = _neck_region(inner, y - y0, x - x0, s.px(BASIN_CELL_MM))
        if float(s.smooth[crop][region].mean()) <= s.floor:
            return None  # as dark as soft tissue: a canal or a disc, not cancellous bone
        out = np.zeros_like(mask)
        out[crop] = dilate_disk(region, s.px(WALL_MM)) & mask[crop]
        return out

    def _disc_side(self, mask: np.ndarray, part: np.ndarray) -> np.ndarray | None:
        """The side of `mask` that `part` lies on where it meets the rest across a disc,
        otherwise None.

        The bodies of a lumbar column joined through bridged discs are about equally wide, so
        the click sits about as deep in the column as in its own body, and the rest beyond a
        border that cuts it off is thin: neither centredness nor thickness tells the column from
        one body. The disc does: a line across the mask between the part and what lies beyond
        its wall band, darker than the end plates either side of it by at least the step the
        bone threshold resolves (floor − soft tissue; a vascular channel or trabecular line
        inside one body is bright on one side only, and is dropped), and about straight
        (`DISC_BOW`; a seam curving around a lobe of one body is no disc). The compartment
        itself may run on into a disc whose end plate has gaps; the line's side does not.
        Sagittal point, tuning half 0.8416 → 0.8476, held-out half 0.8425 → 0.8451; axial
        unchanged (without the straightness test: axial point 0.9167 → 0.9027; without the
        step: tuning half +0.0027 only, lobes cut off at internal lines).
        """
        s = self._slice
        assert s is not None
        x0, y0, x1, y1 = mask_bounds(mask)
        window = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        crop, inside = mask[window], part[window]
        markers = (inside & ~dilate_disk(~inside, s.px(CUT_BAND_MM))).astype(np.int32)
        markers[crop & ~dilate_disk(inside, s.px(CUT_BAND_MM))] = 2
        rise = s.floor - s.soft  # an end plate is a step the bone threshold resolves
        kept = self._split_at_joint(crop, markers, window, rise)
        if kept is None or not _straight(kept & dilate_square(crop & ~kept)):
            return None
        out = np.zeros_like(mask)
        out[window] = kept
        return out

    def _spilled(self, mask: np.ndarray, part: np.ndarray) -> bool:
        """Whether the thin rest of `mask` beyond the compartment `part` spilled past a body's
        end plates (into its discs and the neighbours' end plates) rather than being part of it.

        Where an end plate has gaps the box's closing bridges, the mask runs on into the disc
        beyond it and along the next end plate, while the compartment, walled by the cortex,
        stops at its own end plate or the next one. Centredness does not tell them apart (the
        spill is about symmetric above and below) nor does `_disc_side` (the spill is thinner
        than its band, so nothing lies beyond it to split from). The contact does: a spill meets
        the body along its end plates, lines that are about straight (`DISC_BOW`; corners
        shorter than a wall's thickness, where the wall band meets the rest, tell nothing), with
        no cortex running on across them (`_cut_through_bone`) and not at an image edge the
        piece is cut off by (`_cut_by_same_edge`). The thin rests of axial bodies meet their
        compartment along bowed lines (bow 0.20–0.33; sagittal spills ≤ 0.18) and stay: without
        the straightness test axial point drops 0.9192 → 0.9144. Sagittal point, tuning half
        0.8596 → 0.8608 (bodies 0.8911 → 0.8930), held-out half 0.8549 → 0.8554, no prompt of
        either half worse; axial 0.9192 unchanged.
        """
        s = self._slice
        assert s is not None
        contact = part & dilate_square(mask & ~part)
        return (
            not _cut_by_same_edge(mask, part)
            and not self._cut_through_bone(mask, part)
            and _straight(contact, s.px(WALL_MM))
        )

    def _cut_through_bone(self, mask: np.ndarray, part: np.ndarray) -> bool:
        """Whether `part` was cut from `mask` across continuing cortex rather than a disc.

        Two bodies joined through a bridged disc meet across the disc, which is no cortex; a
        lobe of one piece meets the rest of it where the bright bone runs on. So the band of
        `mask` just beyond `part` is mostly cortex only in the second case.
        """
        s = self._slice
        assert s is not None
        beyond = mask & dilate_disk(part, s.px(CUT_BAND_MM)) & ~part
        return bool(beyond.any()) and float(s.cortex[beyond].mean()) > CUT_CORTEX_FRACTION

    def _cut_at_necks(self, mask: np.ndarray, y: int, x: int) -> np.ndarray:
        """Keep the clicked part of a mask that a too-large box joined to a neighbour."""
        if not mask[y, x]:
            return mask
        s = self._slice
        assert s is not None
        x0, y0, x1, y1 = mask_bounds(mask)
        crop = mask[y0 : y1 + 1, x0 : x1 + 1]
        cut = mask.copy()
        cut[y0 : y1 + 1, x0 : x1 + 1] = crop & _neck_region(
            crop, y - y0, x - x0, s.px(BASIN_CELL_MM)
        )
        return cut

    def _cut_chain(self, mask: np.ndarray, y: int, x: int) -> tuple[np.ndarray, float]:
        """The clicked piece of a chain (`_chain_piece`) or the mask itself, and its
        `_centredness`: the chain test and the score share their measurements."""
        if not mask[y, x]:
            return mask, 0.0
        at, deepest = _click_depth(mask, y, x)
        length, axis = _axis(mask)
        if length > SLENDER * 2.0 * deepest:
            piece = self._chain_piece(mask, y, x, deepest, axis)
            if piece is not None:
                return piece, _centredness(*_click_depth(piece, y, x), _axis(piece)[0])
        return mask, _centredness(at, deepest, length)

    def _chain_piece(
        self, mask: np.ndarray, y: int, x: int, deepest: float, axis: np.ndarray
    ) -> np.ndarray | None:
        """The clicked piece of a chain of pieces joined end to end through their joints, or
        None where the mask (longer than one piece, `deepest` thick along `axis`) is no chain.

        Articular pillars meet at facet joints: thin lines darker than the cortex on both
        sides even where partial volume bridges them, so the bone map joins them into one
        mask longer than one piece can be (`SLENDER`). The mask's ends farther from the click
        than half the longest piece are other pieces; a watershed on the grey levels from the
        click and from those ends splits the chain at the darkest lines between them. The cut
        stands only where that line is a joint: darker than the bone right beside it on both
        sides (within `CORTEX_REACH_MM`), yet brighter than soft tissue. A single long piece
        (a spinous process) has only its darker cancellous core to cut through, which is about
        as dark as the bone beside the cut.
        """
        s = self._slice
        assert s is not None
        x0, y0, x1, y1 = mask_bounds(mask)
        crop = mask[y0 : y1 + 1, x0 : x1 + 1]
        ys, xs = np.indices(crop.shape)
        along = (ys + y0 - y) * axis[0] + (xs + x0 - x) * axis[1]
        markers = (crop & (np.hypot(ys + y0 - y, xs + x0 - x) <= deepest)).astype(np.int32)
        reach = SLENDER * deepest
        lo, hi = float(along[crop].min()), float(along[crop].max())
        if lo < -reach:
            markers[crop & (along <= lo + deepest)] = 2
        if hi > reach:
            markers[crop & (along >= hi - deepest)] = 2
        kept = self._split_at_joint(crop, markers, (slice(y0, y1 + 1), slice(x0, x1 + 1)))
        if kept is None:
            return None
        out = np.zeros_like(mask)
        out[y0 : y1 + 1, x0 : x1 + 1] = fill_holes(kept)
        return out

    def _split_at_joint(
        self, crop: np.ndarray, markers: np.ndarray, window: tuple[slice, slice], rise: float = 0.0
    ) -> np.ndarray | None:
        """The part of `crop` (the mask over `window`) on marker 1's side of the darkest line
        between markers 1 and 2, or None where that line is no joint or disc.

        A watershed on the grey levels splits the mask at the darkest line between the
        markers. It is a joint space or disc only where it is darker than the bone right beside
        it on both sides (within `CORTEX_REACH_MM`: the end plates or joint surfaces, cortex),
        yet brighter than soft tissue. A line through one piece has only its cancellous core to
        cut through, which is about as dark as the bone beside the cut. Each side must be at
        least `rise` brighter than the line.
        """
        s = self._slice
        assert s is not None
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

    def _enclosed_extent(self, estimate: _Estimate, x: int, y: int) -> Box | None:
        """Bounds of what `estimate` finds in a window around the click, doubling the window
        while the extent reaches its edge: the search stays local for small objects, yet never
        clips a big one."""
        s = self._slice
        assert s is not None
        h, w = s.smooth.shape
        r = s.px(SEARCH_MM)
        while True:
            ya, yb, xa, xb = max(y - r, 0), min(y + r + 1, h), max(x - r, 0), min(x + r + 1, w)
            window = (slice(ya, yb), slice(xa, xb))
            found = estimate(window, y - ya, x - xa)
            if found is None:
                return None
            x0, y0, x1, y1 = mask_bounds(found)
            x0, y0, x1, y1 = x0 + xa, y0 + ya, x1 + xa, y1 + ya
            clipped = (
                (xa > 0 and x0 <= xa)
                or (ya > 0 and y0 <= ya)
                or (xb < w and x1 >= xb - 1)
                or (yb < h and y1 >= yb - 1)
            )
            if not clipped:
                return x0, y0, x1, y1
            r *= 2

    def _ray_extent(self, y: int, x: int) -> Box:
        """Bounds of where rays from the click leave the bone through its cortex.

        Where no closed cortical shell surrounds the click, the closed-bone estimates spill
        along the spine into the neighbours. A ray, though, leaves the clicked piece where it
        first passes cortex and then reaches dark tissue (a disc, a joint space, soft tissue);
        a disc bridged at one spot lets only a few rays through, and a running median over
        neighbouring directions drops them. A ray that meets the image edge stops there, so a
        piece the image cuts off runs on to the border.

        Marrow is dark tissue too: an articular pillar or lamina is a cortical tube whose
        cancellous core shows as small dark pockets that the cortex closes all round, and rays
        from a click next to one stopped inside the piece, giving a box of half of it. Dark
        pockets the cortex encloses, up to `RAY_HOLE_MM` squared, count as bone (`_Slice.solid`);
        a body's marrow is one large region walled by the less bright cancellous bone, so its
        rays are unchanged, and a joint space or disc opens to the soft tissue. Sagittal point,
        tuning half 0.8596 → 0.8625 (posterior pieces 0.835 → 0.844), held-out half
        0.8549 → 0.8550; axial unchanged (RAY_HOLE_MM 2.0: +0.0003, 4.5: +0.0029 / +0.0004).
        """
        s = self._slice
        assert s is not None
        h, w = s.smooth.shape
        reach = s.px(RAY_REACH_MM)
        angles = np.arange(RAY_COUNT) * (2 * np.pi / RAY_COUNT)
        steps = np.arange(reach)
        ys = y + np.outer(np.sin(angles), steps)
        xs = x + np.outer(np.cos(angles), steps)
        inside = (ys > -0.5) & (ys < h - 0.5) & (xs > -0.5) & (xs < w - 0.5)
        yi = np.clip(np.rint(ys).astype(np.int64), 0, h - 1)
        xi = np.clip(np.rint(xs).astype(np.int64), 0, w - 1)
        passed_cortex = np.maximum.accumulate(s.cortex[yi, xi], axis=1)
        leaves = passed_cortex & ~s.solid[yi, xi] & inside
        leaves[:, 0] = False
        ends = leaves | ~inside
        stop = np.where(ends.any(axis=1), ends.argmax(axis=1), reach) - 1
        half = RAY_MEDIAN // 2
        stop = np.median([np.roll(stop, i) for i in range(-half, half + 1)], axis=0)
        stop = np.clip(stop.astype(np.int64), 0, reach - 1)
        rays = np.arange(RAY_COUNT)
        py, px = yi[rays, stop], xi[rays, stop]
        return int(px.min()), int(py.min()), int(px.max()), int(py.max())

    def _blob_extent(self, window: tuple[slice, slice], y: int, x: int) -> np.ndarray | None:
        """The filled bone blob under the click (whole vertebra when nothing touches it)."""
        s = self._slice
        assert s is not None
        labels, n = ndi.label(fill_holes(s.closed[CLOSE_MM][window]))
        return labels == _component_at(labels, y, x) if n else None

    def _cortex_extent(
        self, window: tuple[slice, slice], y: int, x: int, necks: bool
    ) -> np.ndarray | None:
        """The filled cortical shell under the click, unclosed, optionally cut at narrow necks.

        Posterior pieces (articular and spinous processes in a sagittal cut) are thin and
        elongated: the distance-map basin under the click covers only a disc of them, and any
        closing joins them to their neighbours across the dark joint spaces. Without a closing
        the pieces are separate shells, except where they touch through a narrow contact,
        which the neck cut removes. No estimate when the click is not inside a closed shell:
        the nearest bright speck would be noise. A piece the image cuts off has its shell open
        at the border, so window sides on the image border count as walls, as for a drawn box.
        """
        s = self._slice
        assert s is not None
        key = (window[0].start, window[0].stop, window[1].start, window[1].stop)
        if self._shells is None or self._shells[0] != key:  # the plain and the necked shell
            walls = _border_walls(window, s.cortex.shape)  # share their first window
            self._shells = key, ndi.label(fill_holes(s.cortex[window], walls))[0]
        labels = self._shells[1]
        if not labels[y, x]:
            return None
        shell = labels == labels[y, x]
        return _neck_region(shell, y, x, s.px(BASIN_CELL_MM)) if necks else shell

    def _basin_extent(
        self, window: tuple[slice, slice], y: int, x: int, close_mm: float
    ) -> np.ndarray | None:
        """The click's distance-map basin plus thin appendages joined by a wide-enough neck.

        Touching vertebrae meet through narrow bridges, which the distance map's watershed cuts;
        processes and pedicles are thin basins of their own and are re-attached when the neck is
        not much thinner than they are. A gentler closing than the box's keeps discs open.
        """
        s = self._slice
        assert s is not None
        filled = fill_holes(s.closed[close_mm][window])
        if not filled.any():
            return None
        return _neck_region(filled, y, x, s.px(BASIN_CELL_MM))

    def _carve(self, mask: np.ndarray, negatives: np.ndarray, positives: np.ndarray) -> np.ndarray:
        """Remove a disk around each negative point, then whatever it cut off from the object."""
        if len(negatives) == 0 or not mask.any():
            return mask
        s = self._slice
        assert s is not None
        h, w = mask.shape
        yy, xx = np.ogrid[:h, :w]
        radius = s.px(NEGATIVE_MM)
        carved = mask.copy()
        for nx, ny in negatives:
            carved &= (yy - ny) ** 2 + (xx - nx) ** 2 > radius**2
        labels, n = ndi.label(carved)
        if n == 0:
            return carved
        keep = {int(labels[y, x]) for x, y in positives} - {0}
        if not keep:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            keep = {int(sizes.argmax())}
        return np.isin(labels, list(keep))
