"""The app's process-wide backend, chosen in this one place: SAM when wanted and its weights are
found, else the embedded default segmenter.

Chosen once at start-up (`load_backend`); each browser session then asks it for its own light
segmenter, so the heavy model and the embedding cache are shared while prompts and the current
embedding stay per session.

The choice costs nothing when SAM is not used: the weights are looked up first (a local path or
the Hugging Face cache, torch-free), and torch, peft and segment_anything are imported only once
SAM is wanted and its weights are there. `auto` never downloads at start (a 375 MB surprise on
every fresh machine); `sam` does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from spinalsam.limits import DEFAULT_BUDGET
from spinalsam.sam.config import SamSettings
from spinalsam.sam.errors import SamError
from spinalsam.sam.hub import (
    ProgressCallback,
    download_hint,
    fetch_adapter,
    fetch_checkpoint,
    weights_on_disk,
)
from spinalsam.sam.zerogpu import spaces_module
from spinalsam.segmenters.base import BackendInfo, Segmenter
from spinalsam.segmenters.bounded import BoundedSegmenter
from spinalsam.segmenters.learned import describe_weights
from spinalsam.segmenters.registry import create_segmenter

if TYPE_CHECKING:
    from spinalsam.sam.backend import SharedSam

__all__ = ["DefaultBackend", "SamAppBackend", "load_backend"]

log = logging.getLogger(__name__)


@dataclass
class DefaultBackend:
    """The embedded default segmenter: no shared weights, nothing shared but its description."""

    reason: str = ""
    info: BackendInfo = field(init=False)

    def __post_init__(self) -> None:
        base = create_segmenter("default").info
        self.info = BackendInfo(base.name, base.description, self.reason)

    def new_segmenter(self) -> Segmenter:
        return _bounded(create_segmenter("default"))

    def describe_compute(self) -> str:
        # Imported on demand: only the `check_gpu` operation needs torch with the default backend.
        from spinalsam.sam.device import describe_compute, format_compute

        return (
            format_compute(describe_compute())
            + "\n- the embedded default segmenter runs on the CPU"
        )

    def describe_parameters(self) -> str:
        why = f"\n\n{self.reason}" if self.reason else ""
        return (
            "The active backend is the **embedded default segmenter** (no SAM weights). "
            f"{describe_weights()}{why}"
        )


@dataclass
class SamAppBackend:
    """SAM (+ LoRA + CBAM) shared by all sessions through one loader and embedding cache."""

    sam: SharedSam
    info: BackendInfo

    def new_segmenter(self) -> Segmenter:
        return _bounded(self.sam.segmenter(reason=self.info.reason))

    def describe_compute(self) -> str:
        from spinalsam.sam.device import format_compute

        return format_compute(self.sam.segmenter().describe_compute())

    def describe_parameters(self) -> str:
        from spinalsam.sam.report import format_parameters

        return format_parameters(self.sam.segmenter().describe_parameters())


def _bounded(segmenter: Segmenter) -> Segmenter:
    """Every session segments on at most the budget's pixels per call (see segmenters.bounded)."""
    return BoundedSegmenter(segmenter, DEFAULT_BUDGET.max_segment_pixels)


def _log_progress(fraction: float | None, message: str) -> None:
    """Downloads and loading happen before the UI exists: report them on the console."""
    done = f" ({fraction:.0%})" if fraction is not None else ""
    log.info("SAM: %s%s", message, done)


def load_backend(
    settings: SamSettings, progress: ProgressCallback = _log_progress
) -> DefaultBackend | SamAppBackend:
    """SAM if the settings want it and it loads, else the default with the reason; never raises."""
    started = time.perf_counter()
    backend = _choose(settings, progress)
    log.info(
        "segmentation backend: %s — %s (chosen in %.2f s). %s",
        backend.info.name,
        backend.info.description,
        time.perf_counter() - started,
        backend.info.reason,
    )
    return backend


def _choose(settings: SamSettings, progress: ProgressCallback) -> DefaultBackend | SamAppBackend:
    if settings.backend == "default":
        return DefaultBackend(
            "SPINALSAM_BACKEND=default selects the embedded segmenter; "
            "set SPINALSAM_BACKEND=auto (or sam) to use SAM."
        )
    if settings.backend == "auto" and not weights_on_disk(
        settings.sam_checkpoint, settings.hf_cache_dir
    ):
        return DefaultBackend(
            f"SAM's weights ({settings.sam_checkpoint}) are not on this machine and "
            "SPINALSAM_BACKEND=auto never downloads them at start. To enable SAM, "
            f"{download_hint(settings.sam_checkpoint)}; or set SPINALSAM_BACKEND=sam to download "
            "them at start."
        )
    requested = "SAM was requested but is" if settings.backend == "sam" else "SAM is"
    hub = {"cache_dir": settings.hf_cache_dir, "offline": settings.offline, "progress": progress}
    try:  # torch-free: a local path, the HF cache, or (`sam`, online) a download
        checkpoint = fetch_checkpoint(settings.sam_checkpoint, **hub)
        if settings.adapter:
            fetch_adapter(settings.adapter, **hub)
    except SamError as exc:
        return _unavailable(requested, exc, settings)
    log.info("SAM weights found (%s); loading SAM", checkpoint)
    spaces_module()  # on ZeroGPU, `spaces` must patch torch before CUDA is touched
    from spinalsam.sam.backend import shared_sam

    shared = shared_sam(settings)
    try:
        segmenter = shared.segmenter(
            reason=f"SPINALSAM_BACKEND={settings.backend} and the SAM weights were found",
            progress=progress,
        )
    except Exception as exc:  # the app must start whatever went wrong while loading SAM
        return _unavailable(requested, exc, settings)
    return SamAppBackend(shared, segmenter.info)


def _unavailable(requested: str, exc: Exception, settings: SamSettings) -> DefaultBackend:
    log.warning("%s unavailable: %s", requested, exc)
    return DefaultBackend(
        f"{requested} unavailable: {str(exc).rstrip('.')}. To enable SAM, "
        f"{download_hint(settings.sam_checkpoint)}."
    )
