"""Slice-to-slice propagation: one mask on one slice becomes a 3-D object.

Each neighbouring slice is segmented with a prompt made from the previous slice's mask — its
bounding box (enlarged by the allowed growth), one positive point deep inside each sizeable
piece (the distance-transform maximum, far from the edges and thus robust to small shifts), and
the mask itself as `mask_input` for backends that use a prior. Only the Segmenter interface is
used, so every backend propagates. The backend's answer is then held to what an anatomical
object does between neighbouring slices: its outline moves little (`max_growth_mm`, though it
may regrow within the start mask) and it continues from the previous mask (`keep_overlapping`).
Where the backend's answer leaves out a sizeable part of the previous mask, that part is asked
for on its own: a vertebra's label runs on past its body as the posterior elements, and a prompt
around the whole previous mask returns only the body remnant there.
Where the body has ended, the answer's remnant inside the last body is kept on that slice, and
its arch (the thin parts of the last mask, or of the mask before the endplate when the last one
lost it) is followed alone, as bright bone joined to it, for as far as a vertebra's processes
reach below its body.
A side stops when the object vanishes, changes abruptly, outgrows the start mask, fades into
its surroundings, or turns darker than the bone it replaced — at an intervertebral disc a
backend may still return a blob, but it no longer stands out from the tissue around it, and its
inside is disc, not bone.

The caller applies the result as one undo step; nothing here touches the session.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from spinalsam.crosscheck import CrossCheck, sagittal_cross_check
from spinalsam.metrics import iou
from spinalsam.planes import (
    Plane,
    n_slices,
    put_slice,
    slice_distance,
    slice_image,
    slice_spacing,
    take_slice,
)
from spinalsam.segmenters.base import Prompt, Segmenter, SegmenterError, SliceImage
from spinalsam.segmenters.morphology import components_touching
from spinalsam.windowing import Window

__all__ = [
    "PRIOR_FOLLOWING_RULES",
    "PropagationError",
    "PropagationResult",
    "PropagationRules",
    "prompt_from_mask",
    "propagate",
    "rules_for",
]

Direction = Literal["both", "up", "down"]
_STEPS = {"both": (1, -1), "up": (1,), "down": (-1,)}
_RING_MM = 5.0  # width of the surroundings an object's contrast is measured against
# Half the thickness above which a part of a mask is a vertebral body (≥ 25 mm across) rather
# than a lamina or process (5–10 mm thick): pixels deeper than this are the body's core.
_THIN_PART_MM = 6.0
# How far a followed arch may move in-plane per mm between slices: the spinous and articular
# processes slope caudally and backwards by up to about 1.5 mm per mm of height (4.5 mm, about
# one pixel diagonally, between 3 mm slices).
_ARCH_SLOPE = 1.5
# Where a body ends, the backend's answer on the slices through its endplate (about 3 mm of
# dense, partial-volumed bone) may keep only the body's rim and drop the arch; the arch to follow
# past the body is then taken from a mask up to this far before the last one.
_ENDPLATE_MM = 3.0
_JUMPED = "shape changed abruptly"  # the stop reason of the IoU / area-jump test
_FADED = "object faded into its surroundings"  # the stop reason of the contrast test


class PropagationError(ValueError):
    """Propagation cannot start (no mask, bad slice); the message is shown as is."""


@dataclass(frozen=True)
class PropagationRules:
    """What is kept and when a side stops. Defaults suit vertebrae on 1–3 mm slices (docs/3d.md).

    keep_overlapping: keep only the pieces of a new mask that overlap the previous slice's mask.
    An object continues from slice to slice; a piece that appears elsewhere in the box is a
    neighbour (the next vertebra's body showing up beside this one's posterior elements).
    max_growth_mm: the new mask is clipped to this distance around the previous one, so leaks
    cannot creep outwards slice after slice; on coarse pixels (> 2 mm) the outline can then only
    keep or shrink, which is why propagation should start where the object is largest.
    regrow_within_start: also allow any pixel of the start slice's mask. Without it, on coarse
    pixels one under-segmented slice caps every later one (the outline can only shrink); the
    start mask is the largest, user-checked cross-section, so regrowing into it lets the outline
    recover without letting a leak creep beyond it.
    min_contrast_fraction: the object's contrast (mean inside minus mean of a 5 mm ring around
    it) relative to the start slice's; below it the mask no longer marks a distinct object.
    min_part_fraction: a piece of the previous mask that the backend's answer left out, holding at
    least this fraction of the start area, gets a prompt of its own (its box and deepest point),
    and what the backend finds there is added. Where a vertebral body ends (at the disc) its label
    continues for a few slices as the posterior elements (laminae, articular and spinous
    processes); a prompt around the whole previous mask then returns only the body remnant, the
    largest bright piece, and drops them. The part's answer is clipped to `max_growth_mm` around
    the part itself, without regrowth into the start mask: the next vertebra's body takes the
    ended body's place, and must not come in through a part. Because the parts add area, a disc
    blob could then pass the area test, which is what the contrast rule is for; None: off.
    arch_beyond_body_mm: when the object stops (at the disc: it vanished, jumped or faded), its
    thin parts — what lies more than 6 mm outside the last mask's thick core, i.e. the laminae
    and processes rather than the body — are followed on alone for up to this distance. The
    inferior articular and spinous processes of a lumbar or lower thoracic vertebra reach about
    2 cm below its lower endplate, sloping caudally and backwards by more than a 3 mm pixel per
    slice, so neither the growth limit nor the backend (whose answer is the next body there)
    follows them. On each slice the arch is the bone within 1.5 mm per mm between slices
    (4.5 mm, one pixel diagonally, at 3 mm) of the previous arch and joined to it; it stops when
    it fades (< `min_pixels`) or grows beyond `max_area_ratio` × its area where it left the body
    (processes taper away from the body; a larger arch has met the next vertebra's bone). The
    next vertebra's processes join it without such growth, which is why the distance limit is
    what ends it on 3 mm slices. The arch is taken from the last accepted mask, or, when that
    one's thin parts lead nowhere (the backend kept only the endplate's rim there and dropped a
    lamina or spinous process), from a mask up to 3 mm (the endplate) before it, followed on
    through the slices in between, where it is added to the masks.
    Where the side stopped because the object faded, the arch is not taken from the last
    accepted mask: the slice before a disc blob is the endplate, partial-volumed with the disc,
    whose mask is the body's footprint (and, from a looser start mask, the disc regrown into
    it), so its thin parts are the blob's edge rather than an arch; None: off.
    arch_bone_fraction: bone of a followed arch is at least this fraction of the start mask's
    mean value. Cortical arch bone is denser than the cancellous body that makes up most of the
    start mask, and the soft tissue and ligaments between the processes are darker.
    keep_body_remnant: where the shape test stops a side (IoU or area jump, not a vanished or
    faded object), the part of the rejected answer inside the previous mask's body (its thick
    part) is kept on that slice. Where a body ends, its last slice holds the remnant of the
    endplate, which lies within the body above it; the label runs on as the arch, so the shape
    jumps although the answer is right there. A neighbour's body or the disc, the other causes
    of a jump, mostly lie outside that footprint, and a faded answer (disc) is not kept at all.
    min_mean_fraction: a side stops when the mean value inside the new mask falls below this
    fraction of the mean inside the last slice's mask. Regrowth within the start mask lets a
    blob at the disc keep the body's footprint, and its ring contrast can stay just above the
    contrast stop (the disc is still brighter than the fat around it); but inside, the disc
    (about 80–100 HU at 3 mm) is far darker than the endplate or cancellous bone it replaced,
    while from one body slice to the next the mean changes by less than a fifth. None: off.
    min_inside_previous: when set, the shape test is this instead of IoU and shrinkage: at least
    this fraction of the new mask lies within the previous slice's mask, and the area grows by
    at most `max_area_ratio`. A segmenter that follows its prior returns, where the body ends,
    the arch alone — a third of the last mask and inside it, which the IoU test calls a jump;
    what is wrong there is a mask that has moved off the previous one (the next vertebra's
    body). None: the IoU / area-jump test.
    deepest_points: the prompt holds a positive point at the deepest pixel of every sizeable
    piece of the previous mask. For a segmenter with no prior input the points say which pieces
    in the box are the object. For one that follows its prior they mislead where a body ends:
    the deepest pixel lies in the body, and on the next slice that spot is the disc or the next
    vertebra's body, which the point then asks for.
    """

    min_area_fraction: float = 0.15  # of the start mask's area: below it the object vanished
    min_pixels: int = 10  # used as is only without spacing; see min_area_mm2
    # The smallest piece that counts, in mm² (a spinous process tip is a few mm across): on a
    # slice with known spacing it sets min_pixels, so 0.7 mm and 3 mm pixels stop alike.
    min_area_mm2: float | None = 20.0
    min_iou: float = 0.5  # with the previous slice's mask: below it the shape jumped
    max_area_ratio: float = 2.2  # growth or shrinkage factor from one slice to the next
    max_area_vs_start: float = 1.5  # a side stops when the object outgrows the start mask
    keep_overlapping: bool = True
    max_growth_mm: float | None = 2.0  # in-plane, per slice; < 1 pixel means "never grow"
    regrow_within_start: bool = True
    min_contrast_fraction: float = 0.3  # of the start slice's object-vs-surroundings contrast
    min_part_fraction: float | None = 0.05  # of the start area: a left-out part asked for alone
    arch_beyond_body_mm: float | None = 20.0  # the arch followed alone past the body's end
    arch_bone_fraction: float = 1.0  # of the start mask's mean value: bone of a followed arch
    keep_body_remnant: bool = True  # where the shape jumps, keep the answer inside the old body
    min_mean_fraction: float | None = 0.75  # of the last slice's mean inside its mask
    min_inside_previous: float | None = None  # of the new mask: replaces min_iou and shrinkage
    deepest_points: bool = True  # a positive point at the deepest pixel of each sizeable piece
    sagittal_check: bool = False  # an axial result trimmed by one mid-sagittal read (crosscheck)


# For a segmenter that was trained to follow the neighbouring slice's mask given as its prior
# (the learned default), measured on the development sources (docs/3d.md): its answer is trusted
# as it is. The growth clip, the left-out parts asked for alone and the arch walked by
# thresholding were made for a classical segmenter that leaks and drops thin parts; on a
# prior-following network they cut the posterior elements it follows. Where the body ends it
# returns the arch alone, inside the last mask (`min_inside_previous` instead of the IoU test).
# What it does wrong is to slide on into the next vertebra's body — gradually, where the slices
# cut the disc obliquely or partial-volumed, with no jump at all — which a point at the last
# body's deepest pixel asks for (`deepest_points`) and which the mid-sagittal read after the
# axial pass trims, since the disc is a gap there (`sagittal_check`). With that read, the
# tighter area cap (1.2 × the start) and the darker-than-the-last-slice stop no longer gain on
# the development sources, so the area cap is the defaults' and the darker stop is off.
PRIOR_FOLLOWING_RULES = PropagationRules(
    max_growth_mm=None,
    min_part_fraction=None,
    arch_beyond_body_mm=None,
    min_mean_fraction=None,
    min_inside_previous=0.7,
    deepest_points=False,
    sagittal_check=True,
)


def rules_for(segmenter: Segmenter) -> PropagationRules:
    """The rules that suit the segmenter: `PRIOR_FOLLOWING_RULES` when it declares
    `follows_prior = True`, the defaults (made for the classical segmenter) otherwise."""
    return (
        PRIOR_FOLLOWING_RULES if getattr(segmenter, "follows_prior", False) else PropagationRules()
    )


@dataclass
class PropagationResult:
    """Masks by slice index (the start slice included), why each side stopped, and what the
    sagittal check did (None when it did not run)."""

    masks: dict[int, np.ndarray] = field(default_factory=dict)
    stopped_up: str = ""
    stopped_down: str = ""
    cross_check: CrossCheck | None = None

    @property
    def n_slices(self) -> int:
        """Slices with a mask, the start slice included."""
        return len(self.masks)

    def to_volume(self, shape: tuple[int, int, int], plane: Plane) -> np.ndarray:
        """The masks as one boolean volume, ready to merge into a label map in one step."""
        volume = np.zeros(shape, dtype=bool)
        for index, mask in self.masks.items():
            put_slice(volume, plane, index, mask)
        return volume


def prompt_from_mask(
    mask: np.ndarray, margin_px: tuple[int, int] = (2, 2), points: bool = True
) -> Prompt:
    """A prompt that asks a backend for "this object again" on the next slice.

    The box is enlarged by `margin_px` (x, y) on each side, so the object may grow a little;
    with `points`, one positive point is put at the deepest pixel of every piece holding ≥ 10 %
    of the area.
    """
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise PropagationError("the mask to propagate is empty")
    h, w = mask.shape
    pad_x, pad_y = margin_px
    box = np.array(
        [
            max(0, xs.min() - pad_x),
            max(0, ys.min() - pad_y),
            min(w - 1, xs.max() + pad_x),
            min(h - 1, ys.max() + pad_y),
        ]
    )
    found = _deepest_points(mask, ys, xs) if points else np.zeros((0, 2), dtype=np.int64)
    return Prompt(
        points=found, labels=np.ones(len(found), dtype=np.int64), box=box, mask_input=mask
    )


def _deepest_points(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(x, y) of the deepest pixel of every piece holding ≥ 10 % of the mask's area."""
    # Work on the bounding box with a background border only (far less work than the full
    # slice); the image edge then counts as background, keeping points off the edge too.
    y0, x0 = ys.min() - 1, xs.min() - 1
    crop = np.pad(mask[y0 + 1 : ys.max() + 1, x0 + 1 : xs.max() + 1], 1)
    pieces, count = ndi.label(crop)
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)[1:]
    depth = ndi.distance_transform_edt(crop)
    points = []
    for piece in np.flatnonzero(sizes >= 0.1 * sizes.sum()) + 1:
        y, x = np.unravel_index(np.argmax(np.where(pieces == piece, depth, 0)), crop.shape)
        points.append((x + x0, y + y0))
    return np.array(points, dtype=np.int64).reshape(-1, 2)


