"""Volumes and attenuation on hand-made volumes whose true values are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from spinalsam.measurements import (
    MeasurementError,
    format_measurements,
    hu_histogram_figure,
    measure_labels,
    trabecular_core,
)

SPACING_XYZ = (0.5, 0.5, 2.0)  # mm; one voxel = 0.5 mm³


def _vertebra(core_hu: float) -> tuple[np.ndarray, np.ndarray]:
    """A 20-slice, 40×40 px (20×20 mm) 'body' with a 2 mm 700 HU shell and a thin 'process'.

    The process (4 px = 2 mm wide) is part of the label but must not reach the core.
    """
    volume = np.full((24, 80, 60), -50.0, dtype=np.float32)
    labels = np.zeros(volume.shape, dtype=np.uint16)
    labels[2:22, 10:50, 10:50] = 1
    volume[2:22, 10:50, 10:50] = 700.0
    volume[2:22, 14:46, 14:46] = core_hu
    labels[2:22, 50:75, 28:32] = 1  # posterior element, dense
    volume[2:22, 50:75, 28:32] = 600.0
    return volume, labels


def test_volume_whole_mean_and_core_are_exact() -> None:
    volume, labels = _vertebra(core_hu=100.0)
    (m,) = measure_labels(volume, labels, {1: "L1"}, spacing_xyz=SPACING_XYZ, is_hu=True)
    n_voxels = 20 * 40 * 40 + 20 * 25 * 4
    assert m.voxels == n_voxels
    assert m.volume_ml == pytest.approx(n_voxels * 0.5 / 1000)
    assert m.mean == pytest.approx(volume[labels == 1].mean(), rel=1e-6)
    # core: > 4 mm (8 px) inside each slice, 2 slices (4 mm) trimmed at each end
    assert m.core_mean == pytest.approx(100.0)
    assert m.core_std == pytest.approx(0.0)
    assert 16 * 24 * 24 <= m.core_voxels <= 1.05 * 16 * 24 * 24
    assert m.possible_osteoporosis


def test_core_excludes_thin_posterior_elements() -> None:
    _, labels = _vertebra(core_hu=100.0)
    core = trabecular_core(labels == 1, SPACING_XYZ[::-1], margin_mm=4.0)
    assert not core[:, 50:].any()
    assert not core[:4].any() and not core[20:].any()  # endplate slices trimmed


def test_screening_hint_only_for_low_l1_and_names_its_source() -> None:
    low, labels = _vertebra(core_hu=100.0)
    high, _ = _vertebra(core_hu=180.0)
    text = format_measurements(
        measure_labels(low, labels, {1: "L1"}, spacing_xyz=SPACING_XYZ, is_hu=True)
    )
    assert "possible osteoporosis" in text
    assert "Pickhardt" in text and "not a diagnosis" in text and "contrast" in text
    assert "| L1 ⚠ |" in text
    healthy = measure_labels(high, labels, {1: "L1"}, spacing_xyz=SPACING_XYZ, is_hu=True)
    assert not healthy[0].possible_osteoporosis
    assert "possible osteoporosis" not in format_measurements(healthy)
    other = measure_labels(low, labels, {1: "L2"}, spacing_xyz=SPACING_XYZ, is_hu=True)
    assert not other[0].possible_osteoporosis  # the rule is validated for L1 only


def test_without_spacing_or_hu_reports_counts_and_intensities() -> None:
    volume, labels = _vertebra(core_hu=100.0)
    (m,) = measure_labels(volume, labels, {1: "L1", 2: "L2"}, spacing_xyz=None, is_hu=False)
    assert m.volume_ml is None and m.core_mean is None and m.core_voxels == 0
    assert not m.possible_osteoporosis
    text = format_measurements([m])
    assert "intensity" in text and "| – |" in text
    assert format_measurements([]).startswith("No labelled voxels")


def test_shape_mismatch_is_a_clear_error() -> None:
    volume, labels = _vertebra(core_hu=100.0)
    with pytest.raises(MeasurementError, match="do not match"):
        measure_labels(volume[:5], labels, {1: "L1"}, spacing_xyz=SPACING_XYZ, is_hu=True)


def test_histogram_figure_has_one_curve_per_label() -> None:
    volume, labels = _vertebra(core_hu=100.0)
    labels[0, :5, :5] = 2
    figure = hu_histogram_figure(
        volume, labels, [1, 2], names={1: "L1", 2: "L2"}, colors={1: (255, 0, 0)}
    )
    assert isinstance(figure, Figure)
    (axes,) = figure.axes
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["L1", "L2"]
    assert axes.patches[0].get_edgecolor()[:3] == (1.0, 0.0, 0.0)
    with pytest.raises(MeasurementError, match="no voxels"):
        hu_histogram_figure(volume, labels, [7])
