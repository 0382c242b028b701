"""The learned default segmenter: crop geometry, prompt handling, committed weights, no torch.

Geometry is checked with stand-in networks whose answer is known (e.g. "the box channel"), so a
wrong crop, paste or channel shows up as a wrong mask; the committed weights are checked on real
slices from ../shared/data (skipped when absent) and on the synthetic phantom.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spinalsam.metrics import dice
from spinalsam.phantom import make_spine_phantom
from spinalsam.segmenters.base import Prompt, SegmenterError, SliceImage
from spinalsam.segmenters.crops import box_frame, encode, gray_of, paste, point_frame
from spinalsam.segmenters.learned import (
    DEFAULT_WEIGHTS,
    LearnedConfig,
    LearnedSegmenter,
    boxed_pieces,
    clicked_pieces,
    describe_weights,
    predict_mask,
)
from spinalsam.segmenters.morphology import mask_bounds
from spinalsam.segmenters.registry import create_segmenter
from spinalsam.windowing import render

CONFIG = LearnedConfig()
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _image(pixels: np.ndarray, is_hu: bool = True, spacing=(1.0, 1.0)) -> SliceImage:
    pixels = pixels.astype(np.float32)
    return SliceImage(pixels, render(pixels, is_hu), is_hu, spacing)


def _channel(index: int):
    """A stand-in network answering "inside" wherever input channel `index` is set."""

    def run(inputs: np.ndarray) -> np.ndarray:
        return (inputs[:, index : index + 1] > 0.5).astype(np.float32) * 2 - 1

    return run


def test_box_crop_is_square_in_millimetres() -> None:
    frame = box_frame(np.array([10, 20, 49, 29]), (0.5, 2.0), context=1.5)
    half_x, half_y = np.diag(frame.matrix)
    assert half_x * 0.5 == pytest.approx(half_y * 2.0)  # same mm both ways
    assert half_x * 2 * 0.5 == pytest.approx(1.5 * 40 * 0.5)  # context × the longer side (mm)


def test_encode_then_paste_returns_the_slice_mask() -> None:
    mask = np.zeros((200, 300), dtype=bool)
    mask[60:120, 100:190] = True
    frame = point_frame((140, 90), 160, None)
    inputs = encode(np.zeros(mask.shape), frame, 96, prior=mask)
    logits, region = paste(inputs[4] * 2 - 1, frame, mask.shape)
    back = np.zeros_like(mask)
    back[region] = logits > 0
    assert dice(back, mask) > 0.97


def test_clicks_land_where_they_were_made() -> None:
    frame = point_frame((50, 60), 80, (0.8, 0.8))
    inputs = encode(np.zeros((128, 128)), frame, 96, positive=np.array([[70.0, 40.0]]))
    v, u = np.unravel_index(np.argmax(inputs[2]), inputs[2].shape)
    assert frame.to_crop(np.array([[70.0, 40.0]]), 96)[0] == pytest.approx([u, v], abs=0.6)
    assert inputs[3].max() == 0  # no negative click given


def test_hu_are_read_through_the_bone_window_whatever_the_display() -> None:
    hu = np.array([[-1000.0, 300.0, 3000.0]])
    assert gray_of(hu, True)[0].tolist() == pytest.approx([0.0, 127.5, 255.0])
    assert gray_of(np.array([[12.0, 300.0]]), False).tolist() == [[12.0, 255.0]]


def test_a_box_prompt_answers_inside_its_box() -> None:
    image = _image(np.zeros((128, 160)))
    mask = predict_mask(_channel(1), image, Prompt(box=np.array([30, 40, 89, 79])), CONFIG)
    expected = np.zeros(mask.shape, dtype=bool)
    expected[40:80, 30:90] = True
    assert dice(mask, expected) > 0.97


def test_a_prior_alone_is_read_in_its_own_box() -> None:
    prior = np.zeros((100, 100), dtype=bool)
    prior[20:50, 30:70] = True
    mask = predict_mask(_channel(4), _image(np.zeros((100, 100))), Prompt(mask_input=prior), CONFIG)
    assert dice(mask, prior) > 0.97


def test_a_box_crop_has_a_floor_in_slice_pixels() -> None:
    """A small box on a coarse slice is read in a crop at least `min_pixels` slice pixels
    across (geometric mean of unequal pixels), not magnified past what training showed."""
    box = np.array([10, 20, 17, 25])  # 8 × 6 px
    assert box_frame(box, (3.0, 3.0), 1.5).matrix[0, 0] * 2 == pytest.approx(12.0)
    frame = box_frame(box, (3.0, 3.0), 1.5, min_pixels=64 / 3)
    assert frame.matrix[0, 0] * 2 == pytest.approx(64 / 3)
    anisotropic = box_frame(box, (1.0, 4.0), 1.5, min_pixels=30)  # 30 px of 2 mm = 60 mm
    assert anisotropic.matrix[0, 0] * 2 * 1.0 == pytest.approx(60.0)
    assert box_frame(np.array([0, 0, 99, 99]), (3.0, 3.0), 1.5, min_pixels=30).matrix[
        0, 0
    ] * 2 == pytest.approx(150.0)  # a large box: the context rules


def test_a_small_box_on_a_coarse_slice_is_read_with_the_floor() -> None:
    """The wiring: a prior's small box on a 3 mm slice, read by a stand-in answering
    "inside" everywhere, answers the whole crop: size / max_magnification pixels across."""
    prior = np.zeros((100, 100), dtype=bool)
    prior[45:49, 45:49] = True  # 4 × 4 px: 1.5 × that would be a 6 px crop
    image = _image(np.zeros((100, 100)), spacing=(3.0, 3.0))
    mask = predict_mask(lambda x: np.ones_like(x[:, :1]), image, Prompt(mask_input=prior), CONFIG)
    x0, _, x1, _ = mask_bounds(mask)
    assert x1 - x0 + 1 >= CONFIG.size / CONFIG.max_magnification - 1


def test_boxed_pieces_drop_what_lies_mostly_outside_the_box() -> None:
    mask = np.zeros((60, 60), dtype=bool)
    mask[10:30, 10:30] = True  # the boxed object
    mask[10:30, 36:40] = True  # straddles the box's right edge (x 38): half inside, kept
    mask[40:50, 10:20] = True  # below the box: dropped
    out = boxed_pieces(mask, np.array([5, 5, 37, 32]))
    expected = mask.copy()
    expected[40:50, 10:20] = False
    assert np.array_equal(out, expected)
    assert np.array_equal(boxed_pieces(mask[:35], np.array([50, 50, 55, 55])), mask[:35] & False)


def test_a_drawn_box_answers_the_pieces_inside_it_only() -> None:
    """A stand-in answering the bright pixels sees a bright neighbour in the crop's context
    (outside the box, not touching the object): the answer is the boxed object alone; a prior
    without a box keeps every piece its crop reads."""
    pixels = np.zeros((128, 128))
    pixels[50:70, 50:70] = 255
    pixels[52:68, 73:77] = 255  # a neighbour 3 px right of the object, just outside the box
    image = _image(pixels, is_hu=False, spacing=(1.0, 1.0))
    mask = predict_mask(_channel(0), image, Prompt(box=np.array([48, 48, 71, 71])), CONFIG)
    assert not mask[60, 74]
    assert dice(mask, (pixels > 0) & (np.arange(128) < 72)[None, :]) > 0.97
    prior = np.zeros((128, 128), dtype=bool)
    prior[50:70, 50:70] = True
    kept = predict_mask(_channel(0), image, Prompt(mask_input=prior), CONFIG)
    assert kept[60, 74]  # the neighbour, read in the prior's crop, is not dropped


def test_a_click_crop_grows_until_the_object_fits() -> None:
    """A 300 px object around the click: the first 0.3 × 400 px crop is too small."""
    pixels = np.zeros((400, 400))
    pixels[50:350, 50:350] = 255
    image = _image(pixels, is_hu=False, spacing=None)
    prompt = Prompt(points=np.array([[200, 200]]), labels=np.array([1]))
    mask = predict_mask(_channel(0), image, prompt, CONFIG)
    assert dice(mask, pixels > 0) > 0.95


def test_a_click_answers_only_the_clicked_piece() -> None:
    """Two bright blocks 6 px apart (vertebrae across a thin disc): the click's first read
    covers both, so its box read answers both; the click names one, and only that one comes
    back. The box of both is read through a 64² crop, ~4 slice pixels per crop pixel, so the
    outline is a pixel or two off (Dice 0.965 measured, hence 0.96)."""
    pixels = np.zeros((400, 400))
    pixels[150:250, 100:190] = 255
    pixels[150:250, 196:286] = 255
    image = _image(pixels, is_hu=False, spacing=None)
    prompt = Prompt(points=np.array([[145, 200]]), labels=np.array([1]))
    mask = predict_mask(_channel(0), image, prompt, CONFIG)
    clicked = np.zeros_like(mask)
    clicked[150:250, 100:190] = True
    assert dice(mask, clicked) > 0.96 and not mask[:, 193:].any()


def _speck_network(inputs: np.ndarray) -> np.ndarray:
    """A stand-in for the network inside a large object: where its crop shows no edge (no dark
    pixel) it answers a speck at the click, a few crop pixels whatever the crop's size."""
    intensity, click = inputs[:, 0:1], inputs[:, 2:3]
    edged = (intensity < 0.5).any(axis=(1, 2, 3), keepdims=True)
    return np.where(edged, intensity > 0.5, click > 0.5).astype(np.float32) * 2 - 1


