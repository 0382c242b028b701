"""DICOM-SEG export of a label map, so a PACS or viewer shows it over the source series.

`CTImage.volume` is reoriented to LPS, so its slice order and in-plane axes may differ from the
source files. Each source frame is therefore filled by geometry, not by index: every pixel's
patient position (ImagePositionPatient + ImageOrientationPatient × PixelSpacing) is mapped into
the label map's voxel grid and sampled there. This is correct whatever the reorientation did.
pydicom and highdicom are imported on the first export, not at start-up (≈ 0.4 s together).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spinalsam import __version__
from spinalsam.headers import frame_planes
from spinalsam.io import CTImage
from spinalsam.vertebrae import VERTEBRA_NAMES

if TYPE_CHECKING:
    import highdicom as hd
    import pydicom

__all__ = ["DicomSegError", "save_dicom_seg"]

_GRID_TOLERANCE = 0.05  # voxels: source pixel centres must fall on the label map's grid


class DicomSegError(ValueError):
    """A DICOM-SEG that cannot be written for this image; the message is shown as is."""


def _read_sources(files: Sequence[str]) -> list[pydicom.Dataset]:
    """Source headers (no pixel data needed), with UIDs that anonymisers blanked restored.

    highdicom requires the study/series/instance UIDs it references. Blank instance UIDs are
    taken from the file meta header; blank study/series UIDs get one stable made-up value per
    series, derived from the Frame of Reference, so all frames agree.
    """
    import pydicom
    from pydicom.uid import generate_uid

    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    seed = str(datasets[0].get("FrameOfReferenceUID", "")) or str(files[0])
    for ds in datasets:
        if not ds.get("SOPClassUID"):
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        if not ds.get("SOPInstanceUID"):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        if not ds.get("StudyInstanceUID"):
            ds.StudyInstanceUID = generate_uid(entropy_srcs=[seed, "study"])
        if not ds.get("SeriesInstanceUID"):
            ds.SeriesInstanceUID = generate_uid(entropy_srcs=[seed, "series"])
    return datasets


def _voxel_transform(ct: CTImage) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, origin) mapping a patient position p to (x, y, z) voxel indices: M @ (p − o)."""
    if ct.spacing is None:
        raise DicomSegError("the image has no voxel spacing, so it cannot be placed in DICOM")
    direction = np.asarray(ct.direction, dtype=float).reshape(3, 3)
    index_to_patient = direction @ np.diag(ct.spacing)
    return np.linalg.inv(index_to_patient), np.asarray(ct.origin, dtype=float)


def _frames(labels: np.ndarray, ds: pydicom.Dataset, ct: CTImage) -> list[np.ndarray]:
    """The label map on each frame of one source file: a classic slice has one, an enhanced
    (multi-frame) CT has one per frame, each placed by its own functional groups."""
    planes = frame_planes(ds)
    if any(value is None for plane in planes for value in plane):
        raise DicomSegError("the source DICOM does not say where its frames lie in the patient")
    return [_frame(labels, plane, (int(ds.Rows), int(ds.Columns)), ct) for plane in planes]  # type: ignore[arg-type]


def _frame(
    labels: np.ndarray, plane: tuple[tuple[float, ...], ...], size: tuple[int, int], ct: CTImage
) -> np.ndarray:
    """The label map resampled onto one source frame's pixel grid (nearest voxel)."""
    to_index, origin = _voxel_transform(ct)
    position, orientation = (np.asarray(v, dtype=float) for v in plane[:2])
    row_spacing, col_spacing = plane[2]
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]]
    patient = (
        position[:, None, None]
        + orientation[:3, None, None] * cols[None] * col_spacing
        + orientation[3:, None, None] * rows[None] * row_spacing
    )
    xyz = np.einsum("ij,jrc->irc", to_index, patient - origin[:, None, None])
    index = np.rint(xyz).astype(np.int64)
    shape_xyz = labels.shape[::-1]
    if np.abs(xyz - index).max() > _GRID_TOLERANCE or any(
        index[a].min() < 0 or index[a].max() >= shape_xyz[a] for a in range(3)
    ):
        raise DicomSegError(
            "the label map does not line up with the DICOM series it came from; "
            "reload the series and segment again"
        )
    return labels[index[2], index[1], index[0]]


