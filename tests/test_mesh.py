"""GLB export of label surfaces: loads back with trimesh, in millimetres, one coloured node each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from spinalsam.mesh import MeshError, labels_to_mesh


def _ball_and_slab() -> np.ndarray:
    labels = np.zeros((20, 40, 40), dtype=np.uint16)
    zz, yy, xx = np.mgrid[:20, :40, :40]
    labels[((zz - 10) * 2) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 < 12**2] = 1  # 12 mm radius
    labels[3, 2:8, 2:8] = 2  # a one-slice label
    return labels


def test_glb_loads_back_with_one_coloured_mesh_per_label(tmp_path: Path) -> None:
    colors = {1: (230, 25, 75), 2: (60, 180, 75), 3: (0, 0, 255)}  # label 3 is empty: skipped
    path = labels_to_mesh(_ball_and_slab(), (2.0, 1.0, 1.0), colors, tmp_path / "spine.glb")
    scene = trimesh.load(path)
    assert set(scene.geometry) == {"label_1", "label_2"}
    ball, slab = scene.geometry["label_1"], scene.geometry["label_2"]
    assert len(ball.vertices) > 100 and ball.is_watertight and len(slab.vertices) > 0
    assert tuple(ball.visual.material.baseColorFactor[:3]) == colors[1]
    # superior (z = 10 slices × 2 mm) is glTF +y; the ball's radius is 12 mm in every axis
    assert ball.bounds.mean(axis=0) == pytest.approx([20.0, 20.0, -20.0], abs=0.5)
    assert ball.extents == pytest.approx([24.0, 24.0, 24.0], abs=2.0)


def test_nothing_to_mesh_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="no segmented label"):
        labels_to_mesh(np.zeros((4, 8, 8), np.uint16), None, {1: (1, 2, 3)}, tmp_path / "x.glb")
    with pytest.raises(MeshError, match="volume"):
        labels_to_mesh(np.ones((8, 8), np.uint16), None, {1: (1, 2, 3)}, tmp_path / "x.glb")
