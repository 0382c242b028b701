"""Display slices of a (Z, Y, X) LPS volume in radiological convention.

`io.load_ct` reorients every volume to LPS (x → patient left, y → posterior, z → superior), so the
three views are plain index/flip operations: patient right on the image left, anterior at the top
of axial slices and superior at the top of coronal/sagittal ones. `put_slice` is the exact
inverse of `take_slice`, so a mask drawn on any view lands on the voxels the user saw.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from spinalsam.segmenters.base import SliceImage
from spinalsam.windowing import Window, render

__all__ = [
    "PLANES",
    "Plane",
    "axis_spacing",
    "display_scale",
    "n_slices",
    "put_slice",
    "slice_image",
    "slice_spacing",
    "take_slice",
]

Plane = Literal["axial", "coronal", "sagittal"]
PLANES: tuple[Plane, ...] = get_args(Plane)

_AXIS: dict[str, int] = {"axial": 0, "coronal": 1, "sagittal": 2}  # array axis a slice fixes


def n_slices(shape: tuple[int, ...], plane: Plane) -> int:
    """How many slices the volume has in this plane."""
    return int(shape[_axis(plane)])


def take_slice(arr3d: np.ndarray, plane: Plane, index: int) -> np.ndarray:
    """The 2-D display view (a numpy view, not a copy) of slice `index`.

    Axial: rows anterior → posterior, columns patient right → left (`vol[z]` as is).
    Coronal: rows superior → inferior, columns right → left.
    Sagittal: rows superior → inferior, columns anterior → posterior.
    """
    axis = _checked_axis(arr3d, plane, index)
    if axis == 0:
        return arr3d[index]
    plane2d = arr3d[:, index, :] if axis == 1 else arr3d[:, :, index]
    return plane2d[::-1]  # z grows superiorly; the top row must be the most superior


def put_slice(arr3d: np.ndarray, plane: Plane, index: int, arr2d: np.ndarray) -> None:
    """Write a display-oriented 2-D array back into the volume, in place."""
    view = take_slice(arr3d, plane, index)
    if arr2d.shape != view.shape:
        raise ValueError(
            f"a {plane} slice of this volume is {view.shape[1]}×{view.shape[0]} pixels, "
            f"got {arr2d.shape[1]}×{arr2d.shape[0]}"
        )
    view[...] = arr2d  # `view` aliases the volume, flips included


def slice_spacing(
    spacing_xyz: tuple[float, float, float] | None, plane: Plane
) -> tuple[float, float] | None:
    """(x, y) millimetres per display pixel (columns, rows) of a slice in this plane."""
    if spacing_xyz is None:
        return None
    sx, sy, sz = spacing_xyz
    return {"axial": (sx, sy), "coronal": (sx, sz), "sagittal": (sy, sz)}[_plane(plane)]


def display_scale(
    shape: tuple[int, int], spacing_xy: tuple[float, float] | None, max_side: int
) -> tuple[float, float]:
    """Display pixels per voxel (x, y) of a (rows, cols) slice: square pixels, bounded grid.

    Radiology viewers stretch reformatted planes of thick-slice volumes so pixels are square;
    the stretch is the spacing ratio, which a hostile header can make 1000:1 or more, so the
    result is then scaled down until the longer side fits `max_side` (the budget's display grid)
    and never below one pixel. Memory for the displayed view is thus bounded by max_side².
    """
    fx, fy = (1.0, 1.0)
    if spacing_xy is not None:
        finest = min(spacing_xy)
        fx, fy = spacing_xy[0] / finest, spacing_xy[1] / finest
    rows, cols = shape
    longest = max(rows * fy, cols * fx)
    if longest > max_side:
        fx, fy = fx * max_side / longest, fy * max_side / longest
    return max(fx, 1.0 / cols), max(fy, 1.0 / rows)


def axis_spacing(
    spacing_xyz: tuple[float, float, float] | None,
) -> tuple[float, float, float] | None:
    """Spacing in array axis order (z, y, x), as metrics on the (Z, Y, X) volume need it."""
    if spacing_xyz is None:
        return None
    sx, sy, sz = spacing_xyz
    return (sz, sy, sx)


def slice_distance(spacing_xyz: tuple[float, float, float] | None, plane: Plane) -> float | None:
    """Millimetres between neighbouring slices in this plane."""
    spacing = axis_spacing(spacing_xyz)
    return None if spacing is None else spacing[_axis(plane)]


def _plane(plane: str) -> str:
    if plane not in _AXIS:
        raise ValueError(f"unknown plane {plane!r}; choose one of {', '.join(PLANES)}")
    return plane


def _axis(plane: str) -> int:
    return _AXIS[_plane(plane)]


def _checked_axis(arr3d: np.ndarray, plane: str, index: int) -> int:
    if arr3d.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) volume, got an array of shape {arr3d.shape}")
    axis = _axis(plane)
    count = arr3d.shape[axis]
    if not 0 <= index < count:
        raise IndexError(f"{plane} slice {index} does not exist; this volume has 0..{count - 1}")
    return axis


def slice_image(
    volume: np.ndarray,
    is_hu: bool,
    spacing_xyz: tuple[float, float, float] | None,
    plane: Plane,
    index: int,
    window: Window | None = None,
) -> SliceImage:
    """One display slice as every backend sees it: physical values plus the windowed render.

    The app, propagation and the evaluation CLIs all build slices here, so a backend is always
    evaluated on exactly what the user sees.
    """
    pixels = take_slice(volume, plane, index).astype(np.float32)
    return SliceImage(
        pixels=pixels,
        display=render(pixels, is_hu, window),
        is_hu=is_hu,
        spacing=slice_spacing(spacing_xyz, plane),
    )
