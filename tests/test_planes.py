"""Slice views of an LPS volume: radiological orientation and exact take/put round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_ct import write_nifti
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spinalsam.io import load_ct
from spinalsam.planes import (
    PLANES,
    axis_spacing,
    n_slices,
    put_slice,
    slice_spacing,
    take_slice,
)


@st.composite
def volume_plane_index(draw: st.DrawFn) -> tuple[np.ndarray, str, int]:
    shape = draw(hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=7))
    vol = draw(hnp.arrays(np.int16, shape))
    plane = draw(st.sampled_from(PLANES))
    index = draw(st.integers(0, n_slices(shape, plane) - 1))
    return vol, plane, index


@settings(max_examples=150, deadline=None)
@given(volume_plane_index())
def test_put_of_take_leaves_volume_unchanged(case: tuple[np.ndarray, str, int]) -> None:
    vol, plane, index = case
    before = vol.copy()
    put_slice(vol, plane, index, take_slice(vol, plane, index).copy())
    np.testing.assert_array_equal(vol, before)


@settings(max_examples=150, deadline=None)
@given(volume_plane_index(), st.data())
def test_take_of_put_returns_what_was_put(
    case: tuple[np.ndarray, str, int], data: st.DataObject
) -> None:
    vol, plane, index = case
    before = vol.copy()
    shape2d = take_slice(vol, plane, index).shape
    new = data.draw(hnp.arrays(np.int16, shape2d))
    put_slice(vol, plane, index, new)
    np.testing.assert_array_equal(take_slice(vol, plane, index), new)
    # Only that slice changed.
    other = np.ones(vol.shape, bool)
    put_slice(other, plane, index, np.zeros(shape2d, bool))
    np.testing.assert_array_equal(vol[other], before[other])


def test_display_orientation_is_radiological() -> None:
    """Markers at known LPS places show up where a radiologist expects them."""
    vol = np.zeros((4, 5, 6), np.int8)  # (Z: inferior→superior, Y: anterior→posterior, X: R→L)
    vol[3, 0, 0] = 1  # superior, anterior, patient right
    ax = take_slice(vol, "axial", 3)
    assert ax.shape == (5, 6) and ax[0, 0] == 1  # anterior at top, patient right on the left
    cor = take_slice(vol, "coronal", 0)
    assert cor.shape == (4, 6) and cor[0, 0] == 1  # superior at top, patient right on the left
    sag = take_slice(vol, "sagittal", 0)
    assert sag.shape == (4, 5) and sag[0, 0] == 1  # superior at top, anterior on the left


def test_loaded_ras_nifti_displays_superior_left_marker_correctly(tmp_path: Path) -> None:
    """End to end: a marker in the patient's superior-left lands top-right on the coronal view."""
    vol = np.full((5, 6, 7), -1000, np.int16)
    vol[4, 2, 6] = 1000  # LPS: z=4 most superior, x=6 most to the patient's left
    ct = load_ct([write_nifti(tmp_path / "m.nii.gz", vol, orientation="RAS")])
    cor = take_slice(ct.volume, "coronal", 2)
    assert np.unravel_index(cor.argmax(), cor.shape) == (0, 6)


def test_n_slices_per_plane() -> None:
    assert [n_slices((4, 5, 6), p) for p in PLANES] == [4, 5, 6]


def test_spacings() -> None:
    xyz = (0.5, 0.7, 2.0)
    assert slice_spacing(xyz, "axial") == (0.5, 0.7)
    assert slice_spacing(xyz, "coronal") == (0.5, 2.0)
    assert slice_spacing(xyz, "sagittal") == (0.7, 2.0)
    assert slice_spacing(None, "axial") is None
    assert axis_spacing(xyz) == (2.0, 0.7, 0.5)
    assert axis_spacing(None) is None


def test_bad_arguments_are_refused() -> None:
    vol = np.zeros((2, 3, 4))
    with pytest.raises(IndexError, match=r"0\.\.1"):
        take_slice(vol, "axial", 2)
    with pytest.raises(IndexError):
        take_slice(vol, "sagittal", -1)
    with pytest.raises(ValueError, match="unknown plane"):
        take_slice(vol, "oblique", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="4×2 pixels"):
        put_slice(vol, "coronal", 0, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="volume"):
        take_slice(np.zeros((3, 4)), "axial", 0)
