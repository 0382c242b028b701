"""Which objects a slice is scored on, and the prompts a protocol user gives for each.

The protocol of shared/data/README.md: per ground-truth object, the box is its tight bounding
box grown by a margin and the point is its interior pixel farthest from the boundary. The 8-bit
sample folders have no spacing and keep the published 5 px margin and 50 px minimum, so their
numbers stay comparable with the paper's; where spacing is known, both are physical (the 5 px
were set on ~0.7 mm lumbar slices: 3.5 mm), since 5 px at 3 mm would be a 15 mm margin. The
margin is per axis: a sagittal slice of 0.7 × 2.5 mm voxels gets 5 px across and 1 px along
the spine, not 5 px (12.5 mm, past the disc into the next vertebra) both ways.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.base import Prompt

__all__ = [
    "BOX_MARGIN_PX",
    "MARGIN_MM",
    "MIN_AREA_MM2",
    "MIN_COMPONENT_PX",
    "PROMPT_KINDS",
    "Margin",
    "Target",
    "grown_box",
    "margin_px",
    "min_area_px",
    "prompt_for",
    "targets_from_labels",
    "targets_from_mask",
]

PROMPT_KINDS = ("box", "point", "box+point")
BOX_MARGIN_PX = 5  # the published protocol, for slices without spacing
MIN_COMPONENT_PX = 50  # the published protocol: smaller components are annotation specks
MARGIN_MM = 3.5  # 5 px at ~0.7 mm, the spacing the published margin was chosen on
# A piece under 100 mm² (10 × 10 mm) is a partial-volume sliver at a vertebra's end or a
# process tip; a lumbar body's cross-section is ~1,000–1,500 mm². 200 px at 0.7 mm, 11 at 3 mm.
MIN_AREA_MM2 = 100.0


@dataclass(frozen=True)
class Target:
    """One object to segment on one slice: its mask, protocol box, deepest point and depth.

    `key` names it stably (label id and piece index), so seeded jitter is the same for every
    backend and every run, whatever order slices are visited in.
    """

    key: str
    mask: np.ndarray  # (H, W) bool
    box: np.ndarray  # (4,) x0, y0, x1, y1, margin included, clipped to the image
    point: np.ndarray  # (2,) x, y
    inner_radius: float  # max distance-transform value, px: how far the point is from the edge


Margin = int | tuple[int, int]  # pixels, the same on both axes or (x, y)


def margin_px(
    spacing_xy: tuple[float, float] | None, margin_mm: float = MARGIN_MM
) -> tuple[int, int]:
    """The (x, y) box margin in pixels: the published 5 px without spacing, else `margin_mm`
    on each axis (≥ 1 px; 0 for a zero margin)."""
    if spacing_xy is None:
        return (BOX_MARGIN_PX, BOX_MARGIN_PX)
    if margin_mm <= 0:
        return (0, 0)
    mx, my = (max(1, round(margin_mm / s)) for s in spacing_xy)
    return (mx, my)


def min_area_px(spacing_xy: tuple[float, float] | None, area_mm2: float = MIN_AREA_MM2) -> int:
    """The smallest object scored, in pixels: the published 50 px without spacing."""
    if spacing_xy is None:
        return MIN_COMPONENT_PX
    return max(1, math.ceil(area_mm2 / (spacing_xy[0] * spacing_xy[1])))


def grown_box(mask: np.ndarray, margin: Margin) -> np.ndarray:
    """Tight bounding box (x0, y0, x1, y1) of `mask` grown by `margin`, clipped to the image."""
    mx, my = (margin, margin) if isinstance(margin, int) else margin
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return np.array(
        [
            max(int(xs.min()) - mx, 0),
            max(int(ys.min()) - my, 0),
            min(int(xs.max()) + mx, w - 1),
            min(int(ys.max()) + my, h - 1),
        ]
    )


def _deepest(component: np.ndarray) -> tuple[np.ndarray, float]:
    """(x, y) of the pixel deepest inside, and its depth; the image edge counts as boundary."""
    depth = ndi.distance_transform_edt(np.pad(component, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return np.array([int(x), int(y)]), float(depth[y, x])


def _target(key: str, component: np.ndarray, margin: Margin) -> Target:
    point, radius = _deepest(component)
    return Target(key, component, grown_box(component, margin), point, radius)


def targets_from_mask(mask: np.ndarray, margin: Margin, min_px: int) -> Iterator[Target]:
    """One target per connected component of a binary mask (the sample folders' masks)."""
    pieces, n = ndi.label(mask)
    for index in range(1, n + 1):
        component = pieces == index
        if component.sum() >= min_px:
            yield _target(f"c{index}", component, margin)


def targets_from_labels(
    labels: np.ndarray, ids: Iterable[int], margin: Margin, min_px: int
) -> Iterator[Target]:
    """One target per connected piece of each label: the folder protocol, per vertebra.

    Pieces, not whole labels, because a point names one piece (a mid-sagittal vertebra is a
    body and, across the canal, its spinous process); labels, not the binary union, because
    vertebrae touch (at 3 mm a disc is one pixel) and each must be asked for on its own.
    """
    for label in ids:
        pieces, n = ndi.label(labels == label)
        for index in range(1, n + 1):
            component = pieces == index
            if component.sum() >= min_px:
                yield _target(f"L{label}.{index}", component, margin)


def prompt_for(kind: str, box: np.ndarray | None, point: np.ndarray | None) -> Prompt:
    """The prompt of one kind ("box", "point", "box+point") from a box and a point."""
    if kind not in PROMPT_KINDS:
        raise ValueError(f"unknown prompt kind {kind!r}; choose one of {PROMPT_KINDS}")
    use_box = box if "box" in kind else None
    if "point" not in kind:
        return Prompt(box=use_box)
    assert point is not None
    return Prompt(
        points=np.asarray(point, dtype=np.int64).reshape(1, 2),
        labels=np.ones(1, dtype=np.int64),
        box=use_box,
    )
