"""Which segmenter an evaluation column runs: a registry name, or `learned:PATH` for other weights.

Held-out numbers need a model that never saw the scored source (e.g. one trained without tptbox
and totalseg, exported with `python -m spinalsam.train_default export`). The app picks its
segmenter by registry name only; this spec is for the evaluation CLIs, so a weights file can be
scored without touching the registry or the environment.
"""

from __future__ import annotations

from pathlib import Path

from spinalsam.segmenters.base import Segmenter, SegmenterError
from spinalsam.segmenters.learned import LearnedSegmenter
from spinalsam.segmenters.registry import BACKENDS, create_segmenter

__all__ = ["BACKEND_SPEC_HELP", "check_backend_spec", "create_evaluated_segmenter"]

_WEIGHTS_PREFIX = "learned:"
BACKEND_SPEC_HELP = f"one of {', '.join(BACKENDS)}, or learned:PATH (an exported ONNX file)"


def check_backend_spec(spec: str) -> str:
    """The spec, normalised (registry names lower-case, a weights path kept as given).

    Raises SegmenterError with the valid choices when it names no backend or no weights file.
    """
    spec = spec.strip()
    if spec.lower().startswith(_WEIGHTS_PREFIX):
        path = Path(spec[len(_WEIGHTS_PREFIX) :])
        if not path.is_file():
            raise SegmenterError(f"no weights file at {path}")
        return _WEIGHTS_PREFIX + str(path)
    if spec.lower() not in BACKENDS:
        raise SegmenterError(f"unknown backend {spec!r}; choose {BACKEND_SPEC_HELP}")
    return spec.lower()


def create_evaluated_segmenter(spec: str) -> Segmenter:
    """A fresh segmenter for a checked spec (`check_backend_spec`)."""
    spec = check_backend_spec(spec)
    if spec.startswith(_WEIGHTS_PREFIX):
        return LearnedSegmenter(spec[len(_WEIGHTS_PREFIX) :])
    return create_segmenter(spec)
