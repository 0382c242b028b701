"""ZeroGPU: SAM's encoder and decoder run through `spaces.GPU` when the `spaces` package exists.

The real `spaces` package only attaches a GPU on a ZeroGPU Space; here a stand-in module in
`sys.modules` records what was decorated and called, which exercises our code path exactly.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from sam_fixtures import slice_image, tiny_sam_settings

from spinalsam.backends import SamAppBackend, load_backend
from spinalsam.sam.backend import shared_sam
from spinalsam.sam.zerogpu import gpu_task
from spinalsam.segmenters.base import Prompt


class StandInSpaces(types.ModuleType):
    """Records `spaces.GPU` decorations (with their duration) and the calls that go through."""

    def __init__(self) -> None:
        super().__init__("spaces")
        self.decorated: list[tuple[str, int | None]] = []
        self.calls: list[str] = []

    def GPU(self, fn: Callable | None = None, *, duration: int | None = None) -> Callable:
        def wrap(inner: Callable) -> Callable:
            self.decorated.append((inner.__name__, duration))

            def on_gpu(*args: object, **kwargs: object) -> object:
                self.calls.append(inner.__name__)
                return inner(*args, **kwargs)

            return on_gpu

        return wrap(fn) if fn is not None else wrap


@pytest.fixture
def spaces(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInSpaces]:
    stand_in = StandInSpaces()
    monkeypatch.setitem(sys.modules, "spaces", stand_in)
    shared_sam.cache_clear()  # built fresh, so it sees `spaces`
    yield stand_in
    shared_sam.cache_clear()


def test_without_spaces_gpu_task_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` fail

    def work() -> int:
        return 7

    assert gpu_task(work, 30) is work


def test_sam_encoder_and_decoder_run_through_spaces_gpu(
    spaces: StandInSpaces, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    settings = tiny_sam_settings(tmp_path / "hf")
    backend = load_backend(settings)
    assert isinstance(backend, SamAppBackend), backend.info.reason
    # Registered while the app is built, before any request (ZeroGPU requires it).
    assert spaces.decorated == [("_embed", 30), ("_predict", None)] and spaces.calls == []

    segmenter = backend.new_segmenter()
    segmenter.set_image(slice_image())
    mask = segmenter.predict(Prompt(points=np.array([[32, 24]]), labels=np.array([1])))
    assert spaces.calls == ["_embed", "_predict"]
    assert mask.dtype == bool and 0 < mask.sum() < mask.size
    segmenter.set_image(slice_image())  # a cached embedding needs no GPU
    assert spaces.calls == ["_embed", "_predict"]
