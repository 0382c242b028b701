"""The one interface every segmentation backend implements.

Modelled on segment_anything's SamPredictor: `set_image` does the expensive per-slice work once
(an image embedding for SAM, smoothing/gradients for the classical segmenter) and `predict` is
cheap, so a click costs only the prompt step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["BackendInfo", "Prompt", "Segmenter", "SegmenterError", "SliceImage"]


class SegmenterError(RuntimeError):
    """A backend could not produce a mask (bad prompt, no image set, model failure)."""


@dataclass(frozen=True)
class SliceImage:
    """One 2-D slice as every backend sees it.

    `pixels` keeps the physical values (Hounsfield units when `is_hu`) for classical methods;
    `display` is the windowed 8-bit render the user sees, which is what SAM was trained on.
    """

    pixels: np.ndarray  # (H, W) float32: HU when is_hu, else 0..255 intensities
    display: np.ndarray  # (H, W) uint8 windowed render
    is_hu: bool
    spacing: tuple[float, float] | None = None  # (x, y) mm per pixel when known

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape  # type: ignore[return-value]


@dataclass(frozen=True)
class Prompt:
    """Prompts for one object: points in (x, y) pixels with labels 1/0, and an optional box."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    box: np.ndarray | None = None  # (4,) x0, y0, x1, y1
    mask_input: np.ndarray | None = None  # (H, W) bool prior mask, e.g. from propagation

    def __post_init__(self) -> None:
        if len(self.points) != len(self.labels):
            raise SegmenterError("every point needs a label")
        if len(self.points) == 0 and self.box is None and self.mask_input is None:
            raise SegmenterError("add a point or a box first")


@dataclass(frozen=True)
class BackendInfo:
    """What the UI shows about the active backend, and why it is the active one."""

    name: str
    description: str
    reason: str = ""


@runtime_checkable
class Segmenter(Protocol):
    """`set_image` once per slice, then `predict` per prompt; returns a boolean (H, W) mask."""

    info: BackendInfo

    def set_image(self, image: SliceImage) -> None: ...

    def predict(self, prompt: Prompt) -> np.ndarray: ...
