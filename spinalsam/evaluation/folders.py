"""The 2-D sample folders: image/mask pairs matched by name, scored per mask component.

These 8-bit renders carry no spacing, so the published protocol applies as is (5 px margin,
components of ≥ 50 px): their numbers stay comparable with the paper's and with earlier runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from spinalsam.evaluation.protocol import margin_px, min_area_px, targets_from_mask
from spinalsam.evaluation.volume import SliceCase
from spinalsam.io import CTLoadError, load_ct
from spinalsam.planes import slice_image
from spinalsam.segmenters.base import SliceImage

__all__ = [
    "IMAGE_SUFFIXES",
    "EvaluationError",
    "folder_slice_cases",
    "load_mask",
    "load_slice",
    "pair_files",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".nii", ".gz"}


class EvaluationError(ValueError):
    """Bad command-line input (missing folder, nothing to pair); printed as is, exit code 2."""


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else path.stem


def _image_files(folder: Path) -> dict[str, Path]:
    return {
        _stem(p): p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


def pair_files(images: Path, masks: Path) -> list[tuple[Path, Path]]:
    """Image/mask pairs matched by file name (without extension), in name order."""
    for label, folder in (("images", images), ("masks", masks)):
        if not folder.is_dir():
            raise EvaluationError(f"{label} folder not found: {folder}")
    imgs, msks = _image_files(images), _image_files(masks)
    pairs = [(imgs[k], msks[k]) for k in sorted(imgs.keys() & msks.keys())]
    if not pairs:
        raise EvaluationError(f"no image in {images} has a mask of the same name in {masks}")
    return pairs


def load_slice(path: Path) -> SliceImage:
    """One evaluation slice exactly as the app shows it; a volume contributes its middle slice."""
    try:
        ct = load_ct([path])
    except CTLoadError as exc:
        raise EvaluationError(str(exc)) from exc
    return slice_image(ct.volume, ct.is_hu, ct.spacing, "axial", ct.volume.shape[0] // 2)


def load_mask(path: Path) -> np.ndarray:
    """Ground truth as bool: any non-zero grey level is foreground."""
    return np.asarray(Image.open(path).convert("L")) > 0


def folder_slice_cases(pairs: Sequence[tuple[Path, Path]], name: str = "") -> Iterator[SliceCase]:
    """Each pair as a SliceCase with one target per mask component (protocol margin, minimum)."""
    for image_path, mask_path in pairs:
        image = load_slice(image_path)
        mask = load_mask(mask_path)
        if mask.shape != image.shape:
            raise EvaluationError(
                f"mask {mask_path.name} is {mask.shape[::-1]} but its image is "
                f"{image.shape[::-1]} pixels"
            )
        targets = targets_from_mask(mask, margin_px(image.spacing), min_area_px(image.spacing))
        label = f"{name}:{image_path.name}" if name else image_path.name
        yield SliceCase(label, image, tuple(targets), mask)
