"""The budget's display grid and per-call segmentation bound (issue 12)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from spinalsam.limits import DEFAULT_BUDGET
from spinalsam.planes import display_scale
from spinalsam.segmenters.base import BackendInfo, Prompt, SliceImage
from spinalsam.segmenters.bounded import BoundedSegmenter
from spinalsam.segmenters.registry import create_segmenter


@pytest.mark.parametrize(
    ("shape", "spacing", "expected"),
    [
        ((64, 64), None, (1.0, 1.0)),
        ((4, 64), (1.0, 3.0), (1.0, 3.0)),  # thick slices stretched to square pixels
        ((4, 64), (1e-5, 1.0), None),  # 100000:1 — bounded by the grid
        ((4096, 4096), None, (0.5, 0.5)),  # a huge slice is shown downscaled
        ((1, 1), (0.01, 50.0), None),
    ],
)
def test_display_grid_is_bounded(shape, spacing, expected) -> None:
    fx, fy = display_scale(shape, spacing, 2048)
    rows, cols = shape
    assert 1 <= round(rows * fy) <= 2048 and 1 <= round(cols * fx) <= 2048
    if expected is not None:
        assert (fx, fy) == pytest.approx(expected)
    if spacing is not None:  # pixels stay square in millimetres
        assert (
            spacing[0] / fx == pytest.approx(spacing[1] / fy, rel=0.02)
            or min(round(rows * fy), round(cols * fx)) == 1
        )


class _Recorder:
    info = BackendInfo("recorder", "records what it was given")

    def set_image(self, image: SliceImage) -> None:
        self.image = image

    def predict(self, prompt: Prompt) -> np.ndarray:
        self.prompt = prompt
        mask = np.zeros(self.image.shape, bool)
        x0, y0, x1, y1 = prompt.box
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
        return mask


def _slice(rows: int, cols: int) -> SliceImage:
    pixels = np.full((rows, cols), -1000, np.float32)
    return SliceImage(pixels, np.zeros((rows, cols), np.uint8), True, (0.5, 0.5))


def test_large_slice_is_segmented_on_a_bounded_grid_and_mapped_back() -> None:
    inner = _Recorder()
    seg = BoundedSegmenter(inner, max_pixels=256 * 256)
    seg.set_image(_slice(1024, 2048))
    mask = seg.predict(Prompt(box=np.array([100, 200, 899, 599])))
    assert inner.image.pixels.size <= 256 * 256 and inner.image.spacing[0] == pytest.approx(
        0.5 * 2048 / inner.image.shape[1]
    )
    assert mask.shape == (1024, 2048)
    truth = np.zeros_like(mask)
    truth[200:600, 100:900] = True
    assert (mask & truth).sum() / (mask | truth).sum() > 0.97
    assert seg.info.name == "recorder"


def test_small_slice_passes_through_unchanged() -> None:
    inner = _Recorder()
    seg = BoundedSegmenter(inner, max_pixels=DEFAULT_BUDGET.max_segment_pixels)
    image = _slice(64, 64)
    seg.set_image(image)
    assert inner.image is image
    prompt = Prompt(box=np.array([1, 2, 3, 4]))
    seg.predict(prompt)
    assert inner.prompt is prompt


def test_classical_segmenter_finds_a_disc_on_a_huge_slice() -> None:
    """Same millimetres on fewer pixels: the default segmenter still finds the object."""
    rows = cols = 2048
    yy, xx = np.mgrid[:rows, :cols]
    disc = (yy - 1000) ** 2 + (xx - 900) ** 2 < 300**2
    pixels = np.where(disc, 700.0, 40.0).astype(np.float32)
    display = np.clip((pixels + 160) / 1400 * 255, 0, 255).astype(np.uint8)
    seg = BoundedSegmenter(create_segmenter("default"), max_pixels=512 * 512)
    seg.set_image(SliceImage(pixels, display, True, (0.1, 0.1)))
    mask = seg.predict(Prompt(points=np.array([[900, 1000]]), labels=np.array([1])))
    assert mask.shape == (rows, cols)
    assert (mask & disc).sum() / (mask | disc).sum() > 0.9


def test_wrapper_survives_the_deep_copy_gradio_makes_of_new_sessions() -> None:
    seg = BoundedSegmenter(_Recorder(), max_pixels=100)
    clone = copy.deepcopy(seg)
    assert clone.info.name == "recorder" and clone.max_pixels == 100
