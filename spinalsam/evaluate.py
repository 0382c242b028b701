"""Evaluate segmentation backends on 2-D slices with ground truth: a folder, or a labelled volume.

    python -m spinalsam.evaluate --images DIR --masks DIR --prompt {box,point,box+point} \
        [--backend NAME|learned:PATH[,...]] [--jitter] [--flip] [--seed 0] [--csv FILE] [--json]
    python -m spinalsam.evaluate --volume CT --labels SEG --label-ids 30,31,32 \
        --prompt box [--planes axial,sagittal,coronal] [--slice-step-mm 5] [--max-slices N] ...

Prompts follow the protocol of shared/data/README.md (spinalsam.evaluation.protocol): per
ground-truth object the box is its tight bounding box grown by a margin and the point its
interior pixel farthest from the boundary. Folders (8-bit renders, no spacing) keep the published
5 px margin and 50 px minimum; volumes use 3.5 mm and 100 mm², with labels overlaid on the CT by
physical position and slices taken in anatomical planes whatever the storage order. Each object
is segmented separately; per slice the union is scored against the mask.
`--jitter` adds jittered prompts, `--flip` mirrored slices (spinalsam.evaluation.robustness).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinalsam import metrics
from spinalsam.evaluation.backends import (
    BACKEND_SPEC_HELP,
    check_backend_spec,
    create_evaluated_segmenter,
)
from spinalsam.evaluation.folders import (
    EvaluationError,
    folder_slice_cases,
    load_mask,
    load_slice,
    pair_files,
)
from spinalsam.evaluation.protocol import (
    BOX_MARGIN_PX,
    MARGIN_MM,
    MIN_COMPONENT_PX,
    PROMPT_KINDS,
    margin_px,
    min_area_px,
    prompt_for,
    targets_from_mask,
)
from spinalsam.evaluation.runner import Modes, score_case, summarize
from spinalsam.evaluation.volume import (
    SLICE_STEP_MM,
    SliceCase,
    load_labelled_volume,
    sample_slices,
    volume_slice_cases,
)
from spinalsam.io import CTLoadError
from spinalsam.planes import PLANES, Plane
from spinalsam.segmenters.base import Prompt, Segmenter, SegmenterError, SliceImage

__all__ = [
    "BOX_MARGIN_PX",
    "PROMPT_KINDS",
    "EvaluationError",
    "derive_prompts",
    "evaluate_backend",
    "evaluate_case",
    "load_mask",
    "load_slice",
    "main",
    "markdown_table",
    "pair_files",
    "parse_ids",
]

SUMMARY_KEYS = ("per_vertebra_dice", "per_slice_dice", "iou", "hd95", "msd")
ROBUSTNESS_KEYS = ("jitter", "jitter_drop", "flip", "flip_change")


def derive_prompts(mask: np.ndarray, kind: str) -> Iterator[tuple[np.ndarray, Prompt]]:
    """(component mask, prompt) per ground-truth component of ≥ 50 px, as the protocol says."""
    if kind not in PROMPT_KINDS:
        raise EvaluationError(f"unknown prompt kind {kind!r}; choose one of {PROMPT_KINDS}")
    for target in targets_from_mask(mask, BOX_MARGIN_PX, MIN_COMPONENT_PX):
        yield target.mask, prompt_for(kind, target.box, target.point)


@dataclass(frozen=True)
class CaseResult:
    """Scores of one slice for one backend."""

    image: str
    n_vertebrae: int
    vertebra_dice: tuple[float, ...]
    dice: float
    iou: float
    hd95: float
    msd: float
    ms: float

    def as_dict(self) -> dict[str, object]:
        return {
            "image": self.image,
            "n_vertebrae": self.n_vertebrae,
            "per_vertebra_dice": [_finite_or_none(d) for d in self.vertebra_dice],
            "dice": _finite_or_none(self.dice),
            "iou": _finite_or_none(self.iou),
            "hd95": _finite_or_none(self.hd95),
            "msd": _finite_or_none(self.msd),
            "ms": round(self.ms, 2),
        }


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined distances (one mask empty) become null."""
    return None if math.isnan(value) else round(float(value), 4)


def _case_result(case: SliceCase, records: list[dict], union: np.ndarray, ms: float) -> CaseResult:
    vertebra_dice = tuple(float(r["dice"]) for r in records)
    # Metric spacing is in array axis order (y, x); SliceImage stores (x, y).
    spacing = case.image.spacing[::-1] if case.image.spacing else None
    return CaseResult(
        image=case.name,
        n_vertebrae=len(vertebra_dice),
        vertebra_dice=vertebra_dice,
        dice=metrics.dice(union, case.truth),
        iou=metrics.iou(union, case.truth),
        hd95=metrics.hd95(union, case.truth, spacing),
        msd=metrics.msd(union, case.truth, spacing),
        ms=ms,
    )