@pytest.mark.parametrize("side", [300, 700])
@pytest.mark.parametrize("where", [(0.5, 0.5), (0.3, 0.65)])
def test_a_click_on_a_render_without_spacing_is_read_at_the_objects_scale(
    side: int, where: tuple[float, float]
) -> None:
    """A render where the object fills most of the picture (a zoomed PNG): a crop of a fixed
    fraction of the picture lies inside it and answers a speck. The scan reads growing crops
    until two neighbouring sizes answer alike; a speck's size follows the crop, the object's
    does not. Two picture sizes, a click at the centre and one off it; the object spans 60 %
    of the picture (r1's zoomed-in axial slices: about 65 %). A click far off-centre in an
    object filling ~90 % of the picture is not found: no crop centred on the click holds the
    whole object before the largest size (docs/learned.md)."""
    pixels = np.zeros((side, side))
    edge = side // 5
    pixels[edge:-edge, edge:-edge] = 255
    image = _image(pixels, is_hu=False, spacing=None)
    click = Prompt(points=np.array([[where[0] * side, where[1] * side]]), labels=[1])
    assert dice(predict_mask(_speck_network, image, click, CONFIG), pixels > 0) > 0.95
    fixed = LearnedConfig(scan_min=CONFIG.point_fraction, scan_max=CONFIG.point_fraction)
    one_crop = predict_mask(_speck_network, image, click, fixed)  # a speck or a part
    assert dice(one_crop, pixels > 0) < 0.7


