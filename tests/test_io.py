"""load_ct on every supported format: values, HU flag, geometry and LPS reorientation."""

from __future__ import annotations

import copy
import struct
from pathlib import Path

import numpy as np
import pydicom.data
import pytest
import SimpleITK as sitk
from fixtures_ct import (
    synthetic_ct,
    synthetic_slice_u8,
    write_dicom_series,
    write_enhanced_ct,
    write_nifti,
    write_png,
    write_zip,
)

from spinalsam.io import SUPPORTED_EXTENSIONS, CTImage, CTLoadError, load_ct, load_upload

SPACING = (0.8, 0.9, 2.5)
ORIGIN = (-20.0, -15.0, 30.0)


def test_pydicom_ct_small_is_hu_with_spacing() -> None:
    ct = load_ct([pydicom.data.get_testdata_file("CT_small.dcm")])
    assert ct.volume.shape == (1, 128, 128)
    assert ct.volume.dtype == np.float32
    assert ct.is_hu and not ct.is_volume
    assert ct.volume.min() < -500  # air in HU, rescale applied
    assert ct.spacing == pytest.approx((0.661468, 0.661468, 5.0))
    assert ct.dicom_files and ct.name == "CT_small.dcm"


@pytest.mark.parametrize("orientation", ["RAS", "LPS", "LAS", "RPI"])
def test_nifti_is_reoriented_to_lps(tmp_path: Path, orientation: str) -> None:
    vol = synthetic_ct()
    path = write_nifti(tmp_path / "ct.nii.gz", vol, SPACING, ORIGIN, orientation)
    ct = load_ct([path])
    assert ct.source_orientation == orientation
    assert ct.is_hu and ct.is_volume
    np.testing.assert_array_equal(ct.volume, vol)  # the LPS array the file was made from
    assert ct.spacing == pytest.approx(SPACING)
    assert ct.origin == pytest.approx(ORIGIN)
    assert ct.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert ct.dicom_files == ()


def test_uncompressed_nifti_mha_and_nrrd_load(tmp_path: Path) -> None:
    vol = synthetic_ct((3, 20, 24))
    for name in ("ct.nii", "ct.mha", "ct.nrrd"):
        ct = load_ct([write_nifti(tmp_path / name, vol)])
        np.testing.assert_array_equal(ct.volume, vol)
        assert ct.is_hu, name


def test_two_dimensional_nifti_has_one_slice(tmp_path: Path) -> None:
    hu = synthetic_ct((1, 20, 24))[0]
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(hu), str(path))
    ct = load_ct([path])
    assert ct.volume.shape == (1, 20, 24)
    np.testing.assert_array_equal(ct.volume[0], hu)


