"""Metric conventions on hand-computed cases (2-D and 3-D, isotropic and anisotropic)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spinalsam.metrics import dice, hd95, iou, mask_stats, msd


def square(shape: tuple[int, int], y: int, x: int, size: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y : y + size, x : x + size] = True
    return m


def test_offset_squares_overlap() -> None:
    # 10×10 squares shifted 2 px: overlap 10×8 = 80, sizes 100 + 100, union 120.
    a, b = square((20, 20), 0, 0, 10), square((20, 20), 0, 2, 10)
    assert dice(a, b) == pytest.approx(160 / 200)
    assert iou(a, b) == pytest.approx(80 / 120)


def test_identical_masks_are_perfect() -> None:
    a = square((16, 16), 3, 4, 6)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    assert hd95(a, a) == 0.0 and msd(a, a) == 0.0


def test_parallel_lines_distance_in_pixels_and_mm() -> None:
    # One-pixel lines are all surface: every surface point is exactly 3 columns away.
    a = np.zeros((10, 10), dtype=bool)
    b = np.zeros((10, 10), dtype=bool)
    a[:, 2] = True
    b[:, 5] = True
    assert hd95(a, b) == pytest.approx(3.0)
    assert msd(a, b) == pytest.approx(3.0)
    # spacing is in array axis order: (row mm, column mm).
    assert hd95(a, b, spacing=(1.0, 0.5)) == pytest.approx(1.5)
    assert msd(a, b, spacing=(4.0, 0.5)) == pytest.approx(1.5)


def test_diagonal_offset_uses_euclidean_anisotropic_distance() -> None:
    a = np.zeros((10, 10), dtype=bool)
    b = np.zeros((10, 10), dtype=bool)
    a[1, 1] = True
    b[4, 5] = True  # 3 rows, 4 columns apart
    assert hd95(a, b) == pytest.approx(5.0)
    assert msd(a, b, spacing=(2.0, 1.0)) == pytest.approx(math.sqrt(6**2 + 4**2))


def test_hd95_ignores_a_single_outlier_but_msd_sees_it() -> None:
    gt = np.zeros((100, 60), dtype=bool)
    gt[:, 0] = True
    pred = gt.copy()
    pred[0, 50] = True  # one stray pixel 50 px away; 201 surface distances, one of them 50
    assert hd95(pred, gt) == pytest.approx(0.0)
    assert msd(pred, gt) == pytest.approx(50 / 201)


def test_3d_planes_with_anisotropic_spacing() -> None:
    a = np.zeros((6, 8, 8), dtype=bool)
    b = np.zeros((6, 8, 8), dtype=bool)
    a[1] = True
    b[3] = True  # two slices apart, 2.5 mm slice spacing
    assert hd95(a, b, spacing=(2.5, 0.7, 0.7)) == pytest.approx(5.0)
    assert msd(a, b, spacing=(2.5, 0.7, 0.7)) == pytest.approx(5.0)
    assert dice(a, b) == 0.0


def test_empty_mask_conventions() -> None:
    empty = np.zeros((8, 8), dtype=bool)
    full = square((8, 8), 2, 2, 3)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert hd95(empty, empty) == 0.0 and msd(empty, empty) == 0.0
    assert dice(full, empty) == 0.0 and iou(empty, full) == 0.0
    assert math.isnan(hd95(full, empty)) and math.isnan(msd(empty, full))


def test_shape_and_spacing_mismatch_are_reported() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        dice(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="spacing"):
        hd95(square((8, 8), 0, 0, 2), square((8, 8), 1, 1, 2), spacing=(1.0, 1.0, 1.0))


def test_mask_stats_2d_area_and_hu() -> None:
    mask = square((20, 20), 5, 5, 10)
    pixels = np.where(mask, 300.0, -50.0)
    pixels[5, 5] = 400.0  # mean moves by 1 HU, std becomes sqrt(99)/10 * 10
    stats = mask_stats(mask, pixels, spacing=(0.5, 0.8), is_hu=True)
    assert stats["pixels_count"] == 100
    assert stats["area_mm2"] == pytest.approx(40.0)
    assert stats["hu_mean"] == pytest.approx(301.0)
    assert stats["hu_std"] == pytest.approx(np.std([400.0] + [300.0] * 99))
    assert "volume_ml" not in stats and "intensity_mean" not in stats


def test_mask_stats_3d_volume_without_hu() -> None:
    mask = np.zeros((12, 12, 12), dtype=bool)
    mask[1:11, 1:11, 1:11] = True  # 1000 voxels of 2 mm³ = 2 ml
    stats = mask_stats(mask, np.full(mask.shape, 128.0), spacing=(2.0, 1.0, 1.0))
    assert stats["volume_ml"] == pytest.approx(2.0)
    assert stats["intensity_mean"] == 128.0 and stats["intensity_std"] == 0.0
    no_spacing = mask_stats(mask, np.ones(mask.shape))
    assert "volume_ml" not in no_spacing and no_spacing["pixels_count"] == 1000


def test_mask_stats_empty_mask_has_undefined_intensity() -> None:
    stats = mask_stats(np.zeros((4, 4), dtype=bool), np.zeros((4, 4)))
    assert stats["pixels_count"] == 0
    assert math.isnan(stats["intensity_mean"]) and math.isnan(stats["intensity_std"])