@pytest.mark.parametrize("click", [(108, 158), (186, 243), (290, 200)])
def test_a_click_anywhere_in_a_piece_answers_that_piece(click: tuple[int, int]) -> None:
    """The same two blocks, clicked where users also click: near a corner, 4 px from the gap,
    and 4 px outside the right block (the nearest piece). Only the clicked block comes back;
    its outline is resampled through the 64² crop (Dice 0.968–0.98 measured, hence 0.96)."""
    pixels = np.zeros((400, 400))
    pixels[150:250, 100:190] = 255
    pixels[150:250, 196:286] = 255
    image = _image(pixels, is_hu=False, spacing=None)
    mask = predict_mask(_channel(0), image, Prompt(points=np.array([click]), labels=[1]), CONFIG)
    ours, other = (slice(None, 193), slice(193, None))[:: 1 if click[0] < 193 else -1]
    clicked = np.zeros_like(mask)
    clicked[:, ours] = pixels[:, ours] > 0
    assert dice(mask, clicked) > 0.96 and not mask[:, other].any()


def test_clicked_pieces_keep_each_clicked_piece_or_the_nearest() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:15, 5:15] = mask[5:15, 30:40] = mask[25:35, 45:55] = True
    left, middle, right = (mask & (np.arange(60) < c)[None] for c in (20, 42, 60))
    middle, right = middle & ~left, right & ~middle & ~left
    assert np.array_equal(clicked_pieces(mask, np.array([[8.0, 8.0]])), left)
    assert np.array_equal(clicked_pieces(mask, np.array([[27.0, 10.0]])), middle)  # in the gap
    both = clicked_pieces(mask, np.array([[8.0, 8.0], [50.0, 30.0]]))
    assert np.array_equal(both, left | right)
    assert not clicked_pieces(np.zeros_like(mask), np.array([[8.0, 8.0]])).any()


def test_a_prompt_without_a_positive_click_or_box_is_refused() -> None:
    prompt = Prompt(points=np.array([[5, 5]]), labels=np.array([0]))
    with pytest.raises(SegmenterError):
        predict_mask(_channel(1), _image(np.zeros((32, 32))), prompt, CONFIG)


def test_the_learned_backend_is_registered_with_its_weights() -> None:
    assert isinstance(create_segmenter("learned"), LearnedSegmenter)
    assert DEFAULT_WEIGHTS.stat().st_size <= 10 * 2**20
    assert DEFAULT_WEIGHTS.with_suffix(".json").is_file()


def test_missing_weights_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match="weights are missing"):
        LearnedSegmenter(tmp_path / "none.onnx")


