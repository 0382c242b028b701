"""The classical segmenter: image processing with no weights, runs anywhere (backend "classical").

It was the embedded default before the learned network (segmenters/learned.py) replaced it;
it stays available by name. A reader can follow it module by module:

* `maps` — per slice: the bone window, the soft-tissue level, bone and cortex maps.
* `box` — a box: threshold the cortical shell, close, fill, keep the object; with
  `neighbours` (what a neighbour brought in through a side) and `outline` (hollows behind a
  gapped cortex, the edge at the cortex's half height).
* `point` — a click: extents from `estimates`, each read as a box, the mask best centred on
  the click kept (`shape`); cut at narrow necks (`necks`) and joints (`joints`), walled-off
  compartments (`compartments`), the sacrum's fused segments (`sacrum`).
* `prior` — propagation's neighbouring-slice mask: bounds the answer, adds the thin arch.
* `segmenter` — `ClassicalSegmenter`, routing a prompt to the above.

Lengths are physical (mm) where spacing is known; grey levels are on the fixed bone window.
"""

from spinalsam.segmenters.classical.maps import BONE_WINDOW_HU, bone_window
from spinalsam.segmenters.classical.segmenter import ClassicalSegmenter

__all__ = ["BONE_WINDOW_HU", "ClassicalSegmenter", "bone_window"]
