"""Evaluate segmentation backends on a folder of slices with ground-truth masks.

    python -m spinalsam.evaluate --images DIR --masks DIR --prompt {box,point,box+point} \
        [--backend NAME[,NAME...]] [--csv FILE] [--json]

Prompts follow the protocol of shared/data/README.md, so numbers compare with the paper's:
per ground-truth connected component of at least 50 px, the box is the tight bounding box grown
by 5 px per side and the point is the component's interior pixel farthest from its boundary.
Each component is segmented separately; per slice the union is scored against the mask.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from spinalsam import metrics
from spinalsam.io import CTLoadError, load_ct
from spinalsam.planes import slice_image
from spinalsam.segmenters.base import Prompt, Segmenter, SliceImage
from spinalsam.segmenters.registry import BACKENDS, create_segmenter

__all__ = [
    "PROMPT_KINDS",
    "derive_prompts",
    "evaluate_backend",
    "load_mask",
    "load_slice",
    "main",
    "markdown_table",
    "pair_files",
]

PROMPT_KINDS = ("box", "point", "box+point")
MIN_COMPONENT_PX = 50  # components smaller than this are annotation specks, not vertebrae
BOX_MARGIN_PX = 5
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".nii", ".gz"}
SUMMARY_KEYS = ("per_vertebra_dice", "per_slice_dice", "iou", "hd95", "msd")


class EvaluationError(ValueError):
    """Bad command-line input (missing folder, nothing to pair); printed as is, exit code 2."""


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else path.stem


def _image_files(folder: Path) -> dict[str, Path]:
    return {
        _stem(p): p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


def pair_files(images: Path, masks: Path) -> list[tuple[Path, Path]]:
    """Image/mask pairs matched by file name (without extension), in name order."""
    for label, folder in (("images", images), ("masks", masks)):
        if not folder.is_dir():
            raise EvaluationError(f"{label} folder not found: {folder}")
    imgs, msks = _image_files(images), _image_files(masks)
    pairs = [(imgs[k], msks[k]) for k in sorted(imgs.keys() & msks.keys())]
    if not pairs:
        raise EvaluationError(f"no image in {images} has a mask of the same name in {masks}")
    return pairs


def load_slice(path: Path) -> SliceImage:
    """One evaluation slice exactly as the app shows it; a volume contributes its middle slice."""
    try:
        ct = load_ct([path])
    except CTLoadError as exc:
        raise EvaluationError(str(exc)) from exc
    return slice_image(ct.volume, ct.is_hu, ct.spacing, "axial", ct.volume.shape[0] // 2)


def load_mask(path: Path) -> np.ndarray:
    """Ground truth as bool: any non-zero grey level is foreground."""
    return np.asarray(Image.open(path).convert("L")) > 0


def _farthest_interior_point(component: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel deepest inside the component; the image edge counts as boundary."""
    depth = ndi.distance_transform_edt(np.pad(component, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def _component_box(component: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(component)
    h, w = component.shape
    return np.array(
        [
            max(int(xs.min()) - BOX_MARGIN_PX, 0),
            max(int(ys.min()) - BOX_MARGIN_PX, 0),
            min(int(xs.max()) + BOX_MARGIN_PX, w - 1),
            min(int(ys.max()) + BOX_MARGIN_PX, h - 1),
        ]
    )


def derive_prompts(mask: np.ndarray, kind: str) -> Iterator[tuple[np.ndarray, Prompt]]:
    """(component mask, prompt) per ground-truth component of ≥ 50 px, as the protocol says."""
    if kind not in PROMPT_KINDS:
        raise EvaluationError(f"unknown prompt kind {kind!r}; choose one of {PROMPT_KINDS}")
    labels, n = ndi.label(mask)
    for index in range(1, n + 1):
        component = labels == index
        if component.sum() < MIN_COMPONENT_PX:
            continue
        box = _component_box(component) if "box" in kind else None
        if "point" in kind:
            points = np.array([_farthest_interior_point(component)])
            prompt = Prompt(points=points, labels=np.ones(1, dtype=np.int64), box=box)
        else:
            prompt = Prompt(box=box)
        yield component, prompt


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


def evaluate_case(
    segmenter: Segmenter, image: SliceImage, gt: np.ndarray, kind: str, name: str
) -> CaseResult:
    """Segment every component of one slice, timing set_image plus all predictions."""
    start = time.perf_counter()
    segmenter.set_image(image)
    union = np.zeros(gt.shape, dtype=bool)
    vertebra_dice = []
    for component, prompt in derive_prompts(gt, kind):
        pred = np.asarray(segmenter.predict(prompt), dtype=bool)
        vertebra_dice.append(metrics.dice(pred, component))
        union |= pred
    ms = (time.perf_counter() - start) * 1000.0
    # Metric spacing is in array axis order (y, x); SliceImage stores (x, y).
    spacing = image.spacing[::-1] if image.spacing else None
    return CaseResult(
        image=name,
        n_vertebrae=len(vertebra_dice),
        vertebra_dice=tuple(vertebra_dice),
        dice=metrics.dice(union, gt),
        iou=metrics.iou(union, gt),
        hd95=metrics.hd95(union, gt, spacing),
        msd=metrics.msd(union, gt, spacing),
        ms=ms,
    )


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
    backend: str, pairs: Sequence[tuple[Path, Path]], kind: str
) -> dict[str, object]:
    """The summary object the CLI prints for one backend."""
    segmenter = create_segmenter(backend)
    cases = []
    for i, (image_path, mask_path) in enumerate(pairs, 1):
        case = evaluate_case(
            segmenter, load_slice(image_path), load_mask(mask_path), kind, image_path.name
        )
        cases.append(case)
        print(
            f"[{backend}] {i}/{len(pairs)} {case.image}: dice {case.dice:.3f}",
            file=sys.stderr,
        )
    per_vertebra = [d for c in cases for d in c.vertebra_dice]
    return {
        "backend": backend,
        "prompt": kind,
        "per_vertebra_dice": _summary(per_vertebra),
        "per_slice_dice": _summary([c.dice for c in cases]),
        "iou": _summary([c.iou for c in cases]),
        "hd95": _summary([c.hd95 for c in cases]),
        "msd": _summary([c.msd for c in cases]),
        "ms_per_image": round(float(np.mean([c.ms for c in cases])), 2),
        "n": len(cases),
        "n_vertebrae": len(per_vertebra),
        "per_case": [c.as_dict() for c in cases],
    }


def markdown_table(results: Sequence[dict[str, object]]) -> str:
    """Backends side by side: one row per metric, mean ± std."""
    header = "| metric | " + " | ".join(str(r["backend"]) for r in results) + " |"
    rule = "|---|" + "---|" * len(results)
    rows = [header, rule]
    for key in SUMMARY_KEYS:
        cells = []
        for r in results:
            s = r[key]
            assert isinstance(s, dict)
            cells.append("n/a" if s["mean"] is None else f"{s['mean']:.4f} ± {s['std']:.4f}")
        rows.append(f"| {key} | " + " | ".join(cells) + " |")
    rows.append("| ms_per_image | " + " | ".join(f"{r['ms_per_image']}" for r in results) + " |")
    rows.append(
        "| n / vertebrae | " + " | ".join(f"{r['n']} / {r['n_vertebrae']}" for r in results) + " |"
    )
    return "\n".join(rows)


def write_csv(path: Path, results: Sequence[dict[str, object]]) -> None:
    """One row per image per backend, for spreadsheets and plots."""
    fields = ["backend", "prompt", "image", "n_vertebrae", "per_vertebra_dice_mean"]
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
                        "per_vertebra_dice_mean": round(float(np.mean(vd)), 4) if vd else "",
                        **{k: case[k] for k in fields if k in case},
                    }
                )


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m spinalsam.evaluate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of slices")
    parser.add_argument("--masks", type=Path, required=True, help="masks with the same names")
    parser.add_argument("--prompt", choices=PROMPT_KINDS, required=True)
    parser.add_argument("--backend", default="default", help="NAME[,NAME...] of backends")
    parser.add_argument("--csv", type=Path, help="write one row per image per backend")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser, parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser, args = _parse_args(argv)
    backends = [b.strip().lower() for b in args.backend.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if not backends or unknown:
        parser.error(f"unknown backend {unknown or args.backend!r}; valid: {', '.join(BACKENDS)}")
    try:
        pairs = pair_files(args.images, args.masks)
    except EvaluationError as exc:
        parser.error(str(exc))
    try:
        results = [evaluate_backend(b, pairs, args.prompt) for b in backends]
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
