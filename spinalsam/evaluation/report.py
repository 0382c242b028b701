"""The report over every registered source: one cell per source × plane × prompt × backend.

Sources are read once and each slice set is scored by every backend in turn, so the columns of
a row are the same objects asked the same way. A cell holds the clean, jittered and flipped mean
per-object Dice and the robustness deltas; a volume source adds a "3-D" row (evaluate3d: one box
per vertebra on its largest slice, then propagation through axial slices).

Fitted backends: `held_out` restricts a column to the sources its model was trained without
(leave-one-source-out: one model per held-out source, each run on its own source, the JSON
outputs merged with `merge_reports`), and `trained_on` marks cells whose source the model saw.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spinalsam.evaluate3d import evaluate_volume
from spinalsam.evaluation.backends import create_evaluated_segmenter
from spinalsam.evaluation.folders import folder_slice_cases, pair_files
from spinalsam.evaluation.runner import Modes, score_slices, summarize
from spinalsam.evaluation.sources import Source, load_source_volumes, missing_files
from spinalsam.evaluation.volume import SliceCase, sample_slices, volume_slice_cases
from spinalsam.segmenters.base import Segmenter

__all__ = ["FULL", "QUICK", "Budget", "Column", "markdown_report", "merge_reports", "run_report"]


@dataclass(frozen=True)
class Budget:
    """How much of every source a run scores."""

    folder_stride: int = 1  # every k-th image of a 2-D folder
    slice_step_mm: float = 5.0  # one volume slice per this many mm
    max_slices: int | None = None  # per volume and plane
    max_labels_3d: int | None = None  # vertebrae per volume propagated in 3-D (middle ones)
    quick: bool = False  # sources' quick_volumes only


FULL = Budget()
QUICK = Budget(folder_stride=8, slice_step_mm=5.0, max_slices=4, max_labels_3d=2, quick=True)


@dataclass(frozen=True)
class Column:
    """One column of the table: a backend spec (registry name or learned:PATH) under a column
    name, and its LOSO facts."""

    name: str
    backend: str
    held_out: frozenset[str] = frozenset()  # non-empty: evaluate on these sources only
    trained_on: frozenset[str] = frozenset()  # cells of these sources are not held-out numbers

    def scores(self, source: str) -> bool:
        return not self.held_out or source in self.held_out


def _slice_sets(
    source: Source, data_root: Path, cache_root: Path, budget: Budget
) -> Iterable[tuple[str, list[SliceCase], Any]]:
    """(plane, slices, volume entry or None) per scored slice set of the source."""
    base = source.path(data_root, cache_root)
    for folder in source.folders:
        pairs = pair_files(base / folder.images, base / folder.masks)[:: budget.folder_stride]
        yield folder.plane, list(folder_slice_cases(pairs, source.name)), None
    for case, volume, ids in load_source_volumes(source, data_root, cache_root, budget.quick):
        for plane in source.planes:
            indices = sample_slices(
                volume.labels,
                ids,
                plane,
                volume.ct.spacing,
                budget.slice_step_mm,
                budget.max_slices,
            )
            name = f"{source.name}/{case.name}"
            yield plane, list(volume_slice_cases(volume, ids, plane, indices, name)), None
        if source.evaluate_3d:
            yield "3-D", [], (case.name, volume, _middle(ids, budget.max_labels_3d))


def _middle(ids: Sequence[int], limit: int | None) -> tuple[int, ...]:
    if limit is None or len(ids) <= limit:
        return tuple(ids)
    start = (len(ids) - limit) // 2
    return tuple(ids[start : start + limit])


def _records_3d(
    segmenter: Segmenter, entry: tuple[str, Any, tuple[int, ...]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    name, volume, ids = entry
    report = evaluate_volume(volume, ids, segmenter, "axial")
    labels = [
        {k: r[k] for k in ("label", "dice", "start_dice", "slices_propagated")}
        for r in report["labels"]
    ]
    records = [
        {
            "slice": name,
            "target": str(r["label"]),
            "prompt": "box",
            "mode": "clean",
            "dice": r["dice"],
        }
        for r in report["labels"]
    ]
    return records, {"case": name, "mean_dice": report["mean_dice"], "labels": labels}


def run_report(
    sources: Sequence[Source],
    columns: Sequence[Column],
    data_root: Path,
    cache_root: Path,
    budget: Budget = FULL,
    modes: Modes | None = None,
    with_3d: bool = True,
) -> dict[str, Any]:
    """Score every column on every source; the JSON object the CLI prints."""
    modes = modes or Modes(jitter=True, flip=True)
    started = time.perf_counter()
    segmenters = {c.name: create_evaluated_segmenter(c.backend) for c in columns}
    records: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    volumes3d: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for source in sources:
        missing = missing_files(source, data_root, cache_root)
        if missing:
            skipped.append({"source": source.name, "reason": f"not found: {missing[0]}"})
            print(f"skipping {source.name}: {missing[0]} not found", file=sys.stderr)
            continue
        for plane, cases, entry in _slice_sets(source, data_root, cache_root, budget):
            if entry is not None and not with_3d:
                continue
            for column in columns:
                if not column.scores(source.name):
                    continue
                key = (source.name, plane, column.name)
                print(f"[{column.name}] {source.name} {plane}", file=sys.stderr)
                if entry is None:
                    recs, _ = score_slices(segmenters[column.name], cases, modes)
                else:
                    recs, volume = _records_3d(segmenters[column.name], entry)
                    volumes3d.append({"source": source.name, "column": column.name, **volume})
                records.setdefault(key, []).extend(recs)
    cells = [
        _cell(source, plane, kind, column, recs)
        for (source, plane, name), recs in records.items()
        for column in columns
        if column.name == name
        for kind in (("box",) if plane == "3-D" else modes.kinds)
    ]
    return {
        "cells": cells,
        "volumes3d": volumes3d,
        "skipped": skipped,
        "columns": [c.name for c in columns],
        "budget": asdict(budget),
        "seed": modes.seed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _cell(
    source: str, plane: str, kind: str, column: Column, recs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "source": source,
        "plane": plane,
        "prompt": kind,
        "column": column.name,
        "backend": column.backend,
        "trained_on": source in column.trained_on,
        **summarize(recs, kind),
    }


def merge_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several runs' JSON as one report (e.g. one leave-one-source-out model per source).

    A cell present in two reports is an error: the merged table must not silently pick one.
    """
    cells: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    columns: list[str] = []
    for report in reports:
        for cell in report["cells"]:
            key = (cell["source"], cell["plane"], cell["prompt"], cell["column"])
            if key in cells:
                raise ValueError(f"two reports hold the cell {key}")
            cells[key] = cell
        columns += [c for c in report["columns"] if c not in columns]
    return {
        "cells": list(cells.values()),
        "volumes3d": [v for r in reports for v in r.get("volumes3d", [])],
        "skipped": [s for r in reports for s in r.get("skipped", [])],
        "columns": columns,
        "seconds": round(sum(r.get("seconds", 0.0) for r in reports), 1),
    }


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


