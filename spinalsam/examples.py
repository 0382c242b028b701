"""Built-in examples: files shipped inside installed packages or generated, never copied data.

Each example materialises into the caller's folder, so nothing is written at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import SimpleITK as sitk

from spinalsam.phantom import make_spine_phantom

__all__ = ["EXAMPLES", "example_files"]


def _ct_small(_: Path) -> list[Path]:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        raise FileNotFoundError("pydicom's CT_small.dcm test file is not installed")
    return [Path(path)]


def _phantom(folder: Path) -> list[Path]:
    path = folder / "synthetic_lumbar_phantom.nii.gz"
    if not path.exists():
        volume, _ = make_spine_phantom(shape=(40, 160, 160), n_vertebrae=3)
        image = sitk.GetImageFromArray(volume.astype("int16"))
        image.SetSpacing((0.8, 0.8, 2.5))
        sitk.WriteImage(image, str(path))
    return [path]


EXAMPLES: dict[str, Callable[[Path], list[Path]]] = {
    "CT vertebra slice (pydicom CT_small.dcm, HU)": _ct_small,
    "Synthetic lumbar volume (3 vertebrae, HU)": _phantom,
}


def example_files(name: str, folder: Path) -> list[Path]:
    """Files of the named example, generated into `folder` when needed."""
    return EXAMPLES[name](folder)
