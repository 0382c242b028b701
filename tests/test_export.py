"""Exports land on the source file's grid: NIfTI (any orientation), DICOM series, PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from fixtures_ct import (
    CORTEX,
    synthetic_ct,
    synthetic_slice_u8,
    write_dicom_series,
    write_nifti,
    write_png,
)
from PIL import Image

from spinalsam.export import (
    ExportError,
    labels_to_sitk,
    save_mask_png,
    save_nifti,
)
from spinalsam.io import CTImage, load_ct

SPACING = (0.8, 0.9, 2.5)
ORIGIN = (-20.0, -15.0, 30.0)


def _assert_same_grid(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    assert a.GetSpacing() == pytest.approx(b.GetSpacing())
    assert a.GetOrigin() == pytest.approx(b.GetOrigin(), abs=1e-4)
    assert a.GetDirection() == pytest.approx(b.GetDirection())


def _round_trip(ct: CTImage, source: sitk.Image, tmp_path: Path) -> None:
    """Labels made on the loaded (LPS) volume must hit the same voxels of the source file."""
    labels = np.where(ct.volume >= CORTEX - 100, 2, 0).astype(np.uint8)
    out = sitk.ReadImage(str(save_nifti(labels, ct, tmp_path / "labels.nii.gz")))
    _assert_same_grid(out, source)
    expected = np.where(sitk.GetArrayFromImage(source) >= CORTEX - 100, 2, 0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), expected)
    assert out.GetPixelID() == sitk.sitkUInt8


def _point_round_trip(ct: CTImage, source: sitk.Image, tmp_path: Path) -> None:
    """One label voxel at a known physical point comes back at that point."""
    index_in_source = (1, 2, 3)
    point = source.TransformIndexToPhysicalPoint(index_in_source)
    lps = sitk.Image(ct.volume.shape[::-1], sitk.sitkUInt8)
    lps.SetSpacing(ct.spacing)
    lps.SetOrigin(ct.origin)
    lps.SetDirection(ct.direction)
    x, y, z = lps.TransformPhysicalPointToIndex(point)
    labels = np.zeros(ct.volume.shape, np.uint8)
    labels[z, y, x] = 7
    out = labels_to_sitk(labels, ct)
    assert out[index_in_source] == 7
    assert int(sitk.GetArrayFromImage(out).sum()) == 7


@pytest.mark.parametrize("orientation", ["RAS", "LPS", "LAI"])
def test_nifti_round_trip(tmp_path: Path, orientation: str) -> None:
    path = write_nifti(tmp_path / "ct.nii.gz", synthetic_ct(), SPACING, ORIGIN, orientation)
    ct = load_ct([path])
    source = sitk.ReadImage(str(path))
    _round_trip(ct, source, tmp_path)
    _point_round_trip(ct, source, tmp_path)


@pytest.mark.parametrize("orientation", ["LPS", "RAS"])
def test_dicom_series_round_trip(tmp_path: Path, orientation: str) -> None:
    files = write_dicom_series(tmp_path / "dcm", synthetic_ct(), SPACING, ORIGIN, orientation)
    ct = load_ct(files)
    source = sitk.ReadImage(list(ct.dicom_files))
    _round_trip(ct, source, tmp_path)
    _point_round_trip(ct, source, tmp_path)


def test_shared_nifti_round_trip(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "totalseg-example" / "example_ct_sm.nii.gz"
    _round_trip(load_ct([path]), sitk.ReadImage(str(path)), tmp_path)


def test_png_round_trip(tmp_path: Path) -> None:
    gray = synthetic_slice_u8()
    ct = load_ct([write_png(tmp_path / "slice.png", gray, "RGBA")])
    mask = ct.volume[0] > 128
    out = save_mask_png(mask, tmp_path / "mask.png")
    with Image.open(out) as img:
        assert img.mode == "L"
        back = np.asarray(img)
    np.testing.assert_array_equal(back, np.where(gray > 128, 255, 0))


def test_png_labels_as_nifti_are_2d_with_unit_geometry(tmp_path: Path) -> None:
    ct = load_ct([write_png(tmp_path / "slice.png", synthetic_slice_u8())])
    labels = (ct.volume > 100).astype(np.uint8)
    out = sitk.ReadImage(str(save_nifti(labels, ct, tmp_path / "mask")))
    assert out.GetDimension() == 2
    assert out.GetSize() == (ct.volume.shape[2], ct.volume.shape[1])
    assert out.GetSpacing() == (1.0, 1.0)
    assert out.GetDirection() == (1.0, 0.0, 0.0, 1.0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), labels[0])


def test_save_nifti_appends_suffix_and_widens_dtype(tmp_path: Path) -> None:
    ct = load_ct([write_nifti(tmp_path / "ct.nii.gz", synthetic_ct((2, 8, 8)))])
    labels = np.zeros(ct.volume.shape, np.int32)
    labels[0, 0, 0] = 300
    path = save_nifti(labels, ct, tmp_path / "seg")
    assert path.name == "seg.nii.gz" and path.is_file()
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt16


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((1, 2, 2), np.uint8), r"belongs to another image"),
        (np.full((2, 8, 8), -1, np.int16), r"0\.\.65535"),
        (np.full((2, 8, 8), 70000, np.int32), r"0\.\.65535"),
        (np.zeros((2, 8, 8), np.float32), r"whole numbers"),
    ],
)
def test_bad_labels_are_refused(tmp_path: Path, labels: np.ndarray, message: str) -> None:
    ct = load_ct([write_nifti(tmp_path / "ct.nii.gz", synthetic_ct((2, 8, 8)))])
    with pytest.raises(ExportError, match=message):
        labels_to_sitk(labels, ct)


def test_mask_png_needs_2d(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="2-D"):
        save_mask_png(np.zeros((1, 4, 4), bool), tmp_path / "m.png")
