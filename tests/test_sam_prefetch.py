"""Background embedding of the slices around the one on screen (`spinalsam.prefetch`)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from fixtures_ct import synthetic_ct, write_nifti
from sam_fixtures import tiny_sam_settings

from spinalsam import ops
from spinalsam.backends import SamAppBackend, load_backend
from spinalsam.limits import Budget
from spinalsam.prefetch import NeighbourPrefetcher, neighbour_order
from spinalsam.segmenters.base import SliceImage
from spinalsam.session import Session

WAIT_S = 60


def _done(value: object = None) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sam-neighbours")]


def test_neighbour_order_is_nearest_first_towards_the_last_move() -> None:
    assert neighbour_order(5, 10, 2) == [5, 6, 4, 7, 3]
    assert neighbour_order(5, 10, 2, direction=-3) == [5, 4, 6, 3, 7]
    assert neighbour_order(0, 3, 3) == [0, 1, 2]  # clipped to the volume
    assert neighbour_order(4, 5, 0) == [4]


def test_a_new_slice_drops_the_old_plan_and_close_stops_the_worker() -> None:
    started: list[int] = []
    gate = threading.Event()

    def start(image: SliceImage) -> Future:
        started.append(int(image.pixels[0, 0]))
        if len(started) == 1:
            gate.wait(WAIT_S)  # the first encoder run is in flight when the user moves on
        return _done()

    def render(index: int) -> SliceImage:
        pixels = np.full((4, 4), index, np.float32)
        return SliceImage(pixels=pixels, display=pixels.astype(np.uint8), is_hu=False)

    prefetcher = NeighbourPrefetcher(radius=2)
    prefetcher.follow("volume", 5, 20, render, start)
    _wait_for(lambda: started, "the first embedding")
    prefetcher.follow("volume", 9, 20, render, start)  # moved up: go on upwards first
    prefetcher.follow("volume", 9, 20, render, start)  # the same slice again: no new plan
    gate.set()
    _wait_for(lambda: len(started) == 6, "the second plan")
    assert started == [5, 9, 10, 8, 11, 7]  # nothing more of the first plan after the move

    prefetcher.close()
    _wait_for(lambda: not _worker_threads(), "the worker to stop")
    prefetcher.follow("volume", 3, 20, render, start)  # a closed session starts nothing
    time.sleep(0.1)
    assert len(started) == 6 and not _worker_threads()


def _blank_slice(index: int) -> SliceImage:
    pixels = np.zeros((4, 4), np.float32)
    return SliceImage(pixels=pixels, display=pixels.astype(np.uint8), is_hu=False)


def test_a_failing_embedding_ends_the_plan_quietly() -> None:
    calls: list[int] = []

    def start(image: SliceImage) -> Future:
        calls.append(1)
        raise RuntimeError("encoder failed")

    prefetcher = NeighbourPrefetcher(radius=3)
    prefetcher.follow("volume", 2, 10, _blank_slice, start)
    _wait_for(lambda: calls, "the first embedding")
    prefetcher.close()
    _wait_for(lambda: not _worker_threads(), "the worker to stop")
    assert calls == [1]


@pytest.fixture
def sam_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SamAppBackend:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    # A cache size no other test uses: this test gets its own shared model and cache.
    settings = tiny_sam_settings(tmp_path / "hf", SPINALSAM_EMBED_CACHE_MB="77")
    backend = load_backend(settings)
    assert isinstance(backend, SamAppBackend), backend.info.reason
    return backend


def test_a_prefetched_neighbour_is_clicked_without_running_the_encoder(
    sam_backend: SamAppBackend, tmp_path: Path
) -> None:
    encoder_runs: list[int] = []
    model = sam_backend.sam.loader.get().model
    hook = model.sam.image_encoder.register_forward_hook(lambda *_: encoder_runs.append(1))
    session = Session(sam_backend, workdir=tmp_path / "work", budget=Budget(prefetch_radius=2))
    try:
        path = write_nifti(tmp_path / "ct.nii.gz", synthetic_ct((9, 40, 48)))
        session.open_files([path])
        session.apply([ops.GotoSlice(index=4)])
        session.prefetch()  # what the UI does whenever it shows a slice
        _wait_for(lambda: len(encoder_runs) == 5, "slices 2-6 to be embedded")
        session.apply([ops.GotoSlice(index=5)])
        session.prefetch()  # a step up: 5's neighbours 3-7, of which only 7 is new
        _wait_for(lambda: len(encoder_runs) == 6, "slice 7 to be embedded")
        time.sleep(0.2)
        assert len(encoder_runs) == 6  # 2-6 were not embedded twice
        results = session.apply([ops.ClickImage(x=0.5, y=0.5, mode="positive")])
        results += session.apply([ops.Segment(prompt="points")])
        assert all(r.ok for r in results), [r.message for r in results]
        assert len(encoder_runs) == 6  # the click on slice 5 found its embedding ready
    finally:
        hook.remove()
        session.close()
    _wait_for(lambda: not _worker_threads(), "the worker to stop on close")


def test_a_backend_that_embeds_nothing_ahead_is_asked_once() -> None:
    calls: list[int] = []

    def start(image: SliceImage) -> None:
        calls.append(1)  # e.g. the classical default, or SAM with a zero-byte cache

    prefetcher = NeighbourPrefetcher(radius=3)
    prefetcher.follow("volume", 2, 10, _blank_slice, start)
    _wait_for(lambda: calls, "the first request")
    time.sleep(0.1)
    prefetcher.follow("volume", 3, 10, _blank_slice, start)
    time.sleep(0.1)
    assert calls == [1]
    prefetcher.close()
