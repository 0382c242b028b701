"""Synthetic CT test files, written to temp dirs: no test depends on shipped patient data.

The volume is CT-like on purpose (air, a soft-tissue body, a bright vertebra-like ring in HU) and
deliberately asymmetric, so a flipped or transposed axis changes the array and tests notice.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

__all__ = [
    "SERIES_UID",
    "png_bytes",
    "synthetic_ct",
    "synthetic_slice_u8",
    "write_dicom_series",
    "write_enhanced_ct",
    "write_nifti",
    "write_png",
    "write_zip",
]

SERIES_UID = "1.2.826.0.1.3680043.8.498.1001"
AIR, TISSUE, CANCELLOUS, CORTEX = -1000, 40, 250, 900


def synthetic_ct(shape: tuple[int, int, int] = (6, 40, 48), seed: int = 0) -> np.ndarray:
    """(Z, Y, X) int16 HU: body ellipse with an off-centre vertebral ring growing with z."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    nz, ny, nx = shape
    vol = np.full(shape, AIR, dtype=np.float32)
    body = ((x - nx / 2) / (0.45 * nx)) ** 2 + ((y - ny / 2) / (0.4 * ny)) ** 2 <= 1
    vol[body] = TISSUE
    # The vertebra sits posterior (larger y) and to the patient's left (larger x).
    r = np.hypot(x - 0.6 * nx, y - 0.65 * ny)
    radius = 0.12 * min(nx, ny) * (1 + z / max(nz, 1) / 2)
    vol[r <= radius] = CANCELLOUS
    vol[(r > radius) & (r <= radius + 2)] = CORTEX
    noise = np.random.default_rng(seed).normal(0, 10, shape)
    return (vol + noise * body).round().astype(np.int16)


def synthetic_slice_u8(shape: tuple[int, int] = (40, 48)) -> np.ndarray:
    """An 8-bit render of one slice (what PNG/JPG users upload)."""
    hu = synthetic_ct((1, *shape))[0].astype(np.float32)
    return np.clip((hu + 200) / 1200 * 255, 0, 255).astype(np.uint8)


def _lps_image(vol: np.ndarray, spacing: Sequence[float], origin: Sequence[float]) -> sitk.Image:
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    return img


def write_nifti(
    path: Path,
    vol: np.ndarray,
    spacing: Sequence[float] = (0.8, 0.9, 2.5),
    origin: Sequence[float] = (-20.0, -15.0, 30.0),
    orientation: str = "RAS",
) -> Path:
    """Write `vol` (LPS (Z, Y, X)) re-gridded to `orientation`, as NIfTI files often are."""
    sitk.WriteImage(sitk.DICOMOrient(_lps_image(vol, spacing, origin), orientation), str(path))
    return path


def write_dicom_series(
    folder: Path,
    vol: np.ndarray,
    spacing: Sequence[float] = (0.8, 0.9, 2.5),
    origin: Sequence[float] = (-20.0, -15.0, 30.0),
    orientation: str = "LPS",
    modality: str = "CT",
    series_uid: str = SERIES_UID,
    one_folder_per_file: bool = False,
) -> list[Path]:
    """One DICOM file per slice with the tags GDCM sorts by; returned in shuffled order.

    `one_folder_per_file` mimics browser uploads, which land in separate temp folders.
    """
    img = sitk.DICOMOrient(_lps_image(vol, spacing, origin), orientation)
    d = img.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(img.GetDepth()):
        piece = img[:, :, k]
        position = img.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": modality,
            "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{p:.6f}" for p in position),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0018|0050": f"{img.GetSpacing()[2]:.6f}",
            "0008|103e": "synthetic spine",
        }
        for key, value in tags.items():
            piece.SetMetaData(key, value)
        target = folder / f"{k:03d}" if one_folder_per_file else folder
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"slice{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(piece)
        paths.append(path)
    order = np.random.default_rng(1).permutation(len(paths))
    return [paths[i] for i in order]


def write_png(path: Path, gray: np.ndarray, mode: str = "L") -> Path:
    """Save an 8-bit gray array as PNG/JPEG in a given Pillow mode (L, LA, RGB, RGBA, P, I;16)."""
    img = Image.fromarray(gray)
    if mode == "I;16":
        img = Image.fromarray(gray.astype(np.uint16) * 257)
    elif mode != "L":
        img = img.convert(mode)
    img.save(path)
    return path


def write_zip(path: Path, members: Mapping[str, bytes | Path]) -> Path:
    """A zip whose entries are raw bytes or copies of files, under the given entry names."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data.read_bytes() if isinstance(data, Path) else data)
    return path


def png_bytes(gray: np.ndarray) -> bytes:
    """An in-memory PNG, for tests that corrupt specific chunks."""
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG")
    return buf.getvalue()


def write_enhanced_ct(path: Path, slices: Sequence[Path]) -> Path:
    """One Legacy Converted Enhanced CT file (all frames, per-frame functional groups) made by
    highdicom from classic single-frame CT slices: what a PACS or converter exports."""
    import highdicom as hd
    import pydicom
    from pydicom.uid import CTImageStorage, generate_uid

    datasets = [pydicom.dcmread(f) for f in slices]
    first = datasets[0]
    shared = {  # ITK gives each slice its own study; anonymised ones have none
        "SOPClassUID": CTImageStorage,
        "StudyInstanceUID": first.get("StudyInstanceUID") or generate_uid(),
        "SeriesInstanceUID": first.get("SeriesInstanceUID") or generate_uid(),
        "FrameOfReferenceUID": first.get("FrameOfReferenceUID") or generate_uid(),
    }
    for ds in datasets:
        for keyword, value in shared.items():
            setattr(ds, keyword, value)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets,
        series_instance_uid=generate_uid(),
        series_number=99,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    enhanced.save_as(path)
    return path