def test_nifti_hu_rule(tmp_path: Path) -> None:
    """HU when min < -500 or integer with negatives; else scaled to 0..255 as a render."""
    mr = np.linspace(0, 1000, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    ct = load_ct([write_nifti(tmp_path / "mr.nii.gz", mr)])
    assert not ct.is_hu
    assert (ct.volume.min(), ct.volume.max()) == pytest.approx((0.0, 255.0))
    small_negative = np.full((2, 8, 8), 100, np.int16)
    small_negative[0, 0, 0] = -100
    assert load_ct([write_nifti(tmp_path / "int.nii.gz", small_negative)]).is_hu
    render = (mr / 4).astype(np.uint8)
    ct = load_ct([write_nifti(tmp_path / "u8.nii.gz", render)])
    assert not ct.is_hu
    np.testing.assert_array_equal(ct.volume, render)  # 8-bit data is kept as is
    labels = np.zeros((2, 8, 8), np.uint16)
    labels[1, 2:4, 2:4] = 117  # a label map: ids must survive, not be stretched
    ct = load_ct([write_nifti(tmp_path / "labels.nii.gz", labels)])
    assert not ct.is_hu
    np.testing.assert_array_equal(ct.volume, labels)


@pytest.mark.parametrize("separate_folders", [False, True])
def test_dicom_series_sorted_by_gdcm(tmp_path: Path, separate_folders: bool) -> None:
    vol = synthetic_ct()
    files = write_dicom_series(tmp_path, vol, SPACING, ORIGIN, one_folder_per_file=separate_folders)
    ct = load_ct(files)  # given in shuffled order
    np.testing.assert_array_equal(ct.volume, vol)
    assert ct.is_hu
    assert ct.spacing == pytest.approx(SPACING)
    assert ct.origin == pytest.approx(ORIGIN)
    assert ct.name == "synthetic spine (6 slices)"
    z = [pydicom.dcmread(f).ImagePositionPatient[2] for f in ct.dicom_files]
    assert z == sorted(z) and len(z) == vol.shape[0]


def test_dicom_series_in_ras_orientation(tmp_path: Path) -> None:
    vol = synthetic_ct()
    ct = load_ct(write_dicom_series(tmp_path, vol, SPACING, ORIGIN, orientation="RAS"))
    assert ct.source_orientation == "RAS"
    np.testing.assert_array_equal(ct.volume, vol)
    assert ct.origin == pytest.approx(ORIGIN)


def test_zipped_series_loads_and_keeps_files(tmp_path: Path) -> None:
    vol = synthetic_ct()
    files = write_dicom_series(tmp_path / "series", vol)
    members = {f"study/series/{f.name}": f for f in files}
    members["__MACOSX/._junk"] = b"resource fork"
    members["study/.DS_Store"] = b"finder"
    ct = load_ct([write_zip(tmp_path / "study.zip", members)])
    np.testing.assert_array_equal(ct.volume, vol)
    assert len(ct.dicom_files) == vol.shape[0]
    assert all(Path(f).is_file() for f in ct.dicom_files)  # kept for DICOM-SEG export
    assert ct.is_hu


def test_largest_of_several_series_wins(tmp_path: Path) -> None:
    big = write_dicom_series(tmp_path / "a", synthetic_ct((5, 20, 24)))
    small = write_dicom_series(tmp_path / "b", synthetic_ct((2, 16, 16)), series_uid="1.2.3.4.5")
    ct = load_ct(small + big)
    assert ct.volume.shape == (5, 20, 24)
    assert set(ct.dicom_files) == {str(f) for f in big}


def test_non_ct_dicom_is_not_hu(tmp_path: Path) -> None:
    files = write_dicom_series(tmp_path, synthetic_ct((2, 16, 16)) + 1000, modality="MR")
    ct = load_ct(files)
    assert not ct.is_hu
    assert (ct.volume.min(), ct.volume.max()) == pytest.approx((0.0, 255.0))


def _same_image(enhanced: CTImage, classic: CTImage) -> None:
    np.testing.assert_array_equal(enhanced.volume, classic.volume)
    assert enhanced.is_hu and classic.is_hu
    assert enhanced.spacing == pytest.approx(classic.spacing)
    assert enhanced.origin == pytest.approx(classic.origin)
    assert enhanced.direction == pytest.approx(classic.direction)


@pytest.mark.parametrize("orientation", ["LPS", "RAS"])
def test_enhanced_ct_loads_like_its_classic_series(tmp_path: Path, orientation: str) -> None:
    """One multi-frame file (per-frame functional groups): same HU, spacing and geometry as the
    slices it was made from, whichever way the frames run."""
    vol = synthetic_ct((5, 20, 24))
    slices = write_dicom_series(tmp_path / "s", vol, orientation=orientation)
    (enhanced,) = load_upload([write_enhanced_ct(tmp_path / "enhanced.dcm", slices)])
    _same_image(enhanced, load_ct(slices))
    np.testing.assert_array_equal(enhanced.volume, vol)
    assert enhanced.dicom_files


def test_enhanced_ct_with_a_rescale_per_frame(tmp_path: Path) -> None:
    """Frames may each carry their own slope/intercept; GDCM applies the first frame's to all."""
    vol = synthetic_ct((4, 20, 24))
    slices = sorted(write_dicom_series(tmp_path / "s", vol))
    for k, path in enumerate(slices):  # odd slices store HU + 2024 with intercept -2024
        ds = pydicom.dcmread(path)
        slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
        hu = ds.pixel_array * slope + intercept
        offset = 2024.0 if k % 2 else -intercept
        ds.PixelData = np.rint((hu + offset) / slope).astype(ds.pixel_array.dtype).tobytes()
        ds.RescaleIntercept, ds.RescaleSlope = -offset, slope
        ds.save_as(path)
    (enhanced,) = load_upload([write_enhanced_ct(tmp_path / "enhanced.dcm", slices)])
    np.testing.assert_allclose(enhanced.volume, vol, atol=abs(slope) / 2 + 1e-3)


def test_load_upload_takes_one_path_as_load_ct_does(tmp_path: Path) -> None:
    path = write_png(tmp_path / "one.png", synthetic_slice_u8(), "L")
    for given in (path, str(path)):
        (ct,) = load_upload(given)  # type: ignore[arg-type]
        np.testing.assert_array_equal(ct.volume, load_ct(path).volume)


def test_enhanced_ct_frames_whose_orientation_differs_by_rounding_load(tmp_path: Path) -> None:
    """Orientations written per frame differ in their last digits; a classic series with the
    same jitter loads (orientations are compared to 3 decimals), so the enhanced file must too."""
    vol = synthetic_ct((4, 20, 24))
    slices = write_dicom_series(tmp_path / "s", vol)
    path = write_enhanced_ct(tmp_path / "enhanced.dcm", slices)
    ds = pydicom.dcmread(path)
    orientation = copy.deepcopy(ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence)
    orientation[0].ImageOrientationPatient = [
        v + 1e-7 for v in orientation[0].ImageOrientationPatient
    ]
    ds.PerFrameFunctionalGroupsSequence[1].PlaneOrientationSequence = orientation
    ds.save_as(path)
    (enhanced,) = load_upload([path])
    np.testing.assert_array_equal(enhanced.volume, vol)


@pytest.mark.parametrize(("value", "frame"), [("NaN", 0), ("inf", 2)])
def test_enhanced_ct_with_a_frame_rescale_that_is_no_number_is_refused(
    tmp_path: Path, value: str, frame: int
) -> None:
    """A NaN slope would make the frame NaN, later shown as the lowest HU: a made-up frame."""
    slices = write_dicom_series(tmp_path / "s", synthetic_ct((4, 20, 24)))
    path = write_enhanced_ct(tmp_path / "enhanced.dcm", slices)
    ds = pydicom.dcmread(path)
    transform = copy.deepcopy(ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence)
    transform[0].RescaleSlope = value
    ds.PerFrameFunctionalGroupsSequence[frame].PixelValueTransformationSequence = transform
    ds.save_as(path)
    with pytest.raises(CTLoadError, match=rf"frame {frame + 1} .*rescale"):
        load_upload([path])


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("l.png", "L"),
        ("rgb.png", "RGB"),
        ("rgba.png", "RGBA"),
        ("la.png", "LA"),
        ("palette.png", "P"),
        ("one_bit.png", "1"),
        ("photo.jpg", "RGB"),
    ],
)
def test_raster_modes_become_gray_renders(tmp_path: Path, name: str, mode: str) -> None:
    gray = synthetic_slice_u8()
    ct = load_ct([write_png(tmp_path / name, gray, mode)])
    assert isinstance(ct, CTImage)
    assert ct.volume.shape == (1, *gray.shape)
    assert ct.volume.dtype == np.float32
    assert not ct.is_hu and ct.spacing is None
    assert ct.volume.min() >= 0 and ct.volume.max() <= 255
    if name.endswith(".jpg"):
        assert np.abs(ct.volume[0] - gray).mean() < 8  # JPEG is lossy
    elif mode == "1":
        assert set(np.unique(ct.volume)) <= {0.0, 255.0}
    else:  # lossless: the gray values come back exactly
        np.testing.assert_array_equal(ct.volume[0], gray)


