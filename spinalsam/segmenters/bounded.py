"""Any segmenter, run on at most `max_pixels` pixels per call: large slices are segmented on a
smaller grid and the mask is mapped back.

Why: the classical segmenter's cost grows faster than the pixel count (0.4 s at 1024², 138 s at
4096², > 25 min at 8192²) and SAM resizes to 1024 anyway, so one click on a huge slice must not
take the CPU for minutes. Shrinking by a factor s keeps every physical size the same because the
spacing grows by 1/s (the classical method works in millimetres), and the mask comes back on the
original grid by bilinear interpolation of the 0/1 mask (smoother than nearest neighbour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from spinalsam.segmenters.base import BackendInfo, Prompt, Segmenter, SliceImage

__all__ = ["BoundedSegmenter"]


@dataclass
class BoundedSegmenter:
    """Wraps `inner` (same interface); slices over `max_pixels` are segmented downscaled."""

    inner: Segmenter
    max_pixels: int
    _scale: float = field(default=1.0, init=False)  # working-grid pixels per slice pixel
    _shape: tuple[int, int] = field(default=(0, 0), init=False)  # the original (rows, cols)

    @property
    def info(self) -> BackendInfo:
        return self.inner.info

    def set_image(self, image: SliceImage) -> None:
        self._shape = image.shape
        self._scale = _scale_for(image.shape, self.max_pixels)
        self.inner.set_image(self._shrunk(image))

    def predict(self, prompt: Prompt) -> np.ndarray:
        if self._scale == 1.0:
            return self.inner.predict(prompt)
        mask = np.asarray(self.inner.predict(self._scaled_prompt(prompt)), dtype=bool)
        rows, cols = self._shape
        grown = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (cols, rows), Image.Resampling.BILINEAR
        )
        return np.asarray(grown) >= 128

    def prefetch(self, image: SliceImage) -> Any:
        """SAM starts its embedding early; the wrapped one gets the working-grid slice."""
        start = getattr(self.inner, "prefetch", None)
        if start is None:
            return None
        return start(self._shrunk(image))

    def __getattr__(self, name: str) -> Any:
        # describe_compute / describe_parameters and other backend extras pass through.
        if name.startswith("_") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _shrunk(self, image: SliceImage) -> SliceImage:
        scale = _scale_for(image.shape, self.max_pixels)
        if scale == 1.0:
            return image
        rows, cols = image.shape
        size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
        pixels = Image.fromarray(image.pixels.astype(np.float32), mode="F")
        display = Image.fromarray(image.display)
        spacing = None
        if image.spacing is not None:  # same millimetres on fewer, larger pixels
            spacing = (image.spacing[0] * cols / size[0], image.spacing[1] * rows / size[1])
        return replace(
            image,
            pixels=np.asarray(pixels.resize(size, Image.Resampling.BILINEAR), dtype=np.float32),
            display=np.asarray(display.resize(size, Image.Resampling.BILINEAR)),
            spacing=spacing,
        )

    def _scaled_prompt(self, prompt: Prompt) -> Prompt:
        s = self._scale
        rows, cols = self._shape
        limit = np.array([round(cols * s) - 1, round(rows * s) - 1])
        points = np.clip(np.floor(np.asarray(prompt.points) * s), 0, limit).astype(np.int64)
        box = None
        if prompt.box is not None:
            box = np.clip(np.floor(np.asarray(prompt.box) * s), 0, np.tile(limit, 2)).astype(int)
        mask_input = None
        if prompt.mask_input is not None:
            small = Image.fromarray(np.asarray(prompt.mask_input, dtype=np.uint8) * 255).resize(
                (int(limit[0]) + 1, int(limit[1]) + 1), Image.Resampling.BILINEAR
            )
            mask_input = np.asarray(small) >= 128
        return Prompt(points=points, labels=prompt.labels, box=box, mask_input=mask_input)


def _scale_for(shape: tuple[int, int], max_pixels: int) -> float:
    rows, cols = shape
    if rows * cols <= max_pixels:
        return 1.0
    return math.sqrt(max_pixels / (rows * cols))
