"""Hugging Face ZeroGPU support: run GPU work through `spaces.GPU` where that package exists.

On a ZeroGPU Space a GPU is attached to the process only while a function decorated with
`spaces.GPU` runs, so SAM's encoder and decoder calls (and fine-tuning steps) go through
`gpu_task`. Everywhere else — no `spaces` package, or `spaces` outside ZeroGPU, where its
decorator returns the function unchanged — `gpu_task` changes nothing. `spaces` is not a
dependency: ZeroGPU Spaces have it preinstalled, and nothing else needs it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

__all__ = ["gpu_task", "spaces_module"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., object])


def spaces_module() -> ModuleType | None:
    """The `spaces` package when installed. Import it before torch touches CUDA: on ZeroGPU it
    patches torch so that `.to("cuda")` outside a GPU task is deferred, not an error."""
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


def gpu_task(fn: F, duration_s: int | None = None) -> F:
    """`fn` decorated with `spaces.GPU` (at most `duration_s` of GPU time a call), or `fn`.

    Call it while the app is built, before `launch()`: ZeroGPU registers GPU functions at start-up.
    """
    spaces = spaces_module()
    if spaces is None:
        return fn
    log.info("ZeroGPU: %s runs through spaces.GPU (duration %s s)", fn.__name__, duration_s)
    decorator = spaces.GPU(duration=duration_s) if duration_s else spaces.GPU
    return decorator(fn)
