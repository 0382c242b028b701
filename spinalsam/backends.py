"""The app's process-wide backend: SAM when its weights are reachable, else the embedded default.

Chosen once at start-up (`load_backend`); each browser session then asks it for its own light
segmenter, so the heavy model and the embedding cache are shared while prompts and the current
embedding stay per session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from spinalsam.limits import DEFAULT_BUDGET
from spinalsam.sam.backend import SamBackend, resolve_backend, shared_backend
from spinalsam.sam.config import load_settings
from spinalsam.sam.device import describe_compute, format_compute
from spinalsam.sam.report import format_parameters
from spinalsam.segmenters.base import BackendInfo, Segmenter
from spinalsam.segmenters.bounded import BoundedSegmenter
from spinalsam.segmenters.registry import create_segmenter

__all__ = ["DefaultBackend", "SamAppBackend", "load_backend"]

log = logging.getLogger(__name__)


@dataclass
class DefaultBackend:
    """The embedded classical segmenter: no weights, nothing shared but its description."""

    reason: str = ""
    info: BackendInfo = field(init=False)

    def __post_init__(self) -> None:
        base = create_segmenter("default").info
        self.info = BackendInfo(base.name, base.description, self.reason)

    def new_segmenter(self) -> Segmenter:
        return _bounded(create_segmenter("default"))

    def describe_compute(self) -> str:
        return (
            format_compute(describe_compute())
            + "\n- the embedded default segmenter runs on the CPU"
        )

    def describe_parameters(self) -> str:
        why = f"\n\n{self.reason}" if self.reason else ""
        return (
            "The active backend is the **embedded default segmenter**: a classical method with no "
            f"learned weights, so there are no parameters to verify.{why}"
        )


@dataclass
class SamAppBackend:
    """SAM (+ LoRA + CBAM) shared by all sessions through one loader and embedding cache."""

    sam: SamBackend
    info: BackendInfo

    def new_segmenter(self) -> Segmenter:
        return _bounded(self.sam.segmenter(reason=self.info.reason))

    def describe_compute(self) -> str:
        return format_compute(self.sam.segmenter().describe_compute())

    def describe_parameters(self) -> str:
        return format_parameters(self.sam.segmenter().describe_parameters())


def _bounded(segmenter: Segmenter) -> Segmenter:
    """Every session segments on at most the budget's pixels per call (see segmenters.bounded)."""
    return BoundedSegmenter(segmenter, DEFAULT_BUDGET.max_segment_pixels)


def _log_progress(fraction: float | None, message: str) -> None:
    """Downloads and loading happen before the UI exists: report them on the console."""
    done = f" ({fraction:.0%})" if fraction is not None else ""
    log.info("SAM: %s%s", message, done)


def load_backend() -> DefaultBackend | SamAppBackend:
    """SAM if `resolve_backend` could load it with the environment's settings, else the default."""
    _, info = resolve_backend(progress=_log_progress)
    log.info("segmentation backend: %s — %s. %s", info.name, info.description, info.reason)
    if info.name == "sam":
        return SamAppBackend(shared_backend(load_settings()), info)
    return DefaultBackend(info.reason)