def _overlapping_pieces(mask: np.ndarray, previous: np.ndarray) -> np.ndarray:
    pieces, _ = ndi.label(mask)
    return components_touching(pieces, mask & previous)


def _box_margin(growth_mm: float | None, spacing_xy: tuple[float, float] | None) -> tuple[int, int]:
    """The box margin matching the allowed growth: at least 1 px, 2 px without spacing."""
    if spacing_xy is None or growth_mm is None:
        return (2, 2)
    sx, sy = spacing_xy
    return max(1, math.ceil(growth_mm / sx)), max(1, math.ceil(growth_mm / sy))


def _reach(
    mask: np.ndarray, distance_mm: float, spacing_xy: tuple[float, float] | None
) -> np.ndarray:
    """Pixels within `distance_mm` of the mask, itself included (1 px per mm without spacing)."""
    sx, sy = spacing_xy or (1.0, 1.0)
    ys, xs = np.nonzero(mask)
    pad_y, pad_x = int(distance_mm / sy) + 1, int(distance_mm / sx) + 1
    y0, x0 = max(0, ys.min() - pad_y), max(0, xs.min() - pad_x)
    crop = mask[y0 : ys.max() + pad_y + 1, x0 : xs.max() + pad_x + 1]
    reach = np.zeros_like(mask)
    near = ndi.distance_transform_edt(~crop, sampling=(sy, sx)) <= distance_mm
    reach[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = near
    return reach


def _contrast(
    pixels: np.ndarray, mask: np.ndarray, spacing_xy: tuple[float, float] | None
) -> float:
    """Mean inside the mask minus mean of a ring around it: how much the object stands out."""
    ring = _reach(mask, _RING_MM, spacing_xy) & ~mask
    return float(pixels[mask].mean() - pixels[ring].mean()) if ring.any() else 0.0


def _left_out_parts(
    segmenter: Segmenter,
    image: SliceImage,
    previous: np.ndarray,
    answer: np.ndarray,
    min_pixels: float,
    growth_mm: float | None,
) -> np.ndarray:
    """What the backend finds for each sizeable piece of `previous` that `answer` left out.

    Each piece is prompted alone (box grown by `growth_mm`, its deepest point), and its answer is
    held to that piece: within `growth_mm` of it and overlapping it. A piece the backend
    refuses (too small a box) is skipped.
    """
    found = np.zeros_like(answer)
    if np.count_nonzero(previous & ~answer) < min_pixels:  # the usual slice: nothing left out
        return found
    pieces, count = ndi.label(previous & ~ndi.binary_dilation(answer))
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)[1:]
    margin = _box_margin(growth_mm, image.spacing)
    for piece in np.flatnonzero(sizes >= min_pixels) + 1:
        part = pieces == piece
        try:
            mask = np.asarray(segmenter.predict(prompt_from_mask(part, margin)), dtype=bool)
        except SegmenterError:  # a part is an extra; the answer for the whole mask stands
            continue
        if growth_mm is not None:
            mask &= _reach(part, growth_mm, image.spacing)
        found |= _overlapping_pieces(mask, part)
    return found


