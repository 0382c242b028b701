"""Segmenter names → factories, so the CLI tools and the app pick a segmenter by name.

A new segmenter is one line in `BACKENDS`: a name and a zero-argument callable returning a
`Segmenter`. Factories are called lazily so that importing the registry never loads weights.
Dependencies point one way only: the registry may import `spinalsam.sam` (on use); nothing in
`spinalsam.sam` imports the registry. The app's automatic choice is `spinalsam.backends`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType

from spinalsam.segmenters.base import Segmenter, SegmenterError
from spinalsam.segmenters.baseline import BaselineSegmenter
from spinalsam.segmenters.classical import ClassicalSegmenter
from spinalsam.segmenters.learned import LearnedSegmenter

__all__ = ["BACKENDS", "create_segmenter"]

log = logging.getLogger(__name__)


def _sam() -> Segmenter:
    """SAM (+ adapter) as the settings (SPINALSAM_SAM_CHECKPOINT, SPINALSAM_ADAPTER…) describe."""
    # Imported on use: torch, peft and segment_anything take seconds to import.
    from spinalsam.sam.backend import create_sam_segmenter
    from spinalsam.settings import load_settings

    return create_sam_segmenter(load_settings().sam)


BACKENDS: Mapping[str, Callable[[], Segmenter]] = MappingProxyType(
    {
        # The learned network beats the classical method on every held-out source and plane
        # (docs/learned.md); classical stays available by name.
        "default": LearnedSegmenter,
        "learned": LearnedSegmenter,
        "classical": ClassicalSegmenter,
        "sam": _sam,
        "baseline": BaselineSegmenter,
    }
)


def create_segmenter(name: str = "default") -> Segmenter:
    """A fresh segmenter for `name` (each user gets their own: segmenters hold per-slice state)."""
    key = name.strip().lower()
    if key not in BACKENDS:
        valid = ", ".join(sorted(BACKENDS))
        raise SegmenterError(f"unknown segmentation backend {name!r}; choose one of: {valid}")
    segmenter = BACKENDS[key]()
    log.info("created segmenter %r: %s", key, segmenter.info.name)
    return segmenter
