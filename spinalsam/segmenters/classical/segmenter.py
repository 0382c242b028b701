"""`ClassicalSegmenter`: the prompt's parts routed to the box, point and prior rules.

Why a class at all: the `Segmenter` interface computes per-slice state once (`set_image`, the
maps of `maps.py`) and answers many prompts on it; everything else is pure functions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.base import BackendInfo, Prompt, SegmenterError, SliceImage
from spinalsam.segmenters.classical.box import BOX_MARGIN_MM, MIN_BOX_PX, segment_box
from spinalsam.segmenters.classical.maps import SliceMaps, slice_maps
from spinalsam.segmenters.classical.point import segment_point
from spinalsam.segmenters.classical.prior import near_prior, prior_mask, settle_edge
from spinalsam.segmenters.classical.shape import grow
from spinalsam.segmenters.morphology import Box, mask_bounds

NEGATIVE_MM = 2.5  # radius carved around a negative point


class ClassicalSegmenter:
    """Threshold + morphology + watershed segmenter; see the package docstring for the method."""

    info = BackendInfo(
        name="classical",
        description="Classical segmentation (bone threshold, morphology, watershed); no weights",
        reason="works offline without a GPU or model download",
    )

    def __init__(self) -> None:
        self.maps: SliceMaps | None = None

    def set_image(self, image: SliceImage) -> None:
        self.maps = slice_maps(image)

    def predict(self, prompt: Prompt) -> np.ndarray:
        s = self.maps
        if s is None:
            raise SegmenterError("load an image before segmenting")
        h, w = s.shape
        points = np.asarray(prompt.points, dtype=np.int64).reshape(-1, 2)
        labels = np.asarray(prompt.labels).reshape(-1)
        for x, y in points:
            if not (0 <= x < w and 0 <= y < h):
                raise SegmenterError(f"point ({x}, {y}) lies outside the {w}×{h} image")
        positives = points[labels == 1]
        negatives = points[labels != 1]
        prior = prior_mask(prompt.mask_input, (h, w))
        box = _box(prompt.box, (h, w))
        if box is None and prior is not None:
            box = grow(mask_bounds(prior), s.px(BOX_MARGIN_MM), (h, w))
        if box is not None and prior is not None:
            mask = segment_box(s, box, positives, bays=False)
            mask = near_prior(s, settle_edge(s, mask, box), prior)
        elif box is not None:
            mask = segment_box(s, box, positives, bays=True)
        elif len(positives):
            mask = segment_point(s, positives)
        else:
            raise SegmenterError(
                "add a positive point or a box: negative points alone select nothing"
            )
        return carve(s, mask, negatives, positives)


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


def carve(
    s: SliceMaps, mask: np.ndarray, negatives: np.ndarray, positives: np.ndarray
) -> np.ndarray:
    """Remove a disk around each negative point, then whatever it cut off from the object
    (the part holding a positive point stays; without one, the largest part)."""
    if len(negatives) == 0 or not mask.any():
        return mask
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
