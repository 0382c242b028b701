"""What the image panel shows: the windowed slice, the label overlay and the prompts on top."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw
from skimage.segmentation import find_boundaries

from spinalsam.labels import LabelError, label_array, label_color
from spinalsam.prompts import PromptSet
from spinalsam.segmenters.morphology import mask_bounds

__all__ = ["RenderError", "compose_view", "overlay"]

POSITIVE = (40, 220, 60)
NEGATIVE = (235, 50, 50)
BOX = (255, 200, 0)


class RenderError(ValueError):
    """A slice and mask that cannot be drawn together; the message is shown to the user."""


def overlay(
    display_u8: np.ndarray,
    labels2d: np.ndarray,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """(H, W, 3) uint8: the gray slice with each label tinted and outlined in its colour.

    The outline is drawn fully opaque so small or thin structures stay visible at any alpha.
    """
    if display_u8.shape != labels2d.shape or display_u8.ndim != 2:
        raise RenderError(
            f"The slice ({display_u8.shape}) and its mask ({labels2d.shape}) differ in size."
        )
    if not 0.0 <= alpha <= 1.0:
        raise RenderError(f"Overlay opacity must be between 0 and 1, got {alpha}.")
    try:
        labels = label_array(labels2d).astype(np.int64)
    except LabelError as exc:
        raise RenderError(str(exc)) from exc
    rgb = np.repeat(display_u8[..., None], 3, axis=2)
    if not labels.any():
        return rgb
    # Blend only the labels' bounding box (+1 px, as the outline looks one pixel around): a mask
    # covers a small part of a slice, and this runs on every click and slice step.
    x0, y0, x1, y1 = mask_bounds(labels)
    h, w = labels.shape
    window = (slice(max(y0 - 1, 0), min(y1 + 2, h)), slice(max(x0 - 1, 0), min(x1 + 2, w)))
    part, gray = labels[window], rgb[window].astype(np.float32)
    palette = _palette(int(part.max()), colors or {})
    inside = part > 0
    tint = palette[part]
    gray[inside] = (1.0 - alpha) * gray[inside] + alpha * tint[inside]
    edge = find_boundaries(part, mode="inner") & inside
    gray[edge] = tint[edge]
    rgb[window] = gray.round().astype(np.uint8)
    return rgb


def _palette(max_label: int, colors: Mapping[int, tuple[int, int, int]]) -> np.ndarray:
    """Row i is the colour of label i (row 0 unused): given colours first, else the label's own."""
    table = np.zeros((max_label + 1, 3), dtype=np.float32)
    for label in range(1, max_label + 1):
        table[label] = colors.get(label, label_color(label))
    return table


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
