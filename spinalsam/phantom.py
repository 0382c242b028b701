"""A synthetic lumbar-spine CT phantom in Hounsfield units.

Used as a built-in example volume (no data files ship with the project) and by tests that need
ground truth: each vertebra is a cortical shell around trabecular bone plus a posterior arch,
separated by discs, in soft tissue, with noise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_spine_phantom"]


def make_spine_phantom(
    shape: tuple[int, int, int] = (40, 128, 128),
    n_vertebrae: int = 3,
    seed: int = 0,
    noise_hu: float = 20.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (volume HU float32 (Z, Y, X), labels uint16 with vertebra k = label k)."""
    rng = np.random.default_rng(seed)
    z_n, y_n, x_n = shape
    zz, yy, xx = np.mgrid[0:z_n, 0:y_n, 0:x_n].astype(np.float32)
    volume = np.full(shape, -900.0, dtype=np.float32)  # air
    body = ((yy - y_n / 2) / (0.42 * y_n)) ** 2 + ((xx - x_n / 2) / (0.45 * x_n)) ** 2 <= 1
    volume[body] = 40.0  # soft tissue
    labels = np.zeros(shape, dtype=np.uint16)
    height = z_n / n_vertebrae
    for k in range(n_vertebrae):
        z0, z1 = k * height + 0.12 * height, (k + 1) * height - 0.12 * height
        in_z = (zz >= z0) & (zz < z1)
        cy, cx = 0.45 * y_n, x_n / 2
        ry, rx = 0.16 * y_n * (1 + 0.05 * k), 0.18 * x_n * (1 + 0.05 * k)
        r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        vertebral_body = in_z & (r <= 1)
        arch = in_z & (np.abs(xx - cx) <= 0.05 * x_n) & (yy > cy + ry * 0.9) & (yy < cy + ry * 1.9)
        obj = vertebral_body | arch
        labels[obj] = k + 1
        volume[obj] = 250.0  # trabecular bone
        volume[in_z & (r > 0.7) & (r <= 1)] = 700.0  # cortical shell
        volume[arch] = 600.0
    volume += rng.normal(0.0, noise_hu, size=shape).astype(np.float32)
    return volume, labels
