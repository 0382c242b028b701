"""An untuned four-step baseline: the yardstick a tuned or learned backend has to beat.

Box: threshold the box crop at its own mean grey level, keep the largest component, close,
fill holes. Point: a marker watershed on the gradient magnitude, flooded from the click against
the border of the click's surroundings (40 mm, or a quarter of a render without spacing), so
the click's basin ends at the strongest edge around it; closed and filled like a box answer.
No parameter was fitted to any data set, which is the point:
it keeps its level across sources, so a backend that falls below it on a held-out source has
learned its development data rather than vertebrae.

Works on the windowed display, so 8-bit renders and HU slices go through the same steps.
Negative points are background seeds of the watershed too; a box answer ignores them, and a
`mask_input` alone (propagation) is read as the box around it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from spinalsam.segmenters.base import BackendInfo, Prompt, SegmenterError, SliceImage

__all__ = ["BaselineSegmenter"]

_CLOSING = ndi.generate_binary_structure(2, 1)  # 3×3 cross, twice: gaps up to ~4 px close
_CLOSING_ITERATIONS = 2
_REACH_MM = 40.0  # a click's surroundings: a lumbar body is ~40–50 mm wide
_REACH_OF_IMAGE = 0.25  # without spacing (a render of unknown zoom): a quarter of the image


def _largest_component(mask: np.ndarray) -> np.ndarray:
    pieces, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(pieces.ravel())[1:]
    return pieces == int(np.argmax(sizes)) + 1


def _close_and_fill(mask: np.ndarray) -> np.ndarray:
    """Closing on a padded copy (no gap opens at the crop edge), then hole filling."""
    pad = _CLOSING_ITERATIONS
    closed = ndi.binary_closing(
        np.pad(mask, pad), structure=_CLOSING, iterations=_CLOSING_ITERATIONS
    )[pad:-pad, pad:-pad]
    return ndi.binary_fill_holes(closed)


class BaselineSegmenter:
    """Threshold at the box mean / watershed from the click; see the module docstring."""

    info = BackendInfo(
        name="baseline",
        description="Untuned 4-step baseline: box-mean threshold, largest component, closing, "
        "hole filling; points: watershed from the click.",
    )

    def __init__(self) -> None:
        self._image: SliceImage | None = None
        self._gradient: np.ndarray | None = None

    def set_image(self, image: SliceImage) -> None:
        self._image = image
        self._gradient = None  # only point prompts need it: computed on first use

    def predict(self, prompt: Prompt) -> np.ndarray:
        if self._image is None:
            raise SegmenterError("no image set")
        shape = self._image.shape
        box = prompt.box
        if box is None and len(prompt.points) == 0 and prompt.mask_input is not None:
            box = _bounds(np.asarray(prompt.mask_input, dtype=bool))
        if box is not None:
            return self._from_box(_clipped_box(box, shape))
        return self._from_points(prompt)

    def _from_box(self, box: tuple[int, int, int, int]) -> np.ndarray:
        assert self._image is not None
        x0, y0, x1, y1 = box
        crop = self._image.display[y0 : y1 + 1, x0 : x1 + 1].astype(np.float32)
        out = np.zeros(self._image.shape, dtype=bool)
        if crop.size == 0 or crop.max() <= crop.min():
            return out
        part = _close_and_fill(_largest_component(crop > crop.mean()))
        out[y0 : y1 + 1, x0 : x1 + 1] = part
        return out

    def _from_points(self, prompt: Prompt) -> np.ndarray:
        assert self._image is not None
        image = self._image
        h, w = image.shape
        points = np.asarray(prompt.points, dtype=np.int64).reshape(-1, 2)
        labels = np.asarray(prompt.labels).reshape(-1)
        positive = points[labels == 1]
        if len(positive) == 0:
            raise SegmenterError("add a positive point or a box")
        if np.any((points < 0) | (points >= (w, h))):
            raise SegmenterError("a point lies outside the image")
        if image.spacing:
            reach = round(_REACH_MM / min(image.spacing))
        else:
            reach = round(_REACH_OF_IMAGE * min(h, w))
        x0, y0 = np.maximum(positive.min(axis=0) - reach, 0)
        x1, y1 = np.minimum(positive.max(axis=0) + reach, (w - 1, h - 1))
        window = image.display[y0 : y1 + 1, x0 : x1 + 1].astype(np.float32)
        markers = np.zeros(window.shape, dtype=np.int32)
        markers[[0, -1], :] = 2
        markers[:, [0, -1]] = 2
        for (x, y), label in zip(points, labels, strict=True):
            if x0 <= x <= x1 and y0 <= y <= y1:
                markers[y - y0, x - x0] = 1 if label == 1 else 2
        gradient = self._gradient_map()[y0 : y1 + 1, x0 : x1 + 1]
        region = _close_and_fill(watershed(gradient, markers) == 1)
        out = np.zeros(image.shape, dtype=bool)
        out[y0 : y1 + 1, x0 : x1 + 1] = region
        return out

    def _gradient_map(self) -> np.ndarray:
        """Gradient magnitude of the display (unsmoothed: at 3 mm a cortex is one pixel)."""
        if self._gradient is None:
            assert self._image is not None
            display = self._image.display.astype(np.float32)
            self._gradient = np.hypot(ndi.sobel(display, axis=0), ndi.sobel(display, axis=1))
        return self._gradient


def _bounds(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise SegmenterError("the prior mask is empty")
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()])


def _clipped_box(box: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) sorted and clipped to the image, whichever corners were given."""
    h, w = shape
    x0, y0, x1, y1 = (round(float(v)) for v in np.asarray(box).reshape(4))
    x0, x1 = sorted((min(max(x0, 0), w - 1), min(max(x1, 0), w - 1)))
    y0, y1 = sorted((min(max(y0, 0), h - 1), min(max(y1, 0), h - 1)))
    return x0, y0, x1, y1
