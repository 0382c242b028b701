"""Evaluate 3-D propagation: one box per vertebra on one slice, then propagation, vs. a label map.

    python -m spinalsam.evaluate3d --image VOL --labels LABELS --label-ids 30,31,32 \
        [--backend NAME] [--plane axial] [--start-margin-mm 3.5] [--json]
    python -m spinalsam.evaluate3d --source tptbox [--backend NAME] ...   (a registered source)

The volume is reoriented to LPS (SimpleITK DICOMOrient, in io.load_ct) whatever its storage
order, so a sagittally stored cut-out propagates through anatomical axial slices, and the label
map is overlaid by physical position (any grid, any orientation; spinalsam.evaluation.volume).
`--image` may be a DICOM series' folder.

Per label the start slice is the one where the ground truth has its largest area (the vertebra's
"middle": with thick slices or a partial first/last vertebra, the geometric middle can be a
disc-adjacent slice with a tiny cross-section). The start prompt is the tight bounding box of the
ground truth on that slice grown by a margin, as in the 2-D protocol (shared/data/README.md),
whose 5 px on ~0.7 mm slices is kept as 3.5 mm (1 px at 3 mm; 5 px when there is no spacing);
that slice is segmented, then the mask is propagated both ways with the app's default rules.
The score is the 3-D Dice (and HD95 / MSD in mm) of all propagated slices against the label.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np

from spinalsam import metrics
from spinalsam.evaluate import parse_ids
from spinalsam.evaluation.backends import BACKEND_SPEC_HELP, create_evaluated_segmenter
from spinalsam.evaluation.protocol import (
    BOX_MARGIN_PX,
    MARGIN_MM,
    Margin,
    grown_box,
    margin_px,
)
from spinalsam.evaluation.sources import (
    CACHE_ROOT,
    DATA_ROOT,
    SOURCES,
    load_source_volumes,
    source_names,
)
from spinalsam.evaluation.volume import LabelledVolume, load_labelled_volume
from spinalsam.io import CTImage, CTLoadError
from spinalsam.planes import Plane, axis_spacing, n_slices, slice_image, take_slice
from spinalsam.propagation import PropagationRules, propagate
from spinalsam.segmenters.base import Prompt, Segmenter, SegmenterError

# The 2-D protocol's margin, kept physical (spinalsam.evaluation.protocol).
START_MARGIN_MM = MARGIN_MM

__all__ = ["evaluate_label", "evaluate_volume", "main", "start_box"]


def start_box(gt_slice: np.ndarray, margin: Margin = BOX_MARGIN_PX) -> np.ndarray:
    """Tight bounding box (x0, y0, x1, y1) of the ground truth grown by `margin`, clipped."""
    return grown_box(gt_slice, margin)


def evaluate_label(
    ct: CTImage,
    gt: np.ndarray,
    segmenter: Segmenter,
    plane: Plane = "axial",
    rules: PropagationRules | None = None,
    margin_mm: float = START_MARGIN_MM,
) -> dict[str, Any]:
    """Box on the largest ground-truth slice, segment it, propagate, and score in 3-D.

    `rules` default to the ones that suit the segmenter (`propagation.rules_for`), i.e. what
    the app does. `margin_mm` is how
    loose the start box is; a user's box is never exactly the protocol's, so the CLI can vary it
    to show how much the result depends on the start.
    """
    started = time.perf_counter()
    areas = [int(take_slice(gt, plane, i).sum()) for i in range(n_slices(gt.shape, plane))]
    start = int(np.argmax(areas))
    image = slice_image(ct.volume, ct.is_hu, ct.spacing, plane, start)
    spacing_2d = image.spacing
    gt_slice = take_slice(gt, plane, start)
    segmenter.set_image(image)
    box = start_box(gt_slice, margin_px(spacing_2d, margin_mm))
    start_mask = np.asarray(segmenter.predict(Prompt(box=box)), dtype=bool)
    row: dict[str, Any] = {
        "start_slice": start,
        "start_box": box.tolist(),
        "start_dice": metrics.dice(start_mask, gt_slice),
    }
    if start_mask.any():
        result = propagate(
            ct.volume,
            ct.is_hu,
            ct.spacing,
            plane,
            start,
            start_mask,
            segmenter,
            rules=rules,
        )
        predicted = result.to_volume(gt.shape, plane)
        row.update(stopped_up=result.stopped_up, stopped_down=result.stopped_down)
    else:
        predicted = np.zeros_like(gt)
        row.update(stopped_up="empty start mask", stopped_down="empty start mask")
    spacing = axis_spacing(ct.spacing)
    near = _around(predicted | gt)  # surface distances need only the objects' surroundings
    row.update(
        dice=metrics.dice(predicted, gt),
        hd95_mm=metrics.hd95(predicted[near], gt[near], spacing),
        msd_mm=metrics.msd(predicted[near], gt[near], spacing),
        slices_propagated=max(0, int(predicted.any(axis=_in_plane_axes(plane)).sum()) - 1),
        slices_ground_truth=int(np.count_nonzero(areas)),
        seconds=time.perf_counter() - started,
    )
    return row


def _around(mask: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of `mask` grown by one voxel: surface distances computed inside it are
    those of the whole volume (every surface voxel is inside), at a fraction of the cost."""
    if not mask.any():
        return tuple(slice(None) for _ in mask.shape)
    bounds = [
        np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))
        for ax in range(mask.ndim)
    ]
    return tuple(slice(max(0, b[0] - 1), b[-1] + 2) for b in bounds)