def _scored(
    segmenter: Segmenter, case: SliceCase, kind: str, modes: Modes
) -> tuple[CaseResult, list[dict[str, object]]]:
    score = score_case(segmenter, case, modes)
    clean = [r for r in score.records if r["mode"] == "clean"]
    return _case_result(case, clean, score.unions[kind], score.ms), score.records


def evaluate_case(
    segmenter: Segmenter, image: SliceImage, gt: np.ndarray, kind: str, name: str
) -> CaseResult:
    """Segment every component of one slice's binary mask, timing set_image plus predictions."""
    targets = targets_from_mask(gt, margin_px(image.spacing), min_area_px(image.spacing))
    case = SliceCase(name, image, tuple(targets), np.asarray(gt, dtype=bool))
    return _scored(segmenter, case, kind, Modes(kinds=(kind,)))[0]


def _summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean/std over defined values; `undefined` counts the nan ones (one mask empty)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[~np.isnan(arr)]
    if finite.size == 0:
        return {"mean": None, "std": None, "undefined": int(arr.size)}
    return {
        "mean": round(float(finite.mean()), 4),
        "std": round(float(finite.std()), 4),
        "undefined": int(arr.size - finite.size),
    }


def evaluate_backend(
    backend: str | Segmenter,
    cases: Iterable[SliceCase],
    kind: str,
    modes: Modes | None = None,
    label: str = "",
) -> dict[str, object]:
    """The summary object the CLI prints for one backend (and one plane, for volumes).

    `cases` may be a generator: slices are loaded, scored and dropped one at a time.
    """
    if kind not in PROMPT_KINDS:
        raise EvaluationError(f"unknown prompt kind {kind!r}; choose one of {PROMPT_KINDS}")
    segmenter = create_evaluated_segmenter(backend) if isinstance(backend, str) else backend
    name = backend if isinstance(backend, str) else segmenter.info.name
    modes = (
        Modes(kinds=(kind,))
        if modes is None
        else Modes((kind,), modes.jitter, modes.flip, modes.seed)
    )
    results, records = [], []
    for i, case in enumerate(cases, 1):
        result, case_records = _scored(segmenter, case, kind, modes)
        results.append(result)
        records += case_records
        print(f"[{label or name}] {i} {case.name}: dice {result.dice:.3f}", file=sys.stderr)
    if not results:
        raise EvaluationError("no slice holds an object to score")
    per_vertebra = [d for c in results for d in c.vertebra_dice]
    out: dict[str, object] = {
        "backend": name,
        "prompt": kind,
        "per_vertebra_dice": _summary(per_vertebra),
        "per_slice_dice": _summary([c.dice for c in results]),
        "iou": _summary([c.iou for c in results]),
        "hd95": _summary([c.hd95 for c in results]),
        "msd": _summary([c.msd for c in results]),
        "ms_per_image": round(float(np.mean([c.ms for c in results])), 2),
        "n": len(results),
        "n_vertebrae": len(per_vertebra),
        "per_case": [c.as_dict() for c in results],
    }
    if modes.jitter or modes.flip:
        out["robustness"] = summarize(records, kind)
    return out


def _column(result: dict[str, object]) -> str:
    return f"{result['backend']} {result['plane']}" if "plane" in result else str(result["backend"])


def _cell(value: object) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def markdown_table(results: Sequence[dict[str, object]]) -> str:
    """Backends (and planes) side by side: one row per metric, mean ± std."""
    header = "| metric | " + " | ".join(_column(r) for r in results) + " |"
    rule = "|---|" + "---|" * len(results)
    rows = [header, rule]
    for key in SUMMARY_KEYS:
        cells = []
        for r in results:
            s = r[key]
            assert isinstance(s, dict)
            cells.append("n/a" if s["mean"] is None else f"{s['mean']:.4f} ± {s['std']:.4f}")
        rows.append(f"| {key} | " + " | ".join(cells) + " |")
    if all("robustness" in r for r in results):
        for key in ROBUSTNESS_KEYS:
            cells = [_cell(r["robustness"][key]) for r in results]  # type: ignore[index]
            rows.append(f"| {key} | " + " | ".join(cells) + " |")
    rows.append("| ms_per_image | " + " | ".join(f"{r['ms_per_image']}" for r in results) + " |")
    rows.append(
        "| n / vertebrae | " + " | ".join(f"{r['n']} / {r['n_vertebrae']}" for r in results) + " |"
    )
    return "\n".join(rows)


