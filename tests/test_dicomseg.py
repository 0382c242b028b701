"""DICOM-SEG export on the real DICOM series: frames must land on the right source images.

The loaded volume is reoriented to LPS, which reverses this series' slice order, so a SEG that
mapped frames by index instead of by position would put every label on the wrong image.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from fixtures_ct import synthetic_ct, write_dicom_series, write_enhanced_ct

from spinalsam.dicomseg import DicomSegError, save_dicom_seg
from spinalsam.headers import frame_planes
from spinalsam.io import CTImage, load_ct, load_upload


@pytest.fixture(scope="module")
def dicom_ct(shared_data: Path) -> CTImage:
    return load_ct(sorted((shared_data / "totalseg-example" / "dicom").glob("*.dcm")))


def _grid(ct: CTImage) -> sitk.Image:
    """An independent model of the volume's geometry, to look up where a source frame lies."""
    grid = sitk.Image([int(n) for n in ct.volume.shape[::-1]], sitk.sitkUInt8)
    grid.SetSpacing(ct.spacing)
    grid.SetOrigin(ct.origin)
    grid.SetDirection(ct.direction)
    return grid


def test_seg_frames_match_source_images_by_position(dicom_ct: CTImage, tmp_path: Path) -> None:
    labels = np.zeros(dicom_ct.volume.shape, dtype=np.uint16)
    labels[3:8, 100:200, 150:300] = 5
    labels[12, 50:60, 20:40] = 9
    path = save_dicom_seg(labels, dicom_ct, {5: "L1", 9: "lesion", 11: "T12"}, tmp_path / "s.dcm")

    seg = hd.seg.segread(path)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["L1", "lesion"]  # T12 is empty
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "L1 vertebra"
    grid = _grid(dicom_ct)
    frames_with_labels = 0
    for file in dicom_ct.dicom_files:
        source = pydicom.dcmread(file, stop_before_pixels=True)
        x, y, z = grid.TransformPhysicalPointToIndex(
            [float(v) for v in source.ImagePositionPatient]
        )
        assert (x, y) == (0, 0)
        expected = np.select([labels[z] == 5, labels[z] == 9], [1, 2], 0)
        got = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[source.file_meta.MediaStorageSOPInstanceUID],
            combine_segments=True,
        )[0]
        np.testing.assert_array_equal(got, expected)
        frames_with_labels += bool(expected.any())
    assert frames_with_labels == 6


def test_seg_needs_dicom_source_and_matching_labels(
    dicom_ct: CTImage, shared_data: Path, tmp_path: Path
) -> None:
    nifti = load_ct([shared_data / "totalseg-example" / "example_ct_sm.nii.gz"])
    with pytest.raises(DicomSegError, match="needs a DICOM series"):
        save_dicom_seg(np.ones(nifti.volume.shape, np.uint16), nifti, {1: "L1"}, tmp_path / "a")
    with pytest.raises(DicomSegError, match="do not match"):
        save_dicom_seg(np.ones((2, 3, 4), np.uint16), dicom_ct, {1: "L1"}, tmp_path / "b")
    with pytest.raises(DicomSegError, match="no segmented label"):
        save_dicom_seg(np.zeros(dicom_ct.volume.shape, np.uint16), dicom_ct, {1: "L1"}, tmp_path)
    moved = replace(dicom_ct, origin=(dicom_ct.origin[0], dicom_ct.origin[1], 0.0))
    with pytest.raises(DicomSegError, match="does not line up"):
        save_dicom_seg(np.ones(moved.volume.shape, np.uint16), moved, {1: "L1"}, tmp_path / "c")


def test_seg_of_an_enhanced_ct_places_each_frame_by_its_functional_groups(tmp_path: Path) -> None:
    """One multi-frame source: each frame's position comes from its per-frame groups."""
    slices = write_dicom_series(tmp_path / "s", synthetic_ct((5, 20, 24)), orientation="LPI")
    (ct,) = load_upload([write_enhanced_ct(tmp_path / "enhanced.dcm", slices)])
    labels = np.zeros(ct.volume.shape, dtype=np.uint8)
    labels[1:3, 4:9, 2:12] = 7
    labels[4, 10:12, 5:6] = 7
    path = save_dicom_seg(labels, ct, {7: "L2"}, tmp_path / "s.dcm")

    seg = hd.seg.segread(path)
    source = pydicom.dcmread(ct.dicom_files[0], stop_before_pixels=True)
    planes = frame_planes(source)
    got = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=source.SOPInstanceUID,
        source_frame_numbers=list(range(1, len(planes) + 1)),
        combine_segments=True,
        assert_missing_frames_are_empty=True,  # highdicom leaves empty frames out
    )
    grid = _grid(ct)
    for frame, (position, _, _) in zip(got, planes, strict=True):
        x, y, z = grid.TransformPhysicalPointToIndex(position)
        assert (x, y) == (0, 0)
        np.testing.assert_array_equal(frame, labels[z] == 7)
