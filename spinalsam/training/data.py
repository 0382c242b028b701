"""Training data: image/mask pairs or CT volumes with label maps, as per-object slice samples.

Every source ends up as `Sample`s holding the same 8-bit RGB render the app shows (so the model is
trained on what it sees at inference) and one boolean mask per object. Each sample carries a case
id so that train and validation are split by patient, never by slice: neighbouring slices of one
spine are nearly identical, and a slice-wise split would measure memorisation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from spinalsam.io import CTLoadError, load_ct
from spinalsam.planes import n_slices, take_slice
from spinalsam.training.errors import TrainingError
from spinalsam.windowing import PRESETS, render

__all__ = [
    "DEFAULT_CASE_PATTERN",
    "Sample",
    "TrainingDataError",
    "case_of",
    "load_data",
    "load_png_pairs",
    "load_volume_slices",
    "split_by_case",
]

# The case id is the file stem up to its last "_<digits>": Case1_05 -> Case1. A stem without that
# suffix (RN3) is a case of its own. Volume slices are named "<volume stem>_<index:03d>".
DEFAULT_CASE_PATTERN = r"^(?P<case>.+?)_\d+$"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# The evaluation protocol ignores components under 50 px; training on them teaches noise.
DEFAULT_MIN_AREA = 50


class TrainingDataError(TrainingError):
    """Training data that cannot be used; the message says what to fix."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One slice: the RGB render SAM sees and one boolean mask per object on it."""

    name: str
    case: str
    image: np.ndarray  # (H, W, 3) uint8
    objects: tuple[np.ndarray, ...]  # each (H, W) bool, never empty


def case_of(name: str, pattern: str = DEFAULT_CASE_PATTERN) -> str:
    """The case id of a slice name: the regex's `case` group (else group 1), or the whole name.

    A name the pattern does not match is its own case, so an unexpected naming scheme errs on
    the side of more, smaller cases rather than silently merging patients.
    """
    regex = re.compile(pattern)
    match = regex.search(name)
    if match is None:
        return name
    if "case" in regex.groupindex:
        return match.group("case")
    return match.group(1) if regex.groups else match.group(0)


def _components(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, ...]:
    """Connected components of a binary mask (one object each), dropping specks."""
    labelled, count = ndimage.label(mask)
    areas = np.bincount(labelled.ravel(), minlength=count + 1)
    return tuple(labelled == k for k in range(1, count + 1) if areas[k] >= min_area)


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 0


def load_png_pairs(
    folder: str | Path,
    case_pattern: str = DEFAULT_CASE_PATTERN,
    min_area: int = DEFAULT_MIN_AREA,
) -> list[Sample]:
    """Pairs `folder/images/<name>.<ext>` with `folder/masks/<name>.<ext>` (matched by stem).

    Each connected component of a mask is one object. Images without a mask, and slices whose
    mask has no component of `min_area` pixels, are skipped: there is nothing to prompt.
    """
    folder = Path(folder)
    images_dir, masks_dir = folder / "images", folder / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise TrainingDataError(f"{folder} needs an images/ and a masks/ folder")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    samples = []
    for image_path in sorted(images_dir.iterdir()):
        mask_path = masks.get(image_path.stem)
        if image_path.suffix.lower() not in IMAGE_SUFFIXES or mask_path is None:
            continue
        image, mask = _read_rgb(image_path), _read_mask(mask_path)
        if image.shape[:2] != mask.shape:
            raise TrainingDataError(
                f"{image_path.name}: image is {image.shape[1]}×{image.shape[0]} px but its mask "
                f"is {mask.shape[1]}×{mask.shape[0]} px"
            )
        objects = _components(mask, min_area)
        if objects:
            name = image_path.stem
            samples.append(Sample(name, case_of(name, case_pattern), image, objects))
    if not samples:
        raise TrainingDataError(f"no image/mask pairs with objects found in {folder}")
    return samples


