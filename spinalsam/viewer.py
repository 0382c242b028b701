"""The image panel: a gr.HTML component that shows a slice and turns pointer input into prompts.

Gradio's own gr.Image maps a click back to pixels assuming the picture is never scaled up; CT
slices are shown enlarged (a 128² slice, a 512×41 slab, zoom), so the panel does its own exact
mapping in the browser (assets/viewer.js) and sends fractions of the image, which
`Session` maps onto the slice's own pixel grid.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from spinalsam.assets import VIEWER_CSS, VIEWER_HTML, VIEWER_JS

__all__ = ["encode_view", "image_panel"]

# Fast PNG: the browser decodes it either way, and level 1 is several times quicker to write
# than the default for a slice (it keeps slice stepping well inside its time budget).
_PNG_LEVEL = 1


def image_panel(elem_id: str = "ct-image") -> gr.HTML:
    """The panel; its events are `prompt` ({kind, x, y[, x1, y1]}) and `step` ({index})."""
    return gr.HTML(
        value=None,
        html_template=VIEWER_HTML,
        css_template=VIEWER_CSS,
        js_on_load=VIEWER_JS,
        elem_id=elem_id,
        apply_default_css=False,
    )


def encode_view(
    rgb: np.ndarray,
    grid: tuple[int, int],
    index: int,
    count: int,
    seq: int,
    has_work: bool = False,
) -> dict[str, Any]:
    """What the panel receives: the rendered view and the pixel grid clicks map onto.

    `grid` is the slice's own (columns, rows); the picture may be stretched (thick slabs are
    shown with square millimetres), the grid is what prompts are placed on. `seq` changes on
    every answer so the panel always notices one, even when the picture did not change.
    `has_work` (the session holds masks) makes the browser ask before a reload or a closed
    tab ends the session: its state lives on the server and is not restored.
    """
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=_PNG_LEVEL)
    height, width = rgb.shape[:2]
    return {
        "src": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
        "width": width,
        "height": height,
        "cols": grid[0],
        "rows": grid[1],
        "index": index,
        "count": count,
        "seq": seq,
        "has_work": has_work,
    }
