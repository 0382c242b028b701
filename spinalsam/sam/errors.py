"""The one exception type of the SAM backend.

It subclasses `SegmenterError` so the UI, which already shows segmenter errors verbatim, needs no
special case: every message raised here is written for the person using the app.
"""

from __future__ import annotations

from spinalsam.segmenters.base import SegmenterError

__all__ = ["SamError"]


class SamError(SegmenterError):
    """The SAM model, its weights or an adapter could not be built, found or loaded."""
