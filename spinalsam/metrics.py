"""Overlap and surface metrics for 2-D and 3-D masks, plus area/volume and intensity statistics.

Conventions (shared by the evaluation CLI and the UI's "measure" operation):

* both masks empty → Dice/IoU 1.0 and HD95/MSD 0.0 (nothing to find, nothing found: a perfect
  answer);
* exactly one mask empty → Dice/IoU 0.0 and HD95/MSD ``nan`` (a distance to nothing is
  undefined; ``nan`` becomes ``null`` in JSON and is skipped by summary statistics);
* ``spacing`` is given in array axis order (``len(spacing) == mask.ndim``), so distances come out
  in millimetres; ``None`` measures in pixels/voxels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

__all__ = ["dice", "hd95", "iou", "mask_stats", "msd", "surface_distances"]


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays of one shape; a shape mismatch is a caller bug worth naming."""
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"mask shapes differ: prediction {p.shape} vs ground truth {g.shape}")
    return p, g


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice = 2|P∩G| / (|P|+|G|); 1.0 when both are empty."""
    p, g = _pair(pred, gt)
    total = int(p.sum()) + int(g.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, g).sum()) / total


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union; 1.0 when both are empty."""
    p, g = _pair(pred, gt)
    union = int(np.logical_or(p, g).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(p, g).sum()) / union


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels: the mask minus its erosion (full connectivity, so corners count once)."""
    structure = ndi.generate_binary_structure(mask.ndim, mask.ndim)
    return mask & ~ndi.binary_erosion(mask, structure=structure, border_value=0)


def _spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    if len(spacing) != ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {ndim}-D mask")
    return tuple(float(s) for s in spacing)


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None
) -> np.ndarray | None:
    """Distances from every surface voxel of each mask to the other mask's surface (both ways).

    Returns None when exactly one mask is empty (undefined) and an empty array when both are.
    """
    p, g = _pair(pred, gt)
    if not p.any() and not g.any():
        return np.zeros(0)
    if not p.any() or not g.any():
        return None
    sampling = _spacing(spacing, p.ndim)
    sp, sg = _surface(p), _surface(g)
    # Distance transform of the complement of a surface = distance to the nearest surface voxel.
    to_g = ndi.distance_transform_edt(~sg, sampling=sampling)
    to_p = ndi.distance_transform_edt(~sp, sampling=sampling)
    return np.concatenate([to_g[sp], to_p[sg]])


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """95th percentile of the symmetric surface distances (robust Hausdorff distance)."""
    d = surface_distances(pred, gt, spacing)
    if d is None:
        return float("nan")
    return float(np.percentile(d, 95)) if d.size else 0.0


def msd(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Mean symmetric surface distance."""
    d = surface_distances(pred, gt, spacing)
    if d is None:
        return float("nan")
    return float(d.mean()) if d.size else 0.0


def mask_stats(
    mask: np.ndarray,
    pixels: np.ndarray,
    spacing: Sequence[float] | None = None,
    is_hu: bool = False,
) -> dict[str, float | int]:
    """Size and intensity of a mask, as the UI's "measure" operation reports them.

    `area_mm2` (2-D) or `volume_ml` (3-D) only when spacing is known; intensity statistics are
    named `hu_*` only for Hounsfield data, since an 8-bit render's grey levels are not HU.
    """
    m = np.asarray(mask, dtype=bool)
    values = np.asarray(pixels, dtype=np.float64)
    if values.shape != m.shape:
        raise ValueError(f"mask {m.shape} and image {values.shape} differ in shape")
    count = int(m.sum())
    stats: dict[str, float | int] = {"pixels_count": count}
    if spacing is not None:
        cell = float(np.prod(_spacing(spacing, m.ndim)))
        if m.ndim == 2:
            stats["area_mm2"] = count * cell
        else:
            stats["volume_ml"] = count * cell / 1000.0
    prefix = "hu" if is_hu else "intensity"
    inside = values[m]
    stats[f"{prefix}_mean"] = float(inside.mean()) if count else float("nan")
    stats[f"{prefix}_std"] = float(inside.std()) if count else float("nan")
    return stats
