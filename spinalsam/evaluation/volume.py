"""Labelled CT volumes for evaluation: labels overlaid by physical position, slices sampled.

`io.load_ct` reorients every volume to LPS, so "axial/coronal/sagittal" (spinalsam.planes) are
anatomical planes whatever the file's storage order (a TPTBox cut-out is stored PIR). Label maps
are then resampled onto that grid by physical position with SimpleITK (nearest neighbour): some
label maps store their voxels flipped relative to their CT (TotalSegmentator's map of the DICOM
example is flipped in y), and only the physical overlay puts them on the right voxels. Indexing
by array position would score a backend against a mirrored vertebra.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from spinalsam.evaluation.protocol import (
    MARGIN_MM,
    Target,
    margin_px,
    min_area_px,
    targets_from_labels,
)
from spinalsam.io import CTImage, CTLoadError, load_ct
from spinalsam.planes import Plane, slice_distance, slice_image, slice_spacing, take_slice
from spinalsam.segmenters.base import SliceImage

__all__ = [
    "LabelledVolume",
    "SliceCase",
    "ct_files",
    "ct_reference",
    "labels_on_ct",
    "load_labelled_volume",
    "sample_slices",
    "volume_slice_cases",
]

# Slices closer than this are near-copies of each other at 1 mm; at 3 mm every 2nd slice counts.
SLICE_STEP_MM = 5.0
# ...but a thin stack (dcmqi's three 1 mm slices of manual labels) keeps at least this many.
MIN_SLICES = 3


@dataclass(frozen=True, eq=False)
class LabelledVolume:
    """A CT (LPS, HU) and its label map on the same (Z, Y, X) grid."""

    ct: CTImage
    labels: np.ndarray  # (Z, Y, X) int32


@dataclass(frozen=True, eq=False)
class SliceCase:
    """One slice to score: what the backend sees, the objects it is asked for, and `truth`,
    the union of every object to score (the per-slice Dice compares the union of predictions
    with it)."""

    name: str
    image: SliceImage
    targets: tuple[Target, ...]
    truth: np.ndarray  # (H, W) bool


def ct_reference(ct: CTImage) -> sitk.Image:
    """An empty SimpleITK image on the CT's LPS grid, the target of label resampling."""
    z, y, x = ct.volume.shape
    ref = sitk.Image(int(x), int(y), int(z), sitk.sitkUInt8)
    ref.SetSpacing(ct.spacing or (1.0, 1.0, 1.0))
    ref.SetOrigin(ct.origin)
    ref.SetDirection(ct.direction)
    return ref


def labels_on_ct(labels: sitk.Image, ct: CTImage) -> np.ndarray:
    """Label ids resampled onto the CT's (Z, Y, X) grid by physical position (nearest neighbour).

    Voxels of the CT outside the label map's extent get 0 (unlabelled).
    """
    if labels.GetDimension() == 2:
        labels = sitk.JoinSeries(labels)
    if labels.GetNumberOfComponentsPerPixel() != 1:
        raise CTLoadError("a label map stores one value per voxel")
    labels = sitk.Cast(labels, sitk.sitkInt32) if labels.GetPixelID() != sitk.sitkInt32 else labels
    resampled = sitk.Resample(
        labels, ct_reference(ct), sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkInt32
    )
    return sitk.GetArrayFromImage(resampled)


def ct_files(path: str | os.PathLike[str]) -> list[Path]:
    """A CT given as one file, or as a folder holding the files of one DICOM series."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise CTLoadError(f"the folder '{path.name}' holds no files")
        return files
    return [path]


def load_labelled_volume(
    ct_path: str | os.PathLike[str], label_path: str | os.PathLike[str]
) -> LabelledVolume:
    """Load a CT (a file, or a DICOM series' folder) and overlay its label map physically."""
    ct = load_ct(ct_files(ct_path))
    try:
        labels = sitk.ReadImage(str(Path(label_path)))
    except RuntimeError as exc:
        raise CTLoadError(f"'{Path(label_path).name}' is not a readable label map") from exc
    return LabelledVolume(ct, labels_on_ct(labels, ct))


def sample_slices(
    labels: np.ndarray,
    ids: Iterable[int],
    plane: Plane,
    spacing_xyz: tuple[float, float, float] | None,
    step_mm: float = SLICE_STEP_MM,
    max_slices: int | None = None,
) -> list[int]:
    """Slice indices to score: every k-th slice holding ≥ one object, k from `step_mm`.

    k is the slice distance rounded to `step_mm` (at least 1), lowered so that at least
    MIN_SLICES slices are kept where there are that many. With `max_slices`, an evenly spread
    subset of those is kept (quick runs), always including the first and last.
    """
    ids = list(ids)
    spacing = slice_spacing(spacing_xyz, plane)
    min_px = min_area_px(spacing)
    axis = {"axial": 0, "coronal": 1, "sagittal": 2}[plane]
    areas = np.stack(
        [np.count_nonzero(labels == i, axis=tuple(a for a in range(3) if a != axis)) for i in ids]
    )
    occupied = np.flatnonzero(areas.max(axis=0) >= min_px)
    if occupied.size == 0:
        return []
    distance = slice_distance(spacing_xyz, plane)
    step = max(1, round(step_mm / distance)) if distance else 1
    step = max(1, min(step, occupied.size // MIN_SLICES))
    chosen = occupied[np.arange(0, occupied.size, step)]
    if max_slices is not None and chosen.size > max_slices:
        chosen = chosen[np.unique(np.linspace(0, chosen.size - 1, max_slices).round().astype(int))]
    return [int(i) for i in chosen]


def volume_slice_cases(
    volume: LabelledVolume,
    ids: Sequence[int],
    plane: Plane,
    indices: Iterable[int],
    name: str,
    margin_mm: float = MARGIN_MM,
) -> Iterator[SliceCase]:
    """The slices at `indices` as SliceCases, each with one target per vertebra piece."""
    ct = volume.ct
    for index in indices:
        image = slice_image(ct.volume, ct.is_hu, ct.spacing, plane, index)
        labels2d = take_slice(volume.labels, plane, index)
        present = [i for i in ids if (labels2d == i).any()]
        margin = margin_px(image.spacing, margin_mm)
        targets = tuple(targets_from_labels(labels2d, present, margin, min_area_px(image.spacing)))
        if targets:
            truth = np.isin(labels2d, present)
            yield SliceCase(f"{name}:{plane}[{index}]", image, targets, truth)