def _follow(
    segmenter: Segmenter,
    image: SliceImage,
    previous: np.ndarray,
    start_mask: np.ndarray,
    rules: PropagationRules,
) -> np.ndarray:
    """The backend's mask on the next slice, held to what the object can do between slices."""
    segmenter.set_image(image)
    margin = _box_margin(rules.max_growth_mm, image.spacing)
    prompt = prompt_from_mask(previous, margin, rules.deepest_points)
    mask = np.asarray(segmenter.predict(prompt), dtype=bool)
    if rules.max_growth_mm is not None:
        allowed = _reach(previous, rules.max_growth_mm, image.spacing)
        mask = mask & (allowed | start_mask if rules.regrow_within_start else allowed)
    if rules.min_part_fraction is not None:
        min_pixels = max(rules.min_pixels, rules.min_part_fraction * start_mask.sum())
        mask |= _left_out_parts(segmenter, image, previous, mask, min_pixels, rules.max_growth_mm)
    if rules.keep_overlapping:
        mask = _overlapping_pieces(mask, previous)
    return mask


def _stop_reason(
    mask: np.ndarray,
    previous: np.ndarray,
    start_area: int,
    contrast_ratio: float | None,
    mean_ratio: float | None,
    rules: PropagationRules,
) -> str | None:
    area, previous_area = int(mask.sum()), int(previous.sum())
    if area < max(rules.min_pixels, rules.min_area_fraction * start_area):
        return "object vanished"
    if area > rules.max_area_vs_start * start_area:
        return f"grew beyond the start object (area ×{area / start_area:.2f} of the start slice)"
    ratio = area / previous_area
    if rules.min_inside_previous is None:
        overlap = iou(mask, previous)
        if overlap < rules.min_iou or max(ratio, 1 / ratio) > rules.max_area_ratio:
            return f"{_JUMPED} (IoU {overlap:.2f}, area ×{ratio:.2f})"
    else:  # a shrink within the previous mask is the body ending and its arch going on
        inside = np.count_nonzero(mask & previous) / area
        if inside < rules.min_inside_previous or ratio > rules.max_area_ratio:
            return f"{_JUMPED} ({inside:.0%} inside the last mask, area ×{ratio:.2f})"
    if contrast_ratio is not None and contrast_ratio < rules.min_contrast_fraction:
        return f"{_FADED} (contrast {contrast_ratio:.0%} of the start)"
    if (
        mean_ratio is not None
        and rules.min_mean_fraction is not None
        and mean_ratio < rules.min_mean_fraction
    ):
        return (
            f"object darker than the bone it replaced (mean {mean_ratio:.0%} of the last slice's)"
        )
    return None


