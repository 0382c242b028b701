"""What the image panel shows: the windowed slice, the label overlay and the prompts on top."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw

from spinalsam.export import overlay
from spinalsam.prompts import PromptSet

__all__ = ["compose_view"]

POSITIVE = (40, 220, 60)
NEGATIVE = (235, 50, 50)
BOX = (255, 200, 0)


def compose_view(
    display: np.ndarray,
    labels: np.ndarray,
    prompts: PromptSet,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    corner: tuple[int, int] | None = None,
) -> np.ndarray:
    """RGB view with masks and prompts; marker sizes scale with the image so they stay visible."""
    rgb = overlay(display, labels, colors)
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    r = max(3, round(max(display.shape) / 120))
    for x0, y0, x1, y1 in prompts.boxes:
        draw.rectangle((x0, y0, x1, y1), outline=BOX, width=max(1, r // 2))
    for p in prompts.points:
        color = POSITIVE if p.positive else NEGATIVE
        draw.ellipse((p.x - r, p.y - r, p.x + r, p.y + r), fill=color, outline=(255, 255, 255))
    if corner is not None:
        cx, cy = corner
        draw.line((cx - 2 * r, cy, cx + 2 * r, cy), fill=BOX, width=2)
        draw.line((cx, cy - 2 * r, cx, cy + 2 * r), fill=BOX, width=2)
    return np.asarray(img)
