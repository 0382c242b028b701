"""Training data for the learned default segmenter: every labelled source, as compact packs.

Each source in `../shared/data` (plus the fetched chest CT) becomes one `.npz` pack of items: a
(Z, Y, X) LPS volume and its label map on the same grid. Label maps are resampled onto the CT by
physical position with SimpleITK (never by array index: TotalSegmentator's DICOM label map is
flipped in y relative to its series). HU are stored quantised to 8 bits (7 HU steps from -300 HU,
enough for any bone window) and volumes are cut to the vertebrae plus 40 mm, so all sources fit
in a few MiB and travel to a training machine without SimpleITK. The 8-bit PNG slices of
spinalsam-r1 are stacks of independent 2-D items (`planes=("axial",)`, `stacked=True`), one label
per connected component of ≥ 50 px, as the evaluation protocol prompts them.

A source is one patient or one publication: totalseg-example and totalseg-full are one patient
(source "totalseg"), so leave-one-source-out never trains on the patient it scores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from spinalsam.io import load_ct
from spinalsam.training.default_sampler import HU_OFFSET, HU_STEP, Item

__all__ = ["build_packs"]

MARGIN_MM = 40.0
MIN_COMPONENT_PX = 50


def _quantise(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((hu - HU_OFFSET) / HU_STEP), 0, 255).astype(np.uint8)


def _read(path: Path) -> sitk.Image:
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()
    return sitk.ReadImage(str(path))


def _volume_item(ct_path: Path, seg_path: Path, keep: range | tuple[int, ...]) -> Item:
    """CT (LPS) + label map resampled onto it by physical position, cut to the vertebrae."""
    ct = sitk.DICOMOrient(_read(ct_path), "LPS")
    seg = sitk.Resample(
        _read(seg_path), ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16
    )
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    labels = sitk.GetArrayFromImage(seg)
    labels = np.where(np.isin(labels, list(keep)), labels, 0).astype(np.uint8)
    spacing = tuple(float(s) for s in ct.GetSpacing())
    zs, ys, xs = np.nonzero(labels)
    bounds = []
    for axis_values, size, mm in zip((zs, ys, xs), labels.shape, spacing[::-1], strict=True):
        pad = int(MARGIN_MM / mm)
        bounds.append(
            slice(max(0, axis_values.min() - pad), min(size, axis_values.max() + pad + 1))
        )
    cut = tuple(bounds)
    planes = ("axial", "coronal", "sagittal") if labels.shape[0] >= 8 else ("axial",)
    return Item(_quantise(hu[cut]), labels[cut], spacing, True, planes, stacked=False)  # type: ignore[arg-type]


def _png_stack(images: list[Path], masks: list[Path]) -> Item:
    """8-bit renders as the app reads them, one label per mask component of ≥ 50 px."""
    from PIL import Image

    slices, label_slices = [], []
    for image_path, mask_path in zip(images, masks, strict=True):
        slices.append(load_ct([image_path]).volume[0].astype(np.uint8))
        mask = np.asarray(Image.open(mask_path).convert("L")) > 127
        pieces, count = ndi.label(mask)
        sizes = np.bincount(pieces.ravel(), minlength=count + 1)
        keep = np.flatnonzero(sizes >= MIN_COMPONENT_PX)
        relabel = np.zeros(count + 1, dtype=np.uint8)
        relabel[keep[keep > 0]] = np.arange(1, (keep > 0).sum() + 1)
        label_slices.append(relabel[pieces])
    return Item(np.stack(slices), np.stack(label_slices), None, False, ("axial",), stacked=True)


def _pairs(folder: Path) -> tuple[list[Path], list[Path]]:
    masks = sorted((folder / "masks").glob("*.png"))
    return [folder / "images" / m.name for m in masks], masks


def _sources(data: Path, chest: Path) -> dict[str, list[tuple[list[Path], object]]]:
    """Source name → [(files hashed, loader)]; missing sources are skipped by the caller."""
    vertebrae = range(25, 51)  # TotalSegmentator's sacrum … C1 ids
    ts, r1 = data / "totalseg-full", data / "spinalsam-r1-sample"
    dicom = data / "totalseg-example" / "dicom"
    return {
        "chest": [
            (
                [chest / "cxr.nii.gz", chest / "mask.nii.gz"],
                lambda: _volume_item(chest / "cxr.nii.gz", chest / "mask.nii.gz", vertebrae),
            ),
        ],
        "totalseg": [
            (
                [ts / "example_ct.nii.gz", ts / "example_seg.nii.gz"],
                lambda: _volume_item(
                    ts / "example_ct.nii.gz", ts / "example_seg.nii.gz", vertebrae
                ),
            ),
            (
                [*sorted(dicom.glob("*.dcm")), dicom.parent / "example_seg_dicom.nii.gz"],
                lambda: _volume_item(dicom, dicom.parent / "example_seg_dicom.nii.gz", vertebrae),
            ),
        ],
        "aorta": [
            (
                [
                    data / "totalseg-aorta-crop" / n
                    for n in ("ct_cropped.nii.gz", "vertebrae_T12.nii.gz")
                ],
                lambda: _volume_item(
                    data / "totalseg-aorta-crop" / "ct_cropped.nii.gz",
                    data / "totalseg-aorta-crop" / "vertebrae_T12.nii.gz",
                    (1,),
                ),
            ),
        ],
        "tptbox": [
            (
                [
                    data / "tptbox" / n
                    for n in ("sub-ct_label-22_ct.nii.gz", "sub-ct_seg-vert_label-22_msk.nii.gz")
                ],
                lambda: _volume_item(
                    data / "tptbox" / "sub-ct_label-22_ct.nii.gz",
                    data / "tptbox" / "sub-ct_seg-vert_label-22_msk.nii.gz",
                    range(1, 26),
                ),
            ),
        ],
        "dcmqi": [
            (
                [
                    *sorted((data / "dcmqi-3slice" / "ct").glob("*.dcm")),
                    data / "dcmqi-3slice" / "spine_seg.nrrd",
                ],
                lambda: _volume_item(
                    data / "dcmqi-3slice" / "ct", data / "dcmqi-3slice" / "spine_seg.nrrd", (2,)
                ),
            ),
        ],
        "r1": [
            (
                [*_pairs(r1 / "axial")[0], *_pairs(r1 / "axial")[1]],
                lambda: _png_stack(*_pairs(r1 / "axial")),
            ),
            (
                [*_pairs(r1 / "sagittal")[0], *_pairs(r1 / "sagittal")[1]],
                lambda: _png_stack(*_pairs(r1 / "sagittal")),
            ),
        ],
    }


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_packs(data: Path, chest: Path, out: Path) -> dict[str, dict[str, object]]:
    """Write `<source>.npz` per available source and `manifest.json` (file hashes, counts)."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, object]] = {}
    for name, parts in _sources(data, chest).items():
        if not all(p.exists() for files, _ in parts for p in files) or not all(
            files for files, _ in parts
        ):
            continue
        arrays: dict[str, np.ndarray] = {}
        for i, (_, loader) in enumerate(parts):
            item: Item = loader()  # type: ignore[operator]
            arrays[f"volume_{i}"], arrays[f"labels_{i}"] = item.volume, item.labels
            arrays[f"meta_{i}"] = np.array(
                json.dumps(
                    {
                        "spacing": item.spacing,
                        "is_hu": item.is_hu,
                        "planes": item.planes,
                        "stacked": item.stacked,
                    }
                )
            )
        np.savez_compressed(out / f"{name}.npz", **arrays)
        manifest[name] = {
            "sha256": _sha256([p for files, _ in parts for p in files]),
            "items": len(parts),
            "labelled_voxels": int(
                sum(np.count_nonzero(arrays[k]) for k in arrays if k.startswith("labels"))
            ),
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