_PLANE_ORDER = {"axial": 0, "sagittal": 1, "coronal": 2, "3-D": 3}


def markdown_report(report: Mapping[str, Any]) -> str:
    """One table: a row per source × plane × prompt, per column clean / jitter / flip / |Δflip|.

    `*` marks a cell whose source the column's model was trained on (not a held-out number).
    """
    columns: list[str] = report["columns"]
    cells = {(c["source"], c["plane"], c["prompt"], c["column"]): c for c in report["cells"]}
    rows = sorted(
        {k[:3] for k in cells},
        key=lambda k: (_source_order(report, k[0]), _PLANE_ORDER.get(k[1], 9), k[2]),
    )
    head = ["source", "plane", "prompt", "n"]
    for name in columns:
        head += [f"{name} clean", f"{name} jitter", f"{name} flip", f"{name} \\|Δflip\\|"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for source, plane, kind in rows:
        present = [
            cells[(source, plane, kind, c)] for c in columns if (source, plane, kind, c) in cells
        ]
        n = max(c["n"] for c in present)
        row = [source, plane, kind, str(n)]
        for name in columns:
            cell = cells.get((source, plane, kind, name))
            if cell is None:
                row += ["–"] * 4
                continue
            mark = "*" if cell.get("trained_on") else ""
            row += [
                _fmt(cell["clean"]) + mark,
                _fmt(cell["jitter"]),
                _fmt(cell["flip"]),
                _fmt(cell["flip_change"]),
            ]
        lines.append("| " + " | ".join(row) + " |")
    for skip in report.get("skipped", []):
        lines.append(f"\nskipped {skip['source']}: {skip['reason']}")
    return "\n".join(lines)


def _source_order(report: Mapping[str, Any], source: str) -> int:
    names = list(dict.fromkeys(c["source"] for c in report["cells"]))
    return names.index(source)
