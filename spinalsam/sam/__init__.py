"""The SAM backend: SAM + LoRA + CBAM, Hub weights, and a cached, shared predictor.

The package itself imports nothing heavy: `spinalsam.sam.config`, `.methods`, `.hub` and
`.errors` are torch-free so the app can decide whether SAM is wanted (and its weights are
there) before paying seconds for torch, peft and segment_anything. The model-side names below
are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from spinalsam.sam.errors import SamError

__all__ = [
    "CBAM",
    "SamConfig",
    "SamError",
    "SpinalSAM",
    "build_sam",
    "build_spinalsam",
    "load_adapter",
    "merge_adapter",
    "save_adapter",
    "save_tiny_checkpoint",
]

_LAZY = {
    "CBAM": "spinalsam.sam.cbam",
    "SamConfig": "spinalsam.sam.model",
    "SpinalSAM": "spinalsam.sam.model",
    "build_sam": "spinalsam.sam.model",
    "build_spinalsam": "spinalsam.sam.model",
    "load_adapter": "spinalsam.sam.adapters",
    "merge_adapter": "spinalsam.sam.adapters",
    "save_adapter": "spinalsam.sam.adapters",
    "save_tiny_checkpoint": "spinalsam.sam.tiny",
}


def __getattr__(name: str) -> Any:
    """`from spinalsam.sam import build_spinalsam` still works, importing torch only then."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spinalsam.sam' has no attribute {name!r}")