def _read_label_map(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A label map reoriented to LPS like `load_ct` does, so voxels line up with the CT."""
    try:
        labels = sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS")
    except RuntimeError as err:
        raise TrainingDataError(f"cannot read label map {path.name}: {err}") from err
    array = sitk.GetArrayFromImage(labels)
    if array.shape != shape:
        raise TrainingDataError(
            f"label map {path.name} has {array.shape[::-1]} voxels but the CT has {shape[::-1]}"
        )
    return array.astype(np.int32, copy=False)


def load_volume_slices(
    volume: str | Path,
    label_map: str | Path,
    labels: Sequence[int],
    axis: str = "axial",
    window: str = "bone",
    case_pattern: str = DEFAULT_CASE_PATTERN,
    min_area: int = DEFAULT_MIN_AREA,
) -> list[Sample]:
    """Slices of a CT volume along `axis`, one object per requested label present on a slice.

    The CT is loaded and windowed exactly as the app does (`load_ct`, `take_slice`, `render`),
    so the training renders match what users click on. Slice names are
    `<volume stem>_<index:03d>`, which `case_pattern` maps to a case.
    """
    if not labels:
        raise TrainingDataError("a label map needs --labels, e.g. --labels 30,31,32")
    volume = Path(volume)
    try:
        ct = load_ct([volume])
    except CTLoadError as err:
        raise TrainingDataError(str(err)) from err
    label_volume = _read_label_map(Path(label_map), ct.volume.shape)
    stem = volume.name.removesuffix(".gz").rsplit(".", 1)[0] if volume.is_file() else volume.name
    samples = []
    for index in range(n_slices(ct.volume.shape, axis)):
        label_slice = take_slice(label_volume, axis, index)
        objects = tuple(
            obj for obj in (label_slice == label for label in labels) if obj.sum() >= min_area
        )
        if objects:
            pixels = take_slice(ct.volume, axis, index).astype(np.float32, copy=False)
            gray = render(pixels, ct.is_hu, PRESETS[window])
            name = f"{stem}_{index:03d}"
            image = np.repeat(gray[..., None], 3, axis=2)
            samples.append(Sample(name, case_of(name, case_pattern), image, objects))
    if not samples:
        raise TrainingDataError(
            f"none of the labels {list(labels)} covers {min_area} px on any {axis} slice of "
            f"{volume.name}"
        )
    return samples


def _png_folders(root: Path) -> list[Path]:
    """`root` itself when it holds images/ + masks/, else each such direct subfolder."""
    if (root / "images").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "images").is_dir() and (p / "masks").is_dir())


def load_data(
    sources: Iterable[str | Path],
    label_maps: Sequence[str | Path] = (),
    labels: Sequence[int] = (),
    axis: str = "axial",
    window: str = "bone",
    case_pattern: str = DEFAULT_CASE_PATTERN,
    min_area: int = DEFAULT_MIN_AREA,
) -> list[Sample]:
    """All samples of the `--data` arguments: PNG folders, and volumes paired in order with
    `label_maps` (the first volume with the first label map, and so on)."""
    samples: list[Sample] = []
    pending_maps = list(map(Path, label_maps))
    for source in map(Path, sources):
        if not source.exists():
            raise TrainingDataError(f"{source} does not exist")
        folders = _png_folders(source) if source.is_dir() else []
        if folders:
            for folder in folders:
                samples += load_png_pairs(folder, case_pattern, min_area)
        elif pending_maps:
            label_map = pending_maps.pop(0)
            samples += load_volume_slices(
                source, label_map, labels, axis, window, case_pattern, min_area
            )
        else:
            raise TrainingDataError(
                f"{source} is neither a folder with images/ and masks/ nor a volume with its "
                "own --label-map"
            )
    if pending_maps:
        raise TrainingDataError(
            f"{len(pending_maps)} --label-map more than volumes: give one per volume --data"
        )
    return samples


def split_by_case(
    samples: Sequence[Sample], val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Train/validation split by case: a seeded draw of whole cases goes to validation."""
    cases = sorted({s.case for s in samples})
    if len(cases) < 2:
        raise TrainingDataError(
            f"all {len(samples)} slices belong to one case ({cases[0] if cases else '-'}), so "
            "there is nothing to validate on; give more cases or a --case-pattern that groups "
            r"slices into slabs, e.g. '^(.+_\d)\d$' for <case>_<NN> names"
        )
    n_val = min(len(cases) - 1, max(1, round(len(cases) * val_fraction)))
    order = np.random.default_rng(seed).permutation(len(cases))
    val_cases = {cases[i] for i in order[:n_val]}
    train = [s for s in samples if s.case not in val_cases]
    val = [s for s in samples if s.case in val_cases]
    assert not {s.case for s in train} & {s.case for s in val}, "a case is in train and val"
    return train, val
