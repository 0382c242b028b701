"""Backend names → factories, so the UI and the CLI pick a segmenter by name.

A new backend is one line in `BACKENDS`: a name and a zero-argument callable returning a
`Segmenter`. Factories are called lazily so that importing the registry never loads weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from spinalsam.segmenters.base import Segmenter, SegmenterError
from spinalsam.segmenters.classical import ClassicalSegmenter
from spinalsam.segmenters.learned import LearnedSegmenter

__all__ = ["BACKENDS", "create_segmenter"]


def _sam() -> Segmenter:
    """SAM (+ adapter) as configured by SPINALSAM_SAM_CHECKPOINT / SPINALSAM_ADAPTER etc."""
    # Imported on use: torch, peft and segment_anything take seconds to import.
    from spinalsam.sam.backend import create_sam_segmenter

    return create_sam_segmenter()


BACKENDS: Mapping[str, Callable[[], Segmenter]] = MappingProxyType(
    {
        "default": ClassicalSegmenter,
        "learned": LearnedSegmenter,  # not yet default: no clear held-out win (docs/learned.md)
        "classical": ClassicalSegmenter,
        "sam": _sam,
    }
)


def create_segmenter(name: str = "default") -> Segmenter:
    """A fresh segmenter for `name` (each user gets their own: segmenters hold per-slice state)."""
    key = name.strip().lower()
    if key not in BACKENDS:
        valid = ", ".join(sorted(BACKENDS))
        raise SegmenterError(f"unknown segmentation backend {name!r}; choose one of: {valid}")
    return BACKENDS[key]()