def _thin_parts(mask: np.ndarray, spacing_xy: tuple[float, float] | None) -> np.ndarray:
    """The mask without its thick parts: the arch and processes, without the body (if any)."""
    sx, sy = spacing_xy or (1.0, 1.0)
    depth = ndi.distance_transform_edt(np.pad(mask, 1), sampling=(sy, sx))[1:-1, 1:-1]
    core = depth > _THIN_PART_MM
    return mask & ~_reach(core, _THIN_PART_MM, spacing_xy) if core.any() else mask


@dataclass(frozen=True)
class _ArchWalk:
    """How an arch is followed past its body in one propagation (`arch_beyond_body_mm`)."""

    bone_level: float  # the arch's bone is at least this bright
    step_mm: float  # how far it may move in-plane from one slice to the next
    spacing_xy: tuple[float, float] | None
    max_slices: int  # how many slices it may run on past the body (0: not followed)
    endplate_slices: int  # how many of the last body masks are looked at for an arch

    def follow(self, pixels: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """Bone within a step of the previous arch and joined to it."""
        near = _reach(previous, self.step_mm, self.spacing_xy)
        return _overlapping_pieces((pixels >= self.bone_level) & near, previous)


def _arch_stop_reason(mask: np.ndarray, seed_area: int, rules: PropagationRules) -> str | None:
    """Processes taper away from the body: an arch far larger than where it left has met bone."""
    area = int(mask.sum())
    if area < rules.min_pixels:
        return "faded"
    if area > rules.max_area_ratio * seed_area:
        return f"met other bone (area ×{area / seed_area:.2f} of where it left the body)"
    return None


def _traced_arch(
    bodies: list[tuple[int, np.ndarray]],
    pixels_at: Callable[[int], np.ndarray],
    stop_index: int,
    walk: _ArchWalk,
    rules: PropagationRules,
) -> tuple[dict[int, np.ndarray], int] | None:
    """The arch followed from the latest body slice whose arch reaches the slice the body ends on.

    `bodies` are the accepted (index, mask) pairs, the last one first. Returns the arch on every
    slice after its seed up to `stop_index` and the seed's area, or None when no arch reaches it.
    On the last body slices (endplate, disc) the backend's answer may keep only the body's rim
    and drop a lamina or spinous process joined to it by partial-volumed pixels alone; the thin
    parts of that mask then lead nowhere, while the arch of an earlier mask still runs on.
    """
    for seed_index, mask in bodies:
        arch = _thin_parts(mask, walk.spacing_xy)
        seed = int(arch.sum())
        if seed < rules.min_pixels:
            continue
        step = 1 if stop_index > seed_index else -1
        traced = {}
        for index in range(seed_index + step, stop_index + step, step):
            arch = walk.follow(pixels_at(index), arch)
            if _arch_stop_reason(arch, seed, rules) is not None:
                break
            traced[index] = arch
        else:
            return traced, seed
    return None


def _arch_past_body(
    result: PropagationResult,
    index: int,
    step: int,
    start_index: int,
    reason: str,
    pixels_at: Callable[[int], np.ndarray],
    walk: _ArchWalk,
    rules: PropagationRules,
) -> tuple[np.ndarray, int] | None:
    """The arch on slice `index`, where the body stopped for `reason`, and the area it left the
    body with; None when no arch runs on. An arch the backend dropped on the slices before
    (`_traced_arch`) is added to their masks in `result`."""
    last_bodies = range(index - step, start_index - step, -step)[: walk.endplate_slices]
    bodies = [(j, result.masks[j]) for j in last_bodies]
    if reason.startswith(_FADED):  # the last mask was the endplate by the disc
        bodies = bodies[1:]
    traced = _traced_arch(bodies, pixels_at, index, walk, rules)
    if traced is None:
        return None
    arches, seed = traced
    arch = arches.pop(index)
    for j, arch_mask in arches.items():  # the arch the backend dropped
        result.masks[j] = result.masks[j] | arch_mask
    return arch, seed


def propagate(
    volume: np.ndarray,
    is_hu: bool,
    spacing: tuple[float, float, float] | None,
    plane: Plane,
    start_index: int,
    start_mask: np.ndarray,
    segmenter: Segmenter,
    *,
    window: Window | None = None,
    direction: Direction = "both",
    max_slices: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    rules: PropagationRules | None = None,
) -> PropagationResult:
    """Propagate `start_mask` (on slice `start_index` of `plane`) through neighbouring slices.

    `spacing` is (x, y, z) mm as CTImage stores it; `window` is what `windowing.render` takes.
    "up" is increasing slice index (superior for axial slices of an LPS volume); `max_slices`
    limits each side; `on_progress(done, total)` is called after every slice;
    setting `cancel` stops both sides and keeps what was done so far. `rules` default to the
    ones that suit the segmenter (`rules_for`).
    """
    rules = rules_for(segmenter) if rules is None else rules
    if direction not in _STEPS:
        raise PropagationError(f"direction must be one of {', '.join(_STEPS)}, not {direction!r}")
    count = n_slices(volume.shape, plane)
    if not 0 <= start_index < count:
        raise PropagationError(f"slice {start_index} is outside the volume (0–{count - 1})")
    start_mask = np.asarray(start_mask, dtype=bool)
    expected = take_slice(volume, plane, start_index).shape
    if start_mask.shape != expected:
        raise PropagationError(f"the mask {start_mask.shape} does not fit the slice {expected}")
    start_area = int(start_mask.sum())
    if start_area == 0:
        raise PropagationError("segment the object on this slice first, then propagate")

    limit = count if max_slices is None else max(0, max_slices)
    sides = {
        step: range(start_index + step, (count if step > 0 else -1), step)[:limit]
        for step in _STEPS[direction]
    }
    total, finished = sum(len(r) for r in sides.values()), 0
    pixel_spacing = slice_spacing(spacing, plane)
    if rules.min_area_mm2 is not None and pixel_spacing is not None:
        pixel_mm2 = pixel_spacing[0] * pixel_spacing[1]
        rules = replace(rules, min_pixels=max(1, math.ceil(rules.min_area_mm2 / pixel_mm2)))

    def pixels_at(index: int) -> np.ndarray:
        return take_slice(volume, plane, index).astype(np.float32)

    start_pixels = pixels_at(start_index)
    start_contrast = _contrast(start_pixels, start_mask, pixel_spacing)
    result = PropagationResult(masks={start_index: start_mask})
    reasons = {1: "not propagated upwards", -1: "not propagated downwards"}
    between_slices_mm = slice_distance(spacing, plane) or 1.0
    walk = _ArchWalk(
        bone_level=rules.arch_bone_fraction * float(start_pixels[start_mask].mean()),
        step_mm=_ARCH_SLOPE * between_slices_mm,
        spacing_xy=pixel_spacing,
        max_slices=(
            0
            if rules.arch_beyond_body_mm is None
            else int(rules.arch_beyond_body_mm / between_slices_mm)
        ),
        endplate_slices=1 + int(_ENDPLATE_MM / between_slices_mm),
    )
    for step, indices in sides.items():
        previous, body_stop, arch, arch_seed = start_mask, "", 0, 0
        previous_mean = float(start_pixels[start_mask].mean())
        reasons[step] = "edge of the volume" if len(indices) < limit else "slice limit reached"
        for offset, index in enumerate(indices, start=1):
            if cancel is not None and cancel.is_set():
                reasons[step] = "cancelled"
                break
            if body_stop:  # the body has ended: its arch runs on alone, without the backend
                arch += 1
                pixels = pixels_at(index)
                mask = walk.follow(pixels, previous)
                reason = (
                    f"reached {rules.arch_beyond_body_mm:.0f} mm beyond the body"
                    if arch > walk.max_slices
                    else _arch_stop_reason(mask, arch_seed, rules)
                )
                if reason is not None:
                    reasons[step] = f"{body_stop}; the arch, followed alone, {reason}"
                    break
            else:
                image = slice_image(volume, is_hu, spacing, plane, index, window)
                pixels = image.pixels
                try:
                    mask = _follow(segmenter, image, previous, start_mask, rules)
                except SegmenterError as error:
                    reasons[step] = f"segmenter failed: {error}"
                    break
                faded = (
                    _contrast(pixels, mask, pixel_spacing) / start_contrast
                    if mask.any() and start_contrast
                    else None
                )
                darker = (
                    float(pixels[mask].mean()) / previous_mean
                    if mask.any() and previous_mean > 0
                    else None
                )
                reason = _stop_reason(mask, previous, start_area, faded, darker, rules)
                if reason is not None:
                    reasons[step] = body_stop = reason
                    if rules.keep_body_remnant and reason.startswith(_JUMPED):
                        remnant = mask & ~_thin_parts(previous, pixel_spacing)
                        if np.count_nonzero(remnant) >= rules.min_pixels:
                            result.masks[index] = remnant  # the arch, if any, is added below
                    past = (
                        _arch_past_body(
                            result, index, step, start_index, reason, pixels_at, walk, rules
                        )
                        if walk.max_slices
                        else None
                    )
                    if past is None:  # no arch reaches past the body: its stop reason stands
                        break
                    (mask, arch_seed), arch = past, 1
            previous, previous_mean = mask, float(pixels[mask].mean())
            result.masks[index] = result.masks[index] | mask if index in result.masks else mask
            if on_progress is not None:
                on_progress(finished + offset, total)
        finished += len(indices)  # a side that stopped early counts as done
        if on_progress is not None:
            on_progress(finished, total)
    result.stopped_up, result.stopped_down = reasons[1], reasons[-1]
    if rules.sagittal_check and plane == "axial" and not (cancel is not None and cancel.is_set()):
        result.cross_check = sagittal_cross_check(
            result.masks, volume, is_hu, spacing, start_index, segmenter, window
        )
    return result
