"""Segmentation backends behind one interface (see base.py)."""

from spinalsam.segmenters.base import BackendInfo, Prompt, Segmenter, SegmenterError, SliceImage

__all__ = ["BackendInfo", "Prompt", "Segmenter", "SegmenterError", "SliceImage"]
