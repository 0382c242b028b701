"""Masks out of the app: label volumes on the source file's grid, PNG masks, coloured overlays.

A label map is only useful if it lies on the voxels of the file the user opened, so exports undo
the LPS reorientation `io.load_ct` applied (`CTImage.source_orientation`) and carry the CT's
spacing, origin and direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image
from skimage.segmentation import find_boundaries

from spinalsam.io import CTImage
from spinalsam.labels import label_color

__all__ = [
    "ExportError",
    "labels_to_sitk",
    "overlay",
    "save_mask_png",
    "save_nifti",
]


class ExportError(ValueError):
    """A mask that cannot be exported as asked; the message is shown to the user."""


def labels_to_sitk(labels: np.ndarray, ct: CTImage) -> sitk.Image:
    """The (Z, Y, X) label map as an image on the CT file's own grid and orientation.

    2-D inputs without geometry (PNG/JPG) become a 2-D image with spacing 1 and identity
    direction, which is what any viewer assumes for them.
    """
    if labels.shape != ct.volume.shape:
        raise ExportError(
            f"The mask has shape {labels.shape} but the image has {ct.volume.shape}; "
            "it belongs to another image."
        )
    values = _label_array(labels)
    if ct.spacing is None:
        return sitk.GetImageFromArray(values[0] if values.shape[0] == 1 else values)
    img = sitk.GetImageFromArray(values)
    img.SetSpacing(ct.spacing)
    img.SetOrigin(ct.origin)
    img.SetDirection(ct.direction)
    if ct.source_orientation != "LPS":
        img = sitk.DICOMOrient(img, ct.source_orientation)
    return img


def save_nifti(labels: np.ndarray, ct: CTImage, path: str | Path) -> Path:
    """Write the label map as compressed NIfTI; '.nii.gz' is appended when the name lacks it."""
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        path = path.with_name(path.name + ".nii.gz")
    sitk.WriteImage(labels_to_sitk(labels, ct), str(path), useCompression=True)
    return path


def save_mask_png(mask2d: np.ndarray, path: str | Path) -> Path:
    """A single-channel PNG, 255 inside the mask and 0 outside (what most tools read as binary)."""
    mask = np.asarray(mask2d)
    if mask.ndim != 2:
        raise ExportError(f"A PNG mask must be one 2-D slice, got an array of shape {mask.shape}.")
    path = Path(path)
    Image.fromarray(np.where(mask.astype(bool), 255, 0).astype(np.uint8)).save(path, format="PNG")
    return path


def overlay(
    display_u8: np.ndarray,
    labels2d: np.ndarray,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """(H, W, 3) uint8: the gray slice with each label tinted and outlined in its colour.

    The outline is drawn fully opaque so small or thin structures stay visible at any alpha.
    """
    if display_u8.shape != labels2d.shape or display_u8.ndim != 2:
        raise ExportError(
            f"The slice ({display_u8.shape}) and its mask ({labels2d.shape}) differ in size."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ExportError(f"Overlay opacity must be between 0 and 1, got {alpha}.")
    labels = _label_array(labels2d).astype(np.int64)
    palette = _palette(int(labels.max()), colors or {})
    rgb = np.repeat(display_u8.astype(np.float32)[..., None], 3, axis=2)
    inside = labels > 0
    tint = palette[labels]
    rgb[inside] = (1.0 - alpha) * rgb[inside] + alpha * tint[inside]
    edge = find_boundaries(labels, mode="inner") & inside
    rgb[edge] = tint[edge]
    return rgb.round().astype(np.uint8)


def _palette(max_label: int, colors: Mapping[int, tuple[int, int, int]]) -> np.ndarray:
    """Row i is the colour of label i (row 0 unused): given colours first, else the label's own."""
    table = np.zeros((max_label + 1, 3), dtype=np.float32)
    for label in range(1, max_label + 1):
        table[label] = colors.get(label, label_color(label))
    return table


def _label_array(labels: np.ndarray) -> np.ndarray:
    """Smallest unsigned type that holds the labels (uint8, else uint16), as viewers expect."""
    values = np.asarray(labels)
    if values.dtype == bool:
        return values.astype(np.uint8)
    if not np.issubdtype(values.dtype, np.integer):
        raise ExportError(f"Labels must be whole numbers, got {values.dtype} values.")
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 or high > np.iinfo(np.uint16).max:
        raise ExportError(f"Label ids must lie in 0..65535, got {low}..{high}.")
    return values.astype(np.uint8 if high <= np.iinfo(np.uint8).max else np.uint16)