def test_sixteen_bit_png_is_stretched(tmp_path: Path) -> None:
    gray = synthetic_slice_u8()
    ct = load_ct([write_png(tmp_path / "deep.png", gray, "I;16")])
    assert not ct.is_hu
    assert (ct.volume.min(), ct.volume.max()) == (0.0, 255.0)
    expected = (gray - gray.min()) * (255.0 / (int(gray.max()) - int(gray.min())))
    np.testing.assert_allclose(ct.volume[0], expected, atol=1e-3)


def test_supported_extensions_cover_the_formats() -> None:
    for ext in (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz", ".zip"):
        assert ext in SUPPORTED_EXTENSIONS


def test_single_path_string_is_accepted(tmp_path: Path) -> None:
    path = write_png(tmp_path / "a.png", synthetic_slice_u8())
    assert load_ct(str(path)).volume.shape[0] == 1  # type: ignore[arg-type]


# --- the evaluation data beside the repo -----------------------------------------------------


def test_shared_dicom_series(shared_data: Path) -> None:
    files = sorted((shared_data / "totalseg-example" / "dicom").glob("*.dcm"))
    assert len(files) == 20
    ct = load_ct(files)
    assert ct.volume.shape == (20, 512, 512)
    assert ct.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert ct.is_hu
    assert ct.volume.min() <= -1000 and ct.volume.max() > 700  # air and bone
    assert len(ct.dicom_files) == 20


def test_shared_enhanced_ct_matches_the_classic_series(shared_data: Path, tmp_path: Path) -> None:
    files = sorted((shared_data / "totalseg-example" / "dicom").glob("*.dcm"))
    (enhanced,) = load_upload([write_enhanced_ct(tmp_path / "enhanced.dcm", files)])
    _same_image(enhanced, load_ct(files))
    assert enhanced.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))


