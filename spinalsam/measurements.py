"""Per-vertebra volume and attenuation, with an opportunistic osteoporosis screening hint.

Trabecular core (the region whose attenuation is clinically meaningful): on every axial slice of
the label, keep the pixels at least `core_margin_mm` inside the mask (an in-plane erosion by a
physical distance, via the Euclidean distance transform), then keep the largest connected piece.
The erosion removes the cortical shell, and because pedicles, laminae and processes are thin
(< 2 × margin) they vanish while the vertebral body survives, so the largest piece is the body.
Slices closer than the margin to the label's top or bottom slice are dropped too (endplates),
unless the label is too thin in Z for that (a single slice).
This is a heuristic: on a label that holds only the body it is a plain erosion, and when a thick
posterior element survives the erosion on a slice where the body is small it may be chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from spinalsam.metrics import mask_stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OSTEOPOROSIS_NOTE",
    "OSTEOPOROSIS_THRESHOLD_HU",
    "LabelMeasurement",
    "MeasurementError",
    "format_measurements",
    "hu_histogram_figure",
    "measure_labels",
    "trabecular_core",
]

OSTEOPOROSIS_THRESHOLD_HU = 110.0
OSTEOPOROSIS_NOTE = (
    "Screening hint, not a diagnosis: an L1 trabecular attenuation ≤ 110 HU had about 90 % "
    "specificity for osteoporosis on routine CT (Pickhardt PJ et al., Ann Intern Med "
    "2013;158:588-595). Intravenous contrast raises trabecular HU, scanners and kVp differ, and "
    "an automatic region of interest can be off; confirm with DXA or a clinician."
)
DEFAULT_CORE_MARGIN_MM = 4.0


class MeasurementError(ValueError):
    """Measurements that cannot be made on the given data; the message is shown as is."""


@dataclass(frozen=True)
class LabelMeasurement:
    """Size and attenuation of one label; HU fields are intensities when `is_hu` is False."""

    label_id: int
    name: str
    voxels: int
    volume_ml: float | None  # None without spacing
    mean: float
    std: float
    core_voxels: int  # 0 when no core could be found (label thinner than 2 × margin)
    core_mean: float | None
    core_std: float | None
    is_hu: bool

    @property
    def possible_osteoporosis(self) -> bool:
        """The Pickhardt L1 screening rule; only for L1 in Hounsfield units with a core."""
        return (
            self.is_hu
            and self.name == "L1"
            and self.core_mean is not None
            and self.core_mean <= OSTEOPOROSIS_THRESHOLD_HU
        )


def trabecular_core(
    mask: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float = DEFAULT_CORE_MARGIN_MM
) -> np.ndarray:
    """The eroded central part of a vertebra mask (Z, Y, X) as described in the module doc."""
    mask = np.asarray(mask, dtype=bool)
    core = np.zeros_like(mask)
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    if slices.size == 0:
        return core
    dz, dy, dx = (float(s) for s in spacing_zyx)
    trim = int(np.ceil(margin_mm / dz))
    if slices[-1] - slices[0] + 1 <= 2 * trim:
        trim = 0  # too few slices to lose the endplates (e.g. a single 2-D slice): keep all
    for z in range(slices[0] + trim, slices[-1] - trim + 1):
        inner = ndi.distance_transform_edt(mask[z], sampling=(dy, dx)) > margin_mm
        pieces, count = ndi.label(inner)
        if count:
            sizes = np.bincount(pieces.ravel())[1:]
            core[z] = pieces == 1 + int(np.argmax(sizes))
    return core


def measure_labels(
    volume: np.ndarray,
    labels: np.ndarray,
    names: Mapping[int, str],
    *,
    spacing_xyz: Sequence[float] | None,
    is_hu: bool,
    core_margin_mm: float = DEFAULT_CORE_MARGIN_MM,
) -> list[LabelMeasurement]:
    """Measure every label in `names` that has voxels; `spacing_xyz` as CTImage stores it.

    Without spacing the volume is reported as a voxel count only and no core is computed (a
    physical margin needs millimetres).
    """
    if volume.shape != labels.shape:
        raise MeasurementError(f"labels {labels.shape} do not match the image {volume.shape}")
    spacing_zyx = None if spacing_xyz is None else tuple(reversed(tuple(spacing_xyz)))
    results = []
    for label_id, name in names.items():
        mask = labels == label_id
        if not mask.any():
            continue
        whole = mask_stats(mask, volume, spacing_zyx, is_hu)
        core = np.zeros_like(mask)
        if spacing_zyx is not None:
            core = trabecular_core(mask, spacing_zyx, core_margin_mm)
        core_stats = mask_stats(core, volume, spacing_zyx, is_hu) if core.any() else None
        prefix = "hu" if is_hu else "intensity"
        results.append(
            LabelMeasurement(
                label_id=label_id,
                name=name,
                voxels=int(whole["pixels_count"]),
                volume_ml=whole.get("volume_ml"),
                mean=whole[f"{prefix}_mean"],
                std=whole[f"{prefix}_std"],
                core_voxels=int(core.sum()),
                core_mean=core_stats[f"{prefix}_mean"] if core_stats else None,
                core_std=core_stats[f"{prefix}_std"] if core_stats else None,
                is_hu=is_hu,
            )
        )
    return results


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_measurements(measurements: Sequence[LabelMeasurement]) -> str:
    """A markdown table for the UI, followed by the screening note when it applies."""
    if not measurements:
        return "No labelled voxels to measure yet."
    unit = "HU" if measurements[0].is_hu else "intensity"
    lines = [
        f"| label | voxels | volume (mL) | mean ± SD ({unit}) | core mean ± SD ({unit}) |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in measurements:
        core = "–" if m.core_mean is None else f"{m.core_mean:.0f} ± {_number(m.core_std, 0)}"
        flag = " ⚠" if m.possible_osteoporosis else ""
        lines.append(
            f"| {m.name}{flag} | {m.voxels} | {_number(m.volume_ml, 1)} | "
            f"{m.mean:.0f} ± {m.std:.0f} | {core} |"
        )
    text = "\n".join(lines)
    if any(m.possible_osteoporosis for m in measurements):
        text += f"\n\n⚠ L1 core ≤ {OSTEOPOROSIS_THRESHOLD_HU:.0f} HU: possible osteoporosis. "
        text += OSTEOPOROSIS_NOTE
    elif any(m.is_hu and m.name == "L1" and m.core_mean is not None for m in measurements):
        text += f"\n\nL1 core above {OSTEOPOROSIS_THRESHOLD_HU:.0f} HU. {OSTEOPOROSIS_NOTE}"
    return text


def hu_histogram_figure(
    volume: np.ndarray,
    labels: np.ndarray,
    label_ids: Sequence[int],
    names: Mapping[int, str] | None = None,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
) -> Figure:
    """Overlaid value histograms of the chosen labels (for gr.Plot).

    Uses matplotlib's object API (no pyplot), so figures are not kept in a global registry
    shared between users and need no GUI backend. Imported here, on the first histogram, because
    matplotlib adds about half a second to every start-up and most sessions never plot.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axes = figure.add_subplot()
    plotted = False
    for label_id in label_ids:
        values = volume[labels == label_id]
        if values.size == 0:
            continue
        rgb = (colors or {}).get(label_id)
        color = None if rgb is None else tuple(c / 255 for c in rgb)
        label = names.get(label_id, str(label_id)) if names else str(label_id)
        axes.hist(values, bins=60, histtype="step", linewidth=1.5, color=color, label=label)
        plotted = True
    if not plotted:
        raise MeasurementError("the chosen labels have no voxels to plot")
    axes.set_xlabel("value (HU when the image is CT)")
    axes.set_ylabel("voxels")
    axes.legend()
    return figure
