"""CT windowing: Hounsfield units → the 8-bit display both the user and SAM see.

8-bit renders (PNG/JPG, `is_hu=False`) are already windowed by whoever made them, so they pass
through unchanged; only HU data is windowed, by default with the spine preset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Window",
    "WindowError",
    "apply_window",
    "render",
    "window_from",
]


class WindowError(ValueError):
    """An unknown preset or an impossible level/width; the message is shown to the user."""


class Window(NamedTuple):
    """Window level (centre) and width, both in Hounsfield units."""

    level: float
    width: float


# Common radiology values (Radiopaedia, "Windowing (CT)"; the same numbers ship as console
# presets): brain W80/L40, lung W1500/L-600, soft tissue W400/L50, bone W1800/L400. "spine" is the
# narrower bone window (W1500/L300) many consoles offer for the spine: cortical and cancellous bone
# stay distinct from the surrounding muscle, which is what vertebra segmentation needs.
PRESETS: Mapping[str, Window] = MappingProxyType(
    {
        "bone": Window(level=400.0, width=1800.0),
        "spine": Window(level=300.0, width=1500.0),
        "soft_tissue": Window(level=50.0, width=400.0),
        "lung": Window(level=-600.0, width=1500.0),
        "brain": Window(level=40.0, width=80.0),
    }
)
DEFAULT_PRESET = "spine"


def apply_window(pixels: np.ndarray, window: Window) -> np.ndarray:
    """Map [level - width/2, level + width/2] linearly onto 0..255; NaN becomes black."""
    low = window.level - window.width / 2.0
    scaled = (np.asarray(pixels, dtype=np.float32) - low) * (255.0 / window.width)
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 255.0).round().astype(np.uint8)


def render(pixels: np.ndarray, is_hu: bool, window: Window | None = None) -> np.ndarray:
    """The uint8 display of a slice: HU windowed (default: spine preset), 8-bit renders as is."""
    if not is_hu:
        return np.clip(np.nan_to_num(pixels, nan=0.0), 0, 255).astype(np.uint8)
    return apply_window(pixels, window or PRESETS[DEFAULT_PRESET])


def window_from(
    preset: str | None = None, level: float | None = None, width: float | None = None
) -> Window:
    """A preset, optionally with its level and/or width overridden by custom values.

    With no preset the default one is the base, so a bare `width=...` still yields a window.
    """
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise WindowError(f"Unknown window preset '{preset}'. Choose one of: {', '.join(PRESETS)}.")
    base = PRESETS[name]
    level = base.level if level is None else _number(level, "level")
    width = base.width if width is None else _number(width, "width")
    if width <= 0:
        raise WindowError(f"The window width must be a positive number of HU, got {width:g}.")
    return Window(level=level, width=width)


def _number(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise WindowError(
            f"The window {what} must be a number (in Hounsfield units), got {value!r}."
        )
    return number