def _description(number: int, name: str) -> hd.seg.SegmentDescription:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if name in VERTEBRA_NAMES:
        category = codes.SCT.AnatomicalStructure
        kind = getattr(codes.SCT, f"{name}Vertebra", codes.SCT.Vertebra)
    else:
        category, kind = codes.SCT.Tissue, codes.SCT.Tissue
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name,
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="SpinalSAM", version=__version__, family=codes.cid7162.ArtificialIntelligence
        ),
    )


def save_dicom_seg(
    labels: np.ndarray,
    ct: CTImage,
    label_names: Mapping[int, str],
    path: str | Path,
) -> Path:
    """Write the labels named in `label_names` (and present) as a binary DICOM-SEG at `path`.

    Label ids become segment numbers 1..N in id order, since DICOM requires consecutive numbers;
    the segment label keeps the name.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    if not ct.dicom_files:
        raise DicomSegError(
            "DICOM-SEG export needs a DICOM series as the source image; "
            "export this image as NIfTI instead"
        )
    if labels.shape != ct.volume.shape:
        raise DicomSegError(f"labels {labels.shape} do not match the image {ct.volume.shape}")
    present = [i for i in sorted(label_names) if np.any(labels == i)]
    if not present:
        raise DicomSegError("there is no segmented label to export yet")
    renumber = np.zeros(int(labels.max()) + 1, dtype=np.uint8 if len(present) < 256 else np.uint16)
    for number, label_id in enumerate(present, start=1):
        renumber[label_id] = number
    sources = _read_sources(ct.dicom_files)
    frames = np.stack([renumber[f] for ds in sources for f in _frames(labels, ds, ct)])
    # UIDs derive from the content, so exporting the same labels twice (e.g. after reopening
    # a saved session) gives the same object, not a second series.
    digest = hashlib.sha256(frames.tobytes()).hexdigest()
    content = [digest, *(label_names[i] for i in present), str(sources[0].SeriesInstanceUID)]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            _description(n, label_names[i]) for n, i in enumerate(present, start=1)
        ],
        series_instance_uid=generate_uid(entropy_srcs=[*content, "series"]),
        series_number=900,
        sop_instance_uid=generate_uid(entropy_srcs=[*content, "instance"]),
        instance_number=1,
        manufacturer="SpinalSAM",
        manufacturer_model_name="SpinalSAM",
        software_versions=__version__,
        device_serial_number="0",
        series_description="SpinalSAM segmentation",
    )
    _make_reproducible(seg, sources[0], generate_uid(entropy_srcs=[*content, "dimensions"]))
    path = Path(path)
    seg.save_as(path)
    return path


def _make_reproducible(seg: pydicom.Dataset, source: pydicom.Dataset, dimension_uid: str) -> None:
    """Dates, times and the dimension UID from the content instead of "now" and random: the
    same labels give the same file (an export after reopening a saved session matches)."""
    date = str(source.get("StudyDate", "")) or "19000101"
    time = str(source.get("StudyTime", "")) or "000000"
    for key in ("ContentDate", "SeriesDate", "InstanceCreationDate"):
        if key in seg:
            setattr(seg, key, date)
    for key in ("ContentTime", "SeriesTime", "InstanceCreationTime"):
        if key in seg:
            setattr(seg, key, time)
    for item in seg.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = date + time.split(".")[0]
    for key in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
        for item in seg.get(key, []):
            if "DimensionOrganizationUID" in item:
                item.DimensionOrganizationUID = dimension_uid