def _in_plane_axes(plane: Plane) -> tuple[int, int]:
    return {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}[plane]


def evaluate_volume(
    volume: LabelledVolume,
    label_ids: Sequence[int],
    segmenter: Segmenter,
    plane: Plane = "axial",
    margin_mm: float = START_MARGIN_MM,
) -> dict[str, Any]:
    """`evaluate_label` for every id present in the volume: rows and their mean 3-D Dice."""
    started = time.perf_counter()
    rows = [
        {
            "label": i,
            **evaluate_label(volume.ct, volume.labels == i, segmenter, plane, None, margin_mm),
        }
        for i in label_ids
        if (volume.labels == i).any()
    ]
    return {
        "plane": plane,
        "start_margin_mm": margin_mm,
        "labels": rows,
        "mean_dice": float(np.mean([r["dice"] for r in rows])) if rows else None,
        "total_seconds": time.perf_counter() - started,
    }


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m spinalsam.evaluate3d",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--image", type=Path, help="CT volume (NIfTI, DICOM file or folder)")
    parser.add_argument("--labels", type=Path, help="ground-truth label map")
    parser.add_argument("--label-ids", help="comma-separated, e.g. 30,31,32")
    parser.add_argument("--source", choices=source_names(), help="a registered source instead")
    parser.add_argument("--data", type=Path, default=DATA_ROOT, help="root of the shared data")
    parser.add_argument("--cache", type=Path, default=CACHE_ROOT, help="root of fetched data")
    parser.add_argument("--backend", default="default", help=BACKEND_SPEC_HELP)
    parser.add_argument("--plane", default="axial", choices=get_args(Plane))
    parser.add_argument(
        "--start-margin-mm",
        type=float,
        default=START_MARGIN_MM,
        help=f"how far the start box reaches beyond the label (default {START_MARGIN_MM} mm)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser, parser.parse_args(argv)


def _cases(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> list[tuple[str, LabelledVolume, list[int]]]:
    """(name, volume, label ids) per volume to evaluate: the given files, or a source's."""
    if args.source is not None:
        if args.image or args.labels or args.label_ids:
            parser.error("give either --source or --image/--labels/--label-ids, not both")
        source = next(s for s in SOURCES if s.name == args.source)
        try:
            return [
                (case.name, volume, list(ids))
                for case, volume, ids in load_source_volumes(source, args.data, args.cache)
            ]
        except (CTLoadError, FileNotFoundError) as exc:
            parser.error(f"source {source.name}: {exc}")
    if args.image is None or args.labels is None or args.label_ids is None:
        parser.error("give --image, --labels and --label-ids, or --source")
    try:
        label_ids = parse_ids(args.label_ids)
    except ValueError:
        parser.error(f"--label-ids must be integers separated by commas, got {args.label_ids!r}")
    try:
        volume = load_labelled_volume(args.image, args.labels)
    except CTLoadError as exc:
        parser.error(str(exc))
    missing = [i for i in label_ids if not (volume.labels == i).any()]
    if missing:
        parser.error(f"label ids {missing} are not in {args.labels}")
    return [(args.image.name, volume, label_ids)]


def main(argv: Sequence[str] | None = None) -> int:
    parser, args = _parse_args(argv)
    if args.start_margin_mm < 0:
        parser.error("--start-margin-mm must not be negative")
    cases = _cases(parser, args)
    try:
        segmenter = create_evaluated_segmenter(args.backend)
    except SegmenterError as exc:
        parser.error(str(exc))
    reports = []
    for name, volume, ids in cases:
        report = evaluate_volume(volume, ids, segmenter, args.plane, args.start_margin_mm)
        reports.append({"image": name, "backend": args.backend, **report})
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"volumes": reports}))
        return 0
    for report in reports:
        print(f"{report['image']} ({report['backend']}, {report['plane']}):")
        for r in report["labels"]:
            print(
                f"  label {r['label']}: Dice {r['dice']:.3f}  HD95 {r['hd95_mm']:.1f} mm  "
                f"MSD {r['msd_mm']:.1f} mm  {r['slices_propagated']} slices  {r['seconds']:.2f} s"
            )
        print(f"  mean Dice {report['mean_dice']:.3f}, total {report['total_seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