def test_inference_never_imports_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "from spinalsam.segmenters.registry import create_segmenter\n"
        "from spinalsam.segmenters.base import Prompt, SliceImage\n"
        "s = create_segmenter('learned')\n"
        "px = np.zeros((64, 64), np.float32)\n"
        "s.set_image(SliceImage(px, px.astype(np.uint8), True, (1.0, 1.0)))\n"
        "s.predict(Prompt(box=np.array([10, 10, 40, 40])))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _phantom_slice() -> tuple[SliceImage, np.ndarray]:
    volume, labels = make_spine_phantom()
    z = 6  # the middle of the first vertebra
    return _image(volume[z], spacing=(0.8, 0.8)), labels[z] == 1


def test_weights_segment_the_phantom_from_a_box_and_a_click() -> None:
    image, target = _phantom_slice()
    segmenter = create_segmenter("learned")
    segmenter.set_image(image)
    ys, xs = np.nonzero(target)
    box = np.array([xs.min() - 3, ys.min() - 3, xs.max() + 3, ys.max() + 3])
    assert dice(segmenter.predict(Prompt(box=box)), target) > 0.95  # measured 0.979
    click = Prompt(points=np.array([[int(xs.mean()), int(ys.mean())]]), labels=np.array([1]))
    assert dice(segmenter.predict(click), target) > 0.88  # measured 0.923


def test_mirrored_slices_get_the_mirrored_mask_and_jittered_boxes_hold() -> None:
    """Flip averaging makes the answer independent of how a scan is stored or shown; a box drawn
    a few pixels off (as users draw) keeps the object. The box is off-centre on purpose."""
    image, target = _phantom_slice()
    h, w = target.shape
    ys, xs = np.nonzero(target)
    box = np.array([xs.min() - 3, ys.min() - 3, xs.max() + 3, ys.max() + 3])
    segmenter = create_segmenter("learned")
    segmenter.set_image(image)
    answer = segmenter.predict(Prompt(box=box))
    mirrors = [
        (lambda a: a[:, ::-1], np.array([w - 1 - box[2], box[1], w - 1 - box[0], box[3]])),
        (lambda a: a[::-1], np.array([box[0], h - 1 - box[3], box[2], h - 1 - box[1]])),
    ]
    for flip, flipped_box in mirrors:
        segmenter.set_image(_image(np.ascontiguousarray(flip(image.pixels)), spacing=(0.8, 0.8)))
        assert dice(flip(segmenter.predict(Prompt(box=flipped_box))), answer) > 0.99  # 1.000
    segmenter.set_image(image)
    rng = np.random.default_rng(0)
    jittered = [box + rng.integers(-5, 6, 4) for _ in range(6)]
    assert min(dice(segmenter.predict(Prompt(box=b)), target) for b in jittered) > 0.94  # 0.962


def test_a_coarse_slice_read_with_the_floor_mirrors_exactly() -> None:
    """The phantom at 4.8 mm (every 6th pixel): the box's crop is set by the floor, and a
    mirrored slice still gets exactly the mirrored mask."""
    image, target = _phantom_slice()
    pixels, target = image.pixels[::6, ::6], target[::6, ::6]
    h, w = target.shape
    ys, xs = np.nonzero(target)
    box = np.array([xs.min() - 1, ys.min() - 1, xs.max() + 2, ys.max() + 1])  # off-centre
    segmenter = create_segmenter("learned")
    segmenter.set_image(_image(np.ascontiguousarray(pixels), spacing=(4.8, 4.8)))
    answer = segmenter.predict(Prompt(box=box))
    assert dice(answer, target) > 0.8
    mirrors = [
        (lambda a: a[:, ::-1], np.array([w - 1 - box[2], box[1], w - 1 - box[0], box[3]])),
        (lambda a: a[::-1], np.array([box[0], h - 1 - box[3], box[2], h - 1 - box[1]])),
    ]
    for flip, flipped_box in mirrors:
        segmenter.set_image(_image(np.ascontiguousarray(flip(pixels)), spacing=(4.8, 4.8)))
        assert np.array_equal(flip(segmenter.predict(Prompt(box=flipped_box))), answer)


