"""A neighbouring slice's mask (`mask_input`, from propagation): what it bounds and adds back.

Why: propagation prompts each slice with the previous slice's mask; the answer is the object
near that mask (within CLOSE_MM of it), empty when no bone lies near it, so propagation can
tell that the object has ended. On pixels coarser than the cortical wall (3 mm) an arch is one
pixel of partial-volume cortex that the edge settling drops, so thin cortex near the prior and
joined to the answer is added back (`with_attached_arch`; docs/3d.md "Attached arch").
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.base import SegmenterError
from spinalsam.segmenters.classical.maps import CLOSE_MM, SliceMaps
from spinalsam.segmenters.classical.necks import APPENDAGE_RATIO
from spinalsam.segmenters.classical.shape import max_depth
from spinalsam.segmenters.morphology import EIGHT, components_touching, dilate_disk, mask_bounds


def prior_mask(mask_input: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The prior as a boolean mask of the slice's shape; None when absent or empty."""
    if mask_input is None:
        return None
    prior = np.asarray(mask_input, dtype=bool)
    if prior.shape != shape:
        raise SegmenterError(f"the prior mask is {prior.shape}, but the slice is {shape}")
    return prior if prior.any() else None


def with_attached_arch(s: SliceMaps, mask: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The mask near the prior, plus the thin cortex near the prior that is joined to it.

    A pedicle or lamina on coarse pixels is one or two pixels whose brightness says how much
    cortex they hold, not how much of them is bone, so the edge settling drops them and the
    mask shrinks slice after slice. Cortex within reach of the prior, joined to the mask, and
    thin beside the prior (thinner than APPENDAGE_RATIO of its thickest part: an arch, not an
    endplate, which is as wide as a body) is the same vertebra's arch. Separate pieces are not
    added: at a disc they would carry the mask into the next vertebra.
    """
    near = dilate_disk(prior, s.px(CLOSE_MM))
    x0, y0, x1, y1 = mask_bounds(near)  # all the work happens around the prior
    crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    body = mask[crop] & near[crop]
    pieces, n = ndi.label(s.cortex[crop] & near[crop], structure=EIGHT)
    depth = ndi.distance_transform_edt(np.pad(pieces > 0, 1))[1:-1, 1:-1]
    deepest = np.zeros(n + 1)
    np.maximum.at(deepest, pieces.ravel(), depth.ravel())
    thin = deepest < APPENDAGE_RATIO * max_depth(prior)
    thin[0] = False
    joined, _ = ndi.label(body | thin[pieces], structure=EIGHT)
    out = np.zeros_like(mask)
    out[crop] = components_touching(joined, body)
    return out
