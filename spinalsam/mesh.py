"""Surface meshes of a label map as one coloured GLB, for gr.Model3D.

Marching cubes runs per label at the voxel spacing, so the mesh is in millimetres. The label is
padded by one empty voxel so every surface is closed, which also turns a one-slice label into a
thin slab instead of an error. Light Taubin smoothing removes the voxel staircase without
shrinking the object (plain Laplacian smoothing would); `step` > 1 coarsens marching cubes to
keep the file small for big volumes. trimesh is imported on the first mesh, not at start-up: most
sessions never ask for 3-D.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from skimage import measure

if TYPE_CHECKING:
    import trimesh

__all__ = ["MeshError", "labels_to_mesh"]

# Volume axes (z, y, x) in LPS millimetres → glTF axes (x right, y up, z towards the viewer):
# x = patient left, y = superior, z = anterior (−posterior). A proper rotation (det = +1).
_LPS_ZYX_TO_GLTF = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]).T


class MeshError(ValueError):
    """A label map that cannot be turned into a mesh; the message is shown as is."""


def _label_mesh(
    mask: np.ndarray, spacing_zyx: Sequence[float], color: tuple[int, int, int], step: int
) -> trimesh.Trimesh:
    import trimesh

    # Only the label's bounding box (one empty voxel around it) goes to marching cubes: a full
    # 512 × 512 × 300 volume per label would be slow for a small vertebra.
    box = ndi.find_objects(mask.astype(np.uint8))[0]
    padded = np.pad(mask[box], 1).astype(np.float32)
    verts, faces, _normals, _values = measure.marching_cubes(
        padded, level=0.5, spacing=tuple(float(s) for s in spacing_zyx), step_size=step
    )
    corner = np.array([sl.start - 1 for sl in box], dtype=float)  # the pad's voxel, in the volume
    verts += corner * np.asarray(spacing_zyx, dtype=float)
    mesh = trimesh.Trimesh(vertices=verts @ _LPS_ZYX_TO_GLTF, faces=faces, process=True)
    trimesh.smoothing.filter_taubin(mesh, iterations=10)
    material = trimesh.visual.material.PBRMaterial(
        baseColorFactor=[*color, 255], metallicFactor=0.0, roughnessFactor=0.8
    )
    mesh.visual = trimesh.visual.TextureVisuals(material=material)
    return mesh


def labels_to_mesh(
    labels: np.ndarray,
    spacing_zyx: Sequence[float] | None,
    label_colors: Mapping[int, tuple[int, int, int]],
    path: str | Path,
    *,
    step: int = 1,
) -> Path:
    """Write the labels named in `label_colors` as one GLB scene (one node per label).

    Labels without voxels are skipped; an error is raised only when nothing is left. Without
    spacing the mesh is in voxel units.
    """
    import trimesh

    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise MeshError("a 3-D mesh needs a volume, not a single 2-D image")
    spacing = (1.0, 1.0, 1.0) if spacing_zyx is None else tuple(spacing_zyx)
    scene = trimesh.Scene()
    for label_id, color in label_colors.items():
        mask = labels == label_id
        if mask.any():
            scene.add_geometry(
                _label_mesh(mask, spacing, color, step), geom_name=f"label_{label_id}"
            )
    if not scene.geometry:
        raise MeshError("there is no segmented label to show in 3-D yet")
    path = Path(path)
    path.write_bytes(scene.export(file_type="glb"))
    return path
