"""The classical segmenter: image processing with no weights, runs anywhere (backend "classical").

It was the embedded default before the learned network (segmenters/learned.py) replaced it;
it stays available by name. A reader can follow it module by module:

* `maps` — per slice: the bone window, the soft-tissue level, bone and cortex maps.
* `box` — a box: threshold the cortical shell, drop bone entering through a side
  (`neighbours`), close, fill, keep the object; a drawn box also has the hollows behind a
  gapped cortex filled (`bays`).
* `point` — a click: extents from `estimates` (the cortical shell, distance-map basins, rays),
  each read as a box and cut at narrow necks (`necks`), the mask best centred on the click kept
  (`shape`), then its cortex-walled compartment where that is the clicked body
  (`compartments`).
* `prior` — propagation's neighbouring-slice mask: the box around it, the edge settled at the
  cortex's half height, the answer bounded to its neighbourhood.
* `segmenter` — `ClassicalSegmenter`, routing a prompt to the above; negative points carve.

Every rule here was kept because switching it off lowered the Dice on sources the rules were
never tuned on; the ones that did not were deleted (docs/evaluation.md, "What was deleted").
Lengths are physical (mm) where spacing is known; grey levels are on the fixed bone window.
"""

from spinalsam.segmenters.classical.maps import BONE_WINDOW_HU, bone_window
from spinalsam.segmenters.classical.segmenter import ClassicalSegmenter

__all__ = ["BONE_WINDOW_HU", "ClassicalSegmenter", "bone_window"]
