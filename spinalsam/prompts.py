"""Prompts placed on one slice, and how they become per-object backend prompts.

A `PromptSet` is immutable: every edit returns a new one, so undo is just keeping the old value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from spinalsam.segmenters.base import Prompt

__all__ = ["Box", "Point", "PromptSet", "SegmentKind"]

SegmentKind = Literal["points", "box", "auto"]


@dataclass(frozen=True)
class Point:
    x: int
    y: int
    positive: bool = True


Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PromptSet:
    points: tuple[Point, ...] = ()
    boxes: tuple[Box, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.points and not self.boxes

    def add_point(self, point: Point) -> PromptSet:
        return replace(self, points=(*self.points, point))

    def add_box(self, box: Box) -> PromptSet:
        return replace(self, boxes=(*self.boxes, box))

    def cleared(self, target: Literal["points", "boxes", "all"]) -> PromptSet:
        if target == "points":
            return replace(self, points=())
        if target == "boxes":
            return replace(self, boxes=())
        return PromptSet()

    def scaled(self, fx: float, fy: float) -> PromptSet:
        """The same prompts in display pixels when the view stretches voxels by (fx, fy)."""
        if fx == fy == 1:
            return self

        def sx(x: int) -> int:
            return round((x + 0.5) * fx - 0.5)

        def sy(y: int) -> int:
            return round((y + 0.5) * fy - 0.5)

        return PromptSet(
            points=tuple(Point(sx(p.x), sy(p.y), p.positive) for p in self.points),
            boxes=tuple((sx(x0), sy(y0), sx(x1), sy(y1)) for x0, y0, x1, y1 in self.boxes),
        )

    def to_json(self) -> dict[str, list[list[int]]]:
        return {
            "points": [[p.x, p.y, int(p.positive)] for p in self.points],
            "boxes": [list(b) for b in self.boxes],
        }

    @classmethod
    def from_json(cls, data: dict[str, list[list[int]]]) -> PromptSet:
        return cls(
            points=tuple(Point(int(x), int(y), bool(lab)) for x, y, lab in data.get("points", [])),
            boxes=tuple(tuple(int(v) for v in b) for b in data.get("boxes", [])),  # type: ignore[misc]
        )

    def objects(self, kind: SegmentKind) -> list[Prompt]:
        """One backend prompt per object.

        Each box is one object and takes the points that fall inside it (SAM's box+points
        prompt); points outside every box form one more object. `kind` restricts what is used,
        mirroring the paper's separate "point mask" and "box mask" operations.
        """
        points = self.points if kind in ("points", "auto") else ()
        boxes = self.boxes if kind in ("box", "auto") else ()
        prompts: list[Prompt] = []
        used: set[int] = set()
        for box in boxes:
            inside = [i for i, p in enumerate(points) if _inside(p, box)]
            used.update(inside)
            prompts.append(_prompt([points[i] for i in inside], box))
        rest = [p for i, p in enumerate(points) if i not in used]
        if any(p.positive for p in rest) or (rest and not boxes):
            prompts.append(_prompt(rest, None))
        return prompts


def _inside(p: Point, box: Box) -> bool:
    x0, y0, x1, y1 = box
    return x0 <= p.x <= x1 and y0 <= p.y <= y1


def _prompt(points: list[Point], box: Box | None) -> Prompt:
    coords = np.array([[p.x, p.y] for p in points], dtype=np.int64).reshape(-1, 2)
    labels = np.array([int(p.positive) for p in points], dtype=np.int64)
    return Prompt(
        points=coords, labels=labels, box=None if box is None else np.array(box, dtype=np.int64)
    )