@pytest.mark.parametrize("where", [(35, 60), (50, 50), (70, 25)])  # percentiles of x, y
def test_a_click_on_a_mirrored_slice_gets_the_mirrored_mask(where: tuple[int, int]) -> None:
    """A click is read twice (how large is the object, then its box): unless both reads are
    independent of mirroring, the first read's box, and so the answer, depends on the slice's
    storage. Clicks off-centre, as users click, and at the centre."""
    image, target = _phantom_slice()
    h, w = target.shape
    ys, xs = np.nonzero(target)
    x, y = int(np.percentile(xs, where[0])), int(np.percentile(ys, where[1]))
    segmenter = create_segmenter("learned")
    segmenter.set_image(image)
    answer = segmenter.predict(Prompt(points=np.array([[x, y]]), labels=np.array([1])))
    mirrors = [(lambda a: a[:, ::-1], [w - 1 - x, y]), (lambda a: a[::-1], [x, h - 1 - y])]
    for flip, click in mirrors:
        segmenter.set_image(_image(np.ascontiguousarray(flip(image.pixels)), spacing=(0.8, 0.8)))
        mirrored = segmenter.predict(Prompt(points=np.array([click]), labels=np.array([1])))
        assert np.array_equal(flip(mirrored), answer)


@pytest.mark.parametrize("where", [(35, 60), (70, 25)])
def test_a_click_on_a_mirrored_render_without_spacing_gets_the_mirrored_mask(
    where: tuple[int, int],
) -> None:
    """The same for an 8-bit render without spacing, whose click is read at several crop
    sizes: the size chosen must not depend on how the picture is stored."""
    hu, target = _phantom_slice()
    pixels = render(hu.pixels, True).astype(np.float32)
    h, w = target.shape
    ys, xs = np.nonzero(target)
    x, y = int(np.percentile(xs, where[0])), int(np.percentile(ys, where[1]))
    segmenter = create_segmenter("learned")
    segmenter.set_image(_image(pixels, is_hu=False, spacing=None))
    answer = segmenter.predict(Prompt(points=np.array([[x, y]]), labels=np.array([1])))
    assert dice(answer, target) > 0.93  # measured 0.967 / 0.971
    mirrors = [(lambda a: a[:, ::-1], [w - 1 - x, y]), (lambda a: a[::-1], [x, h - 1 - y])]
    for flip, click in mirrors:
        segmenter.set_image(_image(np.ascontiguousarray(flip(pixels)), False, None))
        mirrored = segmenter.predict(Prompt(points=np.array([click]), labels=np.array([1])))
        assert np.array_equal(flip(mirrored), answer)


@pytest.mark.skipif(not (DATA / "tptbox").is_dir(), reason="../shared/data/tptbox is absent")
def test_weights_on_a_real_sagittal_slice_and_its_flip() -> None:
    import SimpleITK as sitk

    ct = sitk.DICOMOrient(sitk.ReadImage(str(DATA / "tptbox" / "sub-ct_label-22_ct.nii.gz")), "LPS")
    seg = sitk.Resample(
        sitk.ReadImage(str(DATA / "tptbox" / "sub-ct_seg-vert_label-22_msk.nii.gz")),
        ct,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
    )
    hu, labels = sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(seg)
    x = hu.shape[2] // 2
    pixels, target = hu[::-1, :, x].astype(np.float32), labels[::-1, :, x] == 22
    segmenter = create_segmenter("learned")
    scores = []
    for flip in (lambda a: a, lambda a: a[::-1]):
        image, goal = _image(np.ascontiguousarray(flip(pixels)), spacing=(1.5, 1.5)), flip(target)
        segmenter.set_image(image)
        ys, xs = np.nonzero(goal)
        box = np.array([xs.min() - 2, ys.min() - 2, xs.max() + 2, ys.max() + 2])
        scores.append(dice(segmenter.predict(Prompt(box=box)), goal))
    # The shipped weights saw tptbox in training (its held-out numbers, from a model trained
    # without it, are in docs/learned.md); these bounds guard against regressions.
    assert min(scores) > 0.7
    assert abs(scores[0] - scores[1]) < 0.05


def test_a_session_state_copy_shares_the_model_but_not_the_slice() -> None:
    """Gradio deep-copies every new session's state; the ONNX session cannot be pickled."""
    original = LearnedSegmenter()
    original.set_image(
        SliceImage(np.zeros((32, 32), np.float32), np.zeros((32, 32), np.uint8), is_hu=True)
    )
    twin = copy.deepcopy(original)
    assert twin._session is original._session and twin._image is None


def test_check_parameters_verifies_the_weights_hash(tmp_path: Path) -> None:
    assert "(matches the recorded" in describe_weights()
    broken = tmp_path / "default.onnx"
    broken.write_bytes(b"not the weights")
    (tmp_path / "default.json").write_text('{"onnx_sha256": "abc"}')
    assert "does not match" in describe_weights(broken)