def write_csv(path: Path, results: Sequence[dict[str, object]]) -> None:
    """One row per image per backend, for spreadsheets and plots."""
    fields = ["backend", "prompt", "plane", "image", "n_vertebrae", "per_vertebra_dice_mean"]
    fields += ["dice", "iou", "hd95", "msd", "ms"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results:
            for case in r["per_case"]:  # type: ignore[attr-defined]
                vd = [d for d in case["per_vertebra_dice"] if d is not None]
                writer.writerow(
                    {
                        "backend": r["backend"],
                        "prompt": r["prompt"],
                        "plane": r.get("plane", ""),
                        "per_vertebra_dice_mean": round(float(np.mean(vd)), 4) if vd else "",
                        **{k: case[k] for k in fields if k in case},
                    }
                )


def parse_ids(text: str) -> list[int]:
    """`30,31,32` → [30, 31, 32]; raises ValueError on anything else."""
    ids = [int(t) for t in text.split(",") if t.strip()]
    if not ids:
        raise ValueError("no label id given")
    return ids


def _parse_planes(text: str) -> list[Plane]:
    planes = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in planes if p not in PLANES]
    if not planes or bad:
        raise ValueError(f"unknown plane {bad or text!r}; choose from {', '.join(PLANES)}")
    return planes  # type: ignore[return-value]


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m spinalsam.evaluate",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument("--images", type=Path, help="folder of slices")
    parser.add_argument("--masks", type=Path, help="masks with the same names")
    parser.add_argument("--volume", type=Path, help="CT volume: a file or a DICOM series folder")
    parser.add_argument("--labels", type=Path, help="label map of --volume (any grid/orientation)")
    parser.add_argument("--label-ids", help="vertebra label ids to score, e.g. 30,31,32")
    parser.add_argument("--planes", default="axial", help="e.g. axial,sagittal,coronal")
    parser.add_argument(
        "--slice-step-mm",
        type=float,
        default=SLICE_STEP_MM,
        help=f"score a slice every this many mm (default {SLICE_STEP_MM})",
    )
    parser.add_argument("--max-slices", type=int, help="at most this many slices per plane")
    parser.add_argument("--margin-mm", type=float, default=MARGIN_MM, help="box margin (volumes)")
    parser.add_argument("--prompt", choices=PROMPT_KINDS, required=True)
    parser.add_argument(
        "--backend", default="default", help=f"comma-separated backends, each {BACKEND_SPEC_HELP}"
    )
    parser.add_argument("--jitter", action="store_true", help="also score jittered prompts")
    parser.add_argument("--flip", action="store_true", help="also score mirrored slices")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter")
    parser.add_argument("--csv", type=Path, help="write one row per image per backend")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser, parser.parse_args(argv)


def _runs(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> list[tuple[Plane | None, Callable[[], Iterable[SliceCase]]]]:
    """(plane, slice factory) per evaluation: one for a folder (no plane), one per volume plane."""
    if (args.images is None) == (args.volume is None):
        parser.error("give either --images and --masks, or --volume, --labels and --label-ids")
    if args.images is not None:
        if args.masks is None:
            parser.error("--images needs --masks")
        pairs = pair_files(args.images, args.masks)
        return [(None, lambda: folder_slice_cases(pairs))]
    if args.labels is None or args.label_ids is None:
        parser.error("--volume needs --labels and --label-ids")
    try:
        ids = parse_ids(args.label_ids)
        planes = _parse_planes(args.planes)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        volume = load_labelled_volume(args.volume, args.labels)
    except CTLoadError as exc:
        raise EvaluationError(str(exc)) from exc
    missing = [i for i in ids if not (volume.labels == i).any()]
    if missing:
        parser.error(f"label ids {missing} are not in {args.labels} (where it overlaps the CT)")
    name = args.volume.name

    def cases(plane: Plane) -> Iterable[SliceCase]:
        indices = sample_slices(
            volume.labels, ids, plane, volume.ct.spacing, args.slice_step_mm, args.max_slices
        )
        return volume_slice_cases(volume, ids, plane, indices, name, args.margin_mm)

    return [(plane, (lambda p=plane: cases(p))) for plane in planes]


def main(argv: Sequence[str] | None = None) -> int:
    parser, args = _parse_args(argv)
    try:
        backends = [check_backend_spec(b) for b in args.backend.split(",") if b.strip()]
    except SegmenterError as exc:
        parser.error(str(exc))
    if not backends:
        parser.error(f"no backend given; each is {BACKEND_SPEC_HELP}")
    modes = Modes(kinds=(args.prompt,), jitter=args.jitter, flip=args.flip, seed=args.seed)
    results = []
    try:
        for plane, cases in _runs(parser, args):
            for backend in backends:
                result = evaluate_backend(backend, cases(), args.prompt, modes)
                if plane is not None:
                    result = {**result, "plane": plane}
                results.append(result)
    except EvaluationError as exc:
        parser.error(str(exc))
    if args.csv:
        write_csv(args.csv, results)
    if args.json:
        out = (
            results[0]
            if len(results) == 1
            else {"backends": results, "table": markdown_table(results)}
        )
        print(json.dumps(out))
    else:
        print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