def test_shared_nifti(shared_data: Path) -> None:
    path = shared_data / "totalseg-example" / "example_ct_sm.nii.gz"
    ct = load_ct([path])
    assert ct.volume.shape == (30, 101, 122)
    assert ct.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert ct.is_hu and ct.source_orientation == "RAS"
    assert ct.volume.min() < -900 and ct.volume.max() > 700


def test_shared_rgba_png(shared_data: Path) -> None:
    path = next((shared_data / "spinalsam-r1-sample" / "axial" / "images").glob("*.png"))
    ct = load_ct([path])
    assert ct.volume.shape == (1, 512, 512)
    assert not ct.is_hu and ct.spacing is None
    assert 0 <= ct.volume.min() < ct.volume.max() <= 255


def test_label_map_keeps_ids_above_255(tmp_path: Path) -> None:
    from spinalsam.io import load_label_map

    labels = np.zeros((4, 6, 8), dtype=np.uint16)
    labels[1, 2, 3] = 300
    labels[2, 4, 5] = 7
    image = sitk.GetImageFromArray(labels)
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS → flipped back to LPS on load
    sitk.WriteImage(image, str(tmp_path / "seg.nii.gz"))
    loaded = load_label_map(tmp_path / "seg.nii.gz", (4, 6, 8))
    assert sorted(np.unique(loaded).tolist()) == [0, 7, 300]
    assert loaded[1, 6 - 1 - 2, 8 - 1 - 3] == 300
    with pytest.raises(CTLoadError, match="same grid"):
        load_label_map(tmp_path / "seg.nii.gz", (4, 6, 9))


