"""What every prompt on a slice reads, computed once per slice: grey levels and bone maps.

Why per slice: as an image embedding is computed once, the smoothing, the soft-tissue level
and the bone, cortex and closed bone maps are shared by every prompt, so a prompt only touches
its own neighbourhood. Why a fixed bone window: HU slices are mapped through it first, so 8-bit
renders and HU slices go through the same steps. Why millimetres: lengths are physical where
the spacing is known and converted at NOMINAL_MM_PER_PX otherwise, so the same vertebra is
handled alike at any pixel size.

In a bone window a vertebra is a bright cortical shell around cancellous bone that is barely
brighter than the soft tissue around it, so the maps are of bone (an adaptive threshold) and of
the shell (`cortex`, clearly brighter than soft tissue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.base import SegmenterError, SliceImage
from spinalsam.segmenters.morphology import close_disk

BONE_WINDOW_HU = (-700.0, 1300.0)  # wide bone window: soft tissue mid-grey, cortex near white
# For images without spacing (8-bit renders): the scale of the zoomed spine renders this was
# developed on (a lumbar body of about 45 mm spans about 180 px there).
NOMINAL_MM_PER_PX = 0.25
SMOOTH_MM = 0.25  # denoise before thresholding, about one pixel
CLOSE_MM = 1.75  # gaps in the cortical shell up to twice this are bridged
BASIN_CLOSE_MM = (0.25, 0.75)  # gentler closings for the point path's extent estimates
CORTEX_FRACTION = 0.35  # cortex: brighter than soft tissue by this fraction of the contrast
LOCAL_WINDOW_MM = 25.0  # the neighbourhood of the adaptive bone threshold: half a vertebra
SOFT_FLOOR = 0.05  # bone threshold floor: soft tissue + this fraction of the bone contrast


def bone_window(pixels: np.ndarray) -> np.ndarray:
    """HU → uint8 through the fixed bone window (also used for HU slices' display fallback)."""
    lo, hi = BONE_WINDOW_HU
    scaled = (np.asarray(pixels, dtype=np.float32) - lo) / (hi - lo)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def soft_tissue_level(smooth: np.ndarray) -> float:
    """Most frequent grey level above air: soft tissue fills most of a body CT slice."""
    hist = np.bincount(np.clip(smooth, 0, 255).astype(np.int64).ravel(), minlength=256)
    hist = ndi.gaussian_filter1d(hist[40:].astype(np.float64), 2.0)
    return float(np.argmax(hist) + 40)


@dataclass(frozen=True)
class SliceMaps:
    """Per-slice precomputation, so that a prompt only touches its own neighbourhood."""

    smooth: np.ndarray  # (H, W) float32 on the 0..255 bone-window scale
    sharp: np.ndarray  # (H, W) float32, the same before smoothing: where edges are placed
    soft: float  # grey level of soft tissue (the histogram peak above air)
    bone: np.ndarray  # (H, W) bool, adaptive bone threshold for extent estimation
    cortex: np.ndarray  # (H, W) bool, the bright cortical shell only
    closed: dict[float, np.ndarray]  # closing (mm) → (H, W) bool, the bone map closed by it
    px_per_mm: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.smooth.shape[0], self.smooth.shape[1]

    def px(self, mm: float) -> int:
        """A length in whole pixels, at least one."""
        return max(1, round(mm * self.px_per_mm))


def slice_maps(image: SliceImage) -> SliceMaps:
    """The maps of one slice; a non-2-D or tiny array is a `SegmenterError`."""
    pixels = np.asarray(image.pixels, dtype=np.float32)
    if pixels.ndim != 2 or min(pixels.shape) < 8:
        raise SegmenterError(f"expected a 2-D slice, got an array of shape {pixels.shape}")
    if not np.isfinite(pixels).all():
        pixels = np.nan_to_num(pixels, nan=float(np.nanmin(pixels)) if image.is_hu else 0.0)
    grey = bone_window(pixels).astype(np.float32) if image.is_hu else np.clip(pixels, 0, 255)
    mm = float(np.mean(image.spacing)) if image.spacing else NOMINAL_MM_PER_PX
    px_per_mm = 1.0 / mm if mm > 0 else 1.0 / NOMINAL_MM_PER_PX
    smooth = ndi.gaussian_filter(grey, SMOOTH_MM * px_per_mm)
    soft = soft_tissue_level(smooth)
    contrast = max(float(np.percentile(smooth, 99.5)) - soft, 1.0)
    window = max(3, round(LOCAL_WINDOW_MM * px_per_mm) | 1)
    local_mean = ndi.uniform_filter(smooth, window)
    floor = soft + SOFT_FLOOR * contrast
    bone = smooth > np.maximum(local_mean, floor)
    cortex = smooth > soft + CORTEX_FRACTION * contrast
    # The point path's estimates close the bone map in search windows around each click,
    # often twice as the window doubles: closed once per slice here, each window only fills
    # its cut-out.
    closed = {mm: close_disk(bone, max(1, round(mm * px_per_mm))) for mm in BASIN_CLOSE_MM}
    return SliceMaps(smooth, grey, soft, bone, cortex, closed, px_per_mm)
