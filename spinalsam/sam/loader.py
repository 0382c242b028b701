"""Build the served SAM once per process: locate weights, load, adapt, merge, speed up.

`ModelLoader` owns its lock and its result; `backend.shared_backend` hands out one loader per
distinct (immutable, hashable) settings, so every session shares one model without a mutable
module-level global. A failed load is remembered too: it is reported, not retried per click.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from spinalsam.sam.adapters import merge_adapter
from spinalsam.sam.config import SamSettings
from spinalsam.sam.device import select_device
from spinalsam.sam.errors import SamError
from spinalsam.sam.hub import ProgressCallback, fetch_adapter, fetch_checkpoint, infer_model_type
from spinalsam.sam.model import SamConfig, SpinalSAM, build_spinalsam

__all__ = ["LoadedModel", "ModelLoader"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """The served model plus the provenance `check_parameters` reports."""

    model: SpinalSAM
    checkpoint_spec: str
    checkpoint_path: Path
    adapter_spec: str | None
    parameter_counts: dict[str, int]  # before merging, so LoRA's size is still reported
    encoder_methods: tuple[str, ...] = ()
    decoder_runtime: str | None = None  # "openvino" when the mask decoder was converted
    notes: tuple[str, ...] = field(default=())

    def __deepcopy__(self, memo: dict) -> LoadedModel:
        # Process-wide and shared by design: Gradio deep-copies each new session's state,
        # which must not duplicate the model or the cache.
        return self

    @property
    def model_id(self) -> str:
        """Distinguishes embeddings of different weights/speed-ups in a shared cache."""
        parts = (
            self.model.config.model_type,
            self.model.key_check.sha256,
            self.adapter_spec,
            "+".join(self.encoder_methods) or "fp32",
        )
        return ":".join(str(p) for p in parts)


class ModelLoader:
    """Thread-safe, lazy, load-once holder of the model `settings` describe."""

    def __init__(self, settings: SamSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._error: SamError | None = None

    def __deepcopy__(self, memo: dict) -> ModelLoader:
        # Process-wide and shared by design: Gradio deep-copies each new session's state,
        # which must not duplicate the model or the cache.
        return self

    def get(self, progress: ProgressCallback | None = None) -> LoadedModel:
        """The model, loading it on first use; later callers wait for that one load."""
        with self._lock:
            if self._loaded is None and self._error is None:
                try:
                    self._loaded = _load(self.settings, progress or _silent)
                except SamError as exc:
                    log.warning("SAM could not be loaded (not retried): %s", exc)
                    self._error = exc
            if self._error is not None:
                raise self._error
            assert self._loaded is not None
            return self._loaded


def _silent(fraction: float | None, message: str) -> None:
    """Progress sink used when nobody is listening."""


def _load(settings: SamSettings, progress: ProgressCallback) -> LoadedModel:
    started = time.perf_counter()
    progress(0.0, "locating SAM weights")
    hub = {"cache_dir": settings.hf_cache_dir, "offline": settings.offline, "progress": progress}
    path = fetch_checkpoint(settings.sam_checkpoint, **hub)
    adapter = fetch_adapter(settings.adapter, **hub) if settings.adapter else None
    model_type = settings.sam_model_type or infer_model_type(path.name)
    device = select_device(settings.device)
    progress(0.5, f"loading SAM {model_type} on {device.type}")
    try:
        model = build_spinalsam(SamConfig(model_type), path, adapter)
    except SamError:
        raise
    except (RuntimeError, MemoryError) as exc:  # e.g. out of memory for vit_h
        raise SamError(f"could not build SAM {model_type}: {exc}") from exc
    counts = model.parameter_counts()
    merge_adapter(model)  # serving runs plain Linear layers: same masks, no LoRA overhead
    model.to(device).eval()
    methods, decoder, notes = _speed_up(model, settings.encoder_opt, settings.export_cache_dir)
    log.info(
        "SAM %s loaded from %s on %s, encoder %s, decoder %s, in %.1f s%s",
        model_type,
        path,
        device.type,
        "+".join(methods) or "plain fp32",
        decoder or "pytorch",
        time.perf_counter() - started,
        "".join(f"; {note}" for note in notes),
    )
    progress(1.0, "SAM ready")
    return LoadedModel(
        model=model,
        checkpoint_spec=settings.sam_checkpoint,
        checkpoint_path=path,
        adapter_spec=settings.adapter,
        parameter_counts=counts,
        encoder_methods=methods,
        decoder_runtime=decoder,
        notes=notes,
    )


def _speed_up(
    model: SpinalSAM, method: str | None, export_root: str | None
) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """Set the thread pools once, then apply `spinalsam.sam.fast` when asked, and the exact
    OpenVINO mask decoder with any encoder speed-up on the CPU.

    The threads are set even without a speed-up: torch's default inter-op pool only
    oversubscribes the cores during the encoder's chain of big matmuls. A speed-up that cannot
    run is noted, not fatal. Returns (encoder methods, decoder runtime or None, notes).
    """
    try:
        from spinalsam.sam.fast import (
            auto_method,
            configure_threads,
            default_cache_dir,
            optimize_encoder,
            settle_threads,
        )
        from spinalsam.sam.fast_decoder import optimize_decoder, wants_fast_decoder
    except ImportError as exc:
        note = f"encoder speed-up {method!r} unavailable: {exc}"
        return (), None, ((note,) if method not in (None, "none", "auto") else ())
    configure_threads()
    if method == "auto":
        method = auto_method(model.device)
    if not method or method == "none":
        return (), None, ()
    cache_dir = default_cache_dir(export_root)
    try:
        methods = tuple(optimize_encoder(model.sam, method, cache_dir))
    except SamError as exc:
        return (), None, (f"encoder speed-up {method!r} skipped: {exc}",)
    settle_threads(methods)
    if not wants_fast_decoder(model.device, methods):
        return methods, None, ()
    try:
        optimize_decoder(model.sam, cache_dir)
    except SamError as exc:
        return methods, None, (f"OpenVINO mask decoder skipped: {exc}",)
    return methods, "openvino", ()