@pytest.mark.parametrize(
    ("header", "data"),
    [("scan.mhd", "scan.raw"), ("scan.nhdr", "scan.raw"), ("scan.hdr", "scan.img")],
)
def test_detached_header_reads_its_data_from_the_same_upload(
    tmp_path: Path, header: str, data: str
) -> None:
    vol = synthetic_ct((3, 16, 24))
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(tmp_path / header))
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == sorted([header, data])
    upload = tmp_path / "upload"
    upload.mkdir()
    for i, f in enumerate(files):  # separate folders, as a browser upload stores them
        (upload / str(i)).mkdir()
        f.rename(upload / str(i) / f.name)
    ct = load_ct(sorted(upload.rglob("scan.*")))
    np.testing.assert_array_equal(ct.volume, vol)


def test_detached_header_never_reads_outside_the_upload(tmp_path: Path) -> None:
    (tmp_path / "secret.raw").write_bytes(b"S" * 64 * 64)
    (tmp_path / "scan.raw").write_bytes(bytes(64 * 64))
    header = tmp_path / "scan.mhd"
    header.write_text(
        "ObjectType = Image\nNDims = 2\nDimSize = 64 64\nElementType = MET_UCHAR\n"
        "ElementDataFile = secret.raw\n"
    )
    with pytest.raises(CTLoadError, match=r"keeps its pixels in 'secret\.raw'"):
        load_ct([header, tmp_path / "scan.raw"])
    with pytest.raises(CTLoadError, match="together with the one data file"):
        load_ct([tmp_path / "scan.raw"])


def test_analyze_pair_opens_and_says_it_has_no_orientation(tmp_path: Path) -> None:
    vol = synthetic_ct((3, 16, 24)).astype(np.float32)
    vol[1, :4, :4] = np.nan  # ITK reads NaN as 0 (water): it must become the minimum instead
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(tmp_path / "scan.hdr"))
    header = tmp_path / "scan.hdr"
    raw = bytearray(header.read_bytes())
    assert raw[344:348] == b"ni1\x00"
    paired = load_ct([header, tmp_path / "scan.img"])
    assert "orientation" not in paired.name
    raw[344:348] = bytes(4)  # no magic: Analyze 7.5
    header.write_bytes(bytes(raw))
    analyze = load_ct([tmp_path / "scan.img", header])
    assert "Analyze 7.5 stores no orientation" in analyze.name
    for ct in (paired, analyze):
        np.testing.assert_array_equal(ct.volume[~np.isnan(vol)], vol[~np.isnan(vol)])
        assert np.all(ct.volume[1, :4, :4] == np.nanmin(vol))
    other = tmp_path / "other.img"
    (tmp_path / "scan.img").rename(other)
    with pytest.raises(CTLoadError, match=r"keeps its pixels in 'scan\.img'"):
        load_ct([header, other])


def test_single_file_nifti_named_hdr_is_refused(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(synthetic_ct((2, 8, 8))), str(tmp_path / "scan.nii"))
    (tmp_path / "scan.nii").rename(tmp_path / "scan.hdr")
    (tmp_path / "scan.img").write_bytes(bytes(8))
    with pytest.raises(CTLoadError, match="single-file NIfTI with its pixels inside"):
        load_ct([tmp_path / "scan.hdr", tmp_path / "scan.img"])


def test_a_single_slice_nifti_without_a_slice_thickness_loads(tmp_path: Path) -> None:
    """2-D masks and slices saved as NIfTI often leave the size across their one slice 0: it
    measures nothing, so only sizes along dimensions with several voxels must be real."""
    path = tmp_path / "one.nii"
    image = sitk.GetImageFromArray(np.zeros((1, 16, 16), np.int16) - 1000)
    image.SetSpacing((0.7, 0.7, 2.0))
    sitk.WriteImage(image, str(path))
    data = bytearray(path.read_bytes())
    struct.pack_into("<f", data, 88, 0.0)  # pixdim[3]
    path.write_bytes(bytes(data))
    ct = load_ct(path)
    assert ct.volume.shape == (1, 16, 16) and np.allclose(ct.spacing[:2], 0.7)
