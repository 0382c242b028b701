"""Score one backend on slices: every target, every prompt kind, clean / jittered / flipped.

One record per (target, prompt kind, mode) with its Dice; `summarize` turns records into the
numbers a table shows. Jitter and flip reuse the clean slice's targets, so the three columns are
the same objects asked for three ways and their differences are the backend's, not the sample's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from spinalsam import metrics
from spinalsam.evaluation.protocol import Target, prompt_for
from spinalsam.evaluation.robustness import (
    FLIPS,
    flip_image,
    flip_target,
    jitter_box,
    jitter_point,
    target_rng,
)
from spinalsam.evaluation.volume import SliceCase
from spinalsam.segmenters.base import Segmenter, SegmenterError

__all__ = ["MODES", "CaseScore", "Modes", "score_case", "score_slices", "summarize"]

MODES = ("clean", "jitter", "flip")


@dataclass(frozen=True)
class Modes:
    """What to run besides the clean protocol prompts; `seed` drives the jitter."""

    kinds: tuple[str, ...] = ("box", "point")
    jitter: bool = False
    flip: bool = False
    seed: int = 0


def _record(case: SliceCase, target: Target, kind: str, mode: str, dice: float) -> dict:
    return {"slice": case.name, "target": target.key, "prompt": kind, "mode": mode, "dice": dice}


def _predict(
    segmenter: Segmenter, kind: str, box: np.ndarray, point: np.ndarray
) -> np.ndarray | None:
    """The backend's mask, or None where it refuses the prompt (scored as an empty mask)."""
    try:
        return np.asarray(segmenter.predict(prompt_for(kind, box, point)), dtype=bool)
    except SegmenterError:
        return None


def _dice(pred: np.ndarray | None, target: Target) -> float:
    return 0.0 if pred is None else metrics.dice(pred, target.mask)


@dataclass(frozen=True, eq=False)
class CaseScore:
    """One slice's records, and per prompt kind the union of its clean predictions."""

    records: list[dict[str, object]]
    unions: dict[str, np.ndarray]
    ms: float  # set_image plus the clean predictions


def _clean_and_jitter(segmenter: Segmenter, case: SliceCase, modes: Modes) -> CaseScore:
    start = time.perf_counter()
    segmenter.set_image(case.image)
    records = []
    unions = {kind: np.zeros(case.truth.shape, dtype=bool) for kind in modes.kinds}
    jittered = []
    for target in case.targets:
        for kind in modes.kinds:
            pred = _predict(segmenter, kind, target.box, target.point)
            records.append(_record(case, target, kind, "clean", _dice(pred, target)))
            if pred is not None:
                unions[kind] |= pred
        if modes.jitter:
            rng = target_rng(modes.seed, f"{case.name}/{target.key}")
            jittered.append(
                (target, jitter_box(target.box, target.mask.shape, rng), jitter_point(target, rng))
            )
    ms = (time.perf_counter() - start) * 1000.0
    for target, box, point in jittered:
        for kind in modes.kinds:
            dice = _dice(_predict(segmenter, kind, box, point), target)
            records.append(_record(case, target, kind, "jitter", dice))
    return CaseScore(records, unions, ms)


def _flipped(segmenter: Segmenter, case: SliceCase, modes: Modes) -> Iterable[dict[str, object]]:
    for flip in FLIPS:
        segmenter.set_image(flip_image(case.image, flip))
        for target in case.targets:
            mirrored = flip_target(target, flip)
            for kind in modes.kinds:
                pred = _predict(segmenter, kind, mirrored.box, mirrored.point)
                yield {**_record(case, target, kind, "flip", _dice(pred, mirrored)), "flip": flip}


def score_case(segmenter: Segmenter, case: SliceCase, modes: Modes) -> CaseScore:
    """Every target × kind × mode of one slice; clean first, then jittered, then mirrored."""
    score = _clean_and_jitter(segmenter, case, modes)
    if modes.flip:
        score.records.extend(_flipped(segmenter, case, modes))
    return score


def score_slices(
    segmenter: Segmenter, cases: Iterable[SliceCase], modes: Modes, label: str = ""
) -> tuple[list[dict[str, object]], float]:
    """Records of every slice, and the mean milliseconds per slice (set_image + clean prompts)."""
    records: list[dict[str, object]] = []
    ms: list[float] = []
    for i, case in enumerate(cases, 1):
        score = score_case(segmenter, case, modes)
        records += score.records
        ms.append(score.ms)
        if label:
            print(f"[{label}] {i} {case.name}: {len(case.targets)} objects", file=sys.stderr)
    return records, float(np.mean(ms)) if ms else 0.0


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def summarize(records: Sequence[dict[str, object]], kind: str) -> dict[str, object]:
    """Mean per-object Dice per mode for one prompt kind, and the robustness deltas.

    `jitter_drop` is the mean of per-object (clean − jittered); `flip_change` the mean per-object
    |flipped − clean| over both mirrors (a mean of signed changes would let gains hide losses).
    """
    rows = [r for r in records if r["prompt"] == kind]
    by_mode: dict[str, dict[tuple, float]] = {m: {} for m in MODES}
    for r in rows:
        key = (r["slice"], r["target"], r.get("flip"))
        by_mode[str(r["mode"])][key] = float(r["dice"])  # type: ignore[arg-type]
    clean = {k[:2]: v for k, v in by_mode["clean"].items()}
    jitter = by_mode["jitter"]
    flips = by_mode["flip"]
    return {
        "clean": _mean(list(clean.values())),
        "jitter": _mean(list(jitter.values())),
        "flip": _mean(list(flips.values())),
        "jitter_drop": _mean([clean[k[:2]] - v for k, v in jitter.items()]),
        "flip_change": _mean([abs(v - clean[k[:2]]) for k, v in flips.items()]),
        "n": len(clean),
    }
