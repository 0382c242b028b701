"""CT input through SimpleITK: PNG/JPG, single DICOM, DICOM series (files or .zip), NIfTI.

(Interface fixed; the loaders are being filled in.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CTImage", "CTLoadError", "load_ct"]


class CTLoadError(ValueError):
    """A file that cannot be loaded; the message is shown to the user as is."""


@dataclass(frozen=True, eq=False)
class CTImage:
    """A loaded image or volume, reoriented to LPS so axial slices display radiologically.

    2-D images are volumes with one slice. `volume` holds Hounsfield units when `is_hu`,
    else the 0..255 intensities of an 8-bit render (which pass through windowing unchanged).
    """

    volume: np.ndarray  # (Z, Y, X) float32
    spacing: tuple[float, float, float] | None  # (x, y, z) mm, None when the file has none
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 9 values, row-major, of the LPS-reoriented grid
    is_hu: bool
    name: str
    source_orientation: str = "LPS"  # orientation code of the file, to export back to it
    dicom_files: tuple[str, ...] = ()  # source DICOM paths (DICOM-SEG export), else empty

    @property
    def is_volume(self) -> bool:
        return self.volume.shape[0] > 1


def load_ct(paths: Sequence[str | os.PathLike[str]]) -> CTImage:
    """Load one image/volume from one or several uploaded files."""
    raise NotImplementedError
