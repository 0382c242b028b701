"""The embedded classical segmenter on synthetic vertebrae (8-bit and HU) and on real slices."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image, disk, h_maxima

from spinalsam.metrics import dice
from spinalsam.segmenters import Prompt, Segmenter, SegmenterError, SliceImage
from spinalsam.segmenters.classical import BONE_WINDOW_HU, ClassicalSegmenter, bone_window
from spinalsam.segmenters.classical.bays import fill_bays
from spinalsam.segmenters.classical.estimates import ray_extent, shell_extent
from spinalsam.segmenters.classical.necks import neck_region
from spinalsam.segmenters.classical.neighbours import (
    drop_edge_crossers,
    entrants,
)
from spinalsam.segmenters.morphology import (
    NO_WALLS,
    box_overlap,
    close_disk,
    components_touching,
    convex_hull,
    dilate_disk,
    dilate_square,
    erode_cross,
    fill_holes,
    regional_h_maxima,
)
from spinalsam.segmenters.registry import BACKENDS, create_segmenter

# Grey levels of the real bone-window renders (shared/data): soft tissue ≈ 112,
# cancellous bone a few levels brighter, cortex 150–250.
SOFT, CANCELLOUS, CORTEX, NOISE = 112.0, 119.0, 210.0, 5.0


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _render(solid: np.ndarray, shell: np.ndarray, seed: int) -> np.ndarray:
    """Soft tissue, cancellous interior with bright trabecular specks, cortical shell, noise."""
    rng = np.random.default_rng(seed)
    img = np.full(solid.shape, SOFT, dtype=np.float64)
    img[solid] = CANCELLOUS
    specks = solid & (rng.random(solid.shape) < 0.03)
    img[specks] = CANCELLOUS + 40.0
    img[shell] = CORTEX
    img = ndi.gaussian_filter(img, 1.0) + rng.normal(0.0, NOISE, solid.shape)
    return np.clip(img, 0, 255).astype(np.float32)


def axial_phantom(seed: int = 0, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Vertebral body + posterior arch around an open canal + transverse processes, and a
    neighbouring bony blob (a rib head) close to the box; returns (image 0..255, target mask)."""
    shape = (size, size)
    c = size / 2
    body = _ellipse(shape, c - 60, c, 55, 65)
    canal = _ellipse(shape, c + 25, c, 26, 30)
    arch = _ellipse(shape, c + 25, c, 38, 44) & ~canal
    yy, xx = np.ogrid[:size, :size]
    arch &= ~((yy > c + 45) & (np.abs(xx - c) < 10))  # open at the back, as on many slices
    processes = (
        (np.abs(yy - (c + 20)) < 7) & (np.abs(xx - c) < 95) & ~_ellipse(shape, c + 25, c, 38, 44)
    )
    target = body | arch | processes
    shell = target & ~ndi.binary_erosion(target, iterations=4)
    rib = _ellipse(shape, c - 60, c + 120, 22, 22)
    shell |= rib & ~ndi.binary_erosion(rib, iterations=4)
    return _render(target | rib, shell, seed), target


def _stacked_bodies(size: int, pitch: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Three 90 px tall bodies `pitch` px apart (discs of pitch − 90 px): (bodies, solid, shell)."""
    bodies = []
    for k in (-1, 0, 1):
        body = np.zeros((size, size), dtype=bool)
        cy = size / 2 + k * pitch
        body[int(cy - 45) : int(cy + 45), size // 2 - 60 : size // 2 + 60] = True
        bodies.append(ndi.binary_opening(body, iterations=6))  # rounded corners
    solid = np.logical_or.reduce(bodies)
    return bodies, solid, solid & ~ndi.binary_erosion(solid, iterations=4)


def sagittal_phantom(seed: int = 0, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Three stacked vertebral bodies with 10 px discs; the target is the middle one."""
    bodies, solid, shell = _stacked_bodies(size, 100)
    return _render(solid, shell, seed), bodies[1]


def bridged_sagittal_phantom(seed: int = 0, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Three stacked bodies whose 6 px discs are bridged by bony spurs at front and back, so
    the bright bone of all three is one blob; the target is the middle body."""
    bodies, solid, shell = _stacked_bodies(size, 96)
    for k in (-1, 1):
        cy = int(size / 2 + k * 48)
        for x in (size // 2 - 58, size // 2 + 54):
            shell[cy - 8 : cy + 8, x : x + 4] = True
    return _render(solid | shell, shell, seed), bodies[1]


def grey_slice(img: np.ndarray) -> SliceImage:
    return SliceImage(pixels=img, display=img.astype(np.uint8), is_hu=False)


def hu_slice(img: np.ndarray, spacing: tuple[float, float] | None = None) -> SliceImage:
    """The same picture in Hounsfield units, as a DICOM slice would arrive."""
    lo, hi = BONE_WINDOW_HU
    hu = (img / 255.0 * (hi - lo) + lo).astype(np.float32)
    return SliceImage(pixels=hu, display=bone_window(hu), is_hu=True, spacing=spacing)


def box_of(mask: np.ndarray, margin: int = 5) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min() - margin, ys.min() - margin, xs.max() + margin, ys.max() + margin])


def centre_of(mask: np.ndarray) -> np.ndarray:
    depth = ndi.distance_transform_edt(mask)
    y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return np.array([[x, y]])


def segment(image: SliceImage, prompt: Prompt) -> np.ndarray:
    seg = ClassicalSegmenter()
    seg.set_image(image)
    mask = seg.predict(prompt)
    assert mask.dtype == bool and mask.shape == image.shape
    return mask


POSITIVE = np.ones(1, dtype=np.int64)
PHANTOMS = {"axial": axial_phantom, "sagittal": sagittal_phantom}


@pytest.mark.parametrize("view", sorted(PHANTOMS))
@pytest.mark.parametrize("hu", [False, True], ids=["8bit", "hu"])
def test_box_prompt_on_phantom(view: str, hu: bool) -> None:
    img, target = PHANTOMS[view]()
    image = hu_slice(img, spacing=(0.25, 0.25)) if hu else grey_slice(img)
    mask = segment(image, Prompt(box=box_of(target)))
    assert dice(mask, target) >= 0.9


@pytest.mark.parametrize("view", sorted(PHANTOMS))
@pytest.mark.parametrize("hu", [False, True], ids=["8bit", "hu"])
def test_point_prompt_on_phantom(view: str, hu: bool) -> None:
    img, target = PHANTOMS[view](seed=1)
    image = hu_slice(img) if hu else grey_slice(img)
    mask = segment(image, Prompt(points=centre_of(target), labels=POSITIVE))
    assert dice(mask, target) >= 0.85


def test_point_does_not_leak_into_neighbouring_vertebrae() -> None:
    img, target = sagittal_phantom(seed=2)
    mask = segment(grey_slice(img), Prompt(points=centre_of(target), labels=POSITIVE))
    assert (mask & ~ndi.binary_dilation(target, iterations=6)).sum() < 0.02 * target.sum()


def test_point_keeps_one_body_when_bone_bridges_the_discs() -> None:
    """The endplates wall the clicked body off even where spurs join the bodies' bone."""
    img, target = bridged_sagittal_phantom(seed=6)
    mask = segment(grey_slice(img), Prompt(points=centre_of(target), labels=POSITIVE))
    assert dice(mask, target) >= 0.9


def test_ray_extent_stops_at_the_discs_that_spurs_bridge() -> None:
    """Rays leave the clicked body through its endplates into the discs; the few that run
    along a spur into a neighbour are outvoted by their neighbouring rays."""
    img, target = bridged_sagittal_phantom(seed=6)
    seg = ClassicalSegmenter()
    seg.set_image(grey_slice(img))
    x, y = centre_of(target)[0]
    extent = ray_extent(seg.maps, int(y), int(x))
    assert np.abs(np.subtract(extent, box_of(target, margin=0))).max() <= 6


def end_to_end_pieces_phantom(seed: int = 0, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Two thin, all-cortex bars end to end across a 4 px dark joint space, as articular
    processes meet in a sagittal cut; the target is the upper bar."""
    upper = np.zeros((size, size), dtype=bool)
    upper[40:126, 120:132] = True
    lower = np.zeros_like(upper)
    lower[130:216, 120:132] = True
    return _render(upper | lower, upper | lower, seed), upper


def test_cortex_shell_estimate_stops_at_a_dark_joint_space() -> None:
    """Unclosed, the cortex of pieces that meet across a joint space is two shells."""
    img, target = end_to_end_pieces_phantom()
    seg = ClassicalSegmenter()
    seg.set_image(grey_slice(img))
    whole = (slice(0, img.shape[0]), slice(0, img.shape[1]))
    shell = shell_extent(seg.maps, whole, 80, 126)
    assert shell is not None
    assert not shell[130:].any()  # nothing of the lower piece
    assert (shell & target).sum() > 0.95 * target.sum()
    assert shell_extent(seg.maps, whole, 80, 60) is None  # soft tissue: no shell


def test_box_keeps_a_vertebra_cut_off_by_the_image_border() -> None:
    """A box clipped at the image border holds an object the image cuts off: bone touching
    that side did not enter from outside the box, so it is kept, not taken for a neighbour."""
    img, target = sagittal_phantom(seed=5)
    ys, _ = np.nonzero(target)
    top = int(ys.min() + (ys.max() - ys.min()) * 0.4)  # the image starts inside the body
    cut_img, cut_target = img[top:], target[top:]
    mask = segment(grey_slice(cut_img), Prompt(box=box_of(cut_target).clip(min=0)))
    assert dice(mask, cut_target) >= 0.9


def test_edge_crossers_are_judged_one_by_one() -> None:
    """A neighbour's endplate entering at the top is dropped even though the object's own bone
    crosses the bottom edge: that piece reaches across the box, the endplate only its margin."""
    bone = np.zeros((100, 80), dtype=bool)
    bone[20:100, 10:70] = True  # the object, clipped at the bottom by a tight box
    bone[0:6, 5:75] = True  # a neighbour's endplate, entering through the top
    kept = drop_edge_crossers(bone, NO_WALLS)
    assert not kept[:6].any()
    assert kept[20:, 10:70].all()


def test_entrants_ignore_sides_on_the_image_border() -> None:
    pieces = np.zeros((100, 80), dtype=bool)
    pieces[0:6, 5:75] = True
    assert entrants(pieces, NO_WALLS)[:6, 5:75].all()
    assert not entrants(pieces, (True, False, False, False)).any()  # the image ends there


def _c_shaped_rim(inside: float) -> tuple[np.ndarray, np.ndarray]:
    """A body's rim left open at the right (a posterior wall thinner than the closing), with
    the given grey level inside, and a shallow notch in its left (anterior) side."""
    crop = np.full((100, 120), SOFT, dtype=np.float64)
    rim = np.zeros(crop.shape, dtype=bool)
    rim[10:90, 10:110] = True
    rim[18:82, 18:112] = False  # the hollow, open to the right through a 64-px gap
    rim[40:60, 10:14] = False  # the waist: a shallow notch opening wide to the hull's outline
    crop[rim] = CORTEX
    crop[18:82, 18:100] = inside
    return rim, crop


def test_convex_hull_equals_skimage() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        mask = np.zeros((60, 70), dtype=bool)
        for y, x, h, w in rng.integers(1, 12, size=(3, 4)) * (5, 5, 1, 1):
            mask[y : y + h, x : x + w] = True
        assert (convex_hull(mask) == convex_hull_image(mask, offset_coordinates=False)).all()
    line = np.zeros((10, 10), dtype=bool)
    line[3, 2:8] = True
    assert (convex_hull(line) == line).all()


def test_bay_fill_fills_a_hollow_body_but_not_its_waist() -> None:
    rim, crop = _c_shaped_rim(CANCELLOUS)
    filled = fill_bays(rim, crop, SOFT, 3, NO_WALLS)
    assert filled[18:82, 18:100].all()  # the cancellous inside
    assert not filled[40:60, 10:14].any()  # the waist stays open


def test_bay_fill_leaves_a_bay_as_dark_as_soft_tissue() -> None:
    """A canal or foramen walled in by bone is soft tissue, not cancellous bone."""
    rim, crop = _c_shaped_rim(SOFT)
    assert (fill_bays(rim, crop, SOFT, 3, NO_WALLS) == rim).all()


def test_bay_fill_takes_fatty_marrow_in_a_piece_the_image_border_cuts() -> None:
    """The sacrum at the foot of a sagittal slice: its marrow reads just under soft tissue,
    which in a whole vertebra would be a canal; a canal of fat and fluid is darker still."""
    bottom = (False, True, False, False)
    rim, crop = _c_shaped_rim(SOFT - 1)
    rim, crop = rim[:90], crop[:90]  # the image ends at the body's lower wall
    assert fill_bays(rim, crop, SOFT, 3, bottom)[18:82, 18:100].all()
    assert (fill_bays(rim, crop, SOFT, 3, NO_WALLS) == rim).all()
    crop[18:82, 18:100] = SOFT - 8
    assert (fill_bays(rim, crop, SOFT, 3, bottom) == rim).all()


def test_box_fills_a_body_whose_posterior_wall_is_missing() -> None:
    """A thick cortex puts the box's mean grey level above the cancellous inside, so only the
    rim passes the threshold, and the missing wall leaves it open: a C, not a slab."""
    solid = _ellipse((256, 256), 128, 128, 45, 60)
    shell = solid & ~ndi.binary_erosion(solid, iterations=6)
    shell[98:158, 170:] = False  # no posterior wall over most of the body's height
    img = grey_slice(_render(solid, shell, seed=3))
    mask = segment(img, Prompt(box=box_of(solid)))
    assert dice(mask, solid) > 0.9


def test_negative_point_removes_the_region_around_it() -> None:
    img, target = axial_phantom(seed=3)
    image = grey_slice(img)
    box = box_of(target)
    full = segment(image, Prompt(box=box))
    xs = np.nonzero(target[target.shape[0] // 2 + 20])[0]
    negative = np.array([xs.max() - 10, target.shape[0] // 2 + 20])  # tip of a process
    assert full[negative[1], negative[0]]
    carved = segment(
        image,
        Prompt(points=np.array([centre_of(target)[0], negative]), labels=np.array([1, 0]), box=box),
    )
    assert not carved[negative[1] - 3 : negative[1] + 4, negative[0] - 3 : negative[0] + 4].any()
    assert carved.sum() < full.sum()
    assert not (carved & ~full).any()


def test_mask_input_alone_recovers_the_object() -> None:
    img, target = sagittal_phantom(seed=4)
    prior = ndi.binary_erosion(target, iterations=5)  # a neighbouring slice's slightly smaller mask
    mask = segment(grey_slice(img), Prompt(mask_input=prior))
    assert dice(mask, target) >= 0.9


def test_mask_input_over_no_bone_gives_an_empty_mask() -> None:
    """Propagation reads an empty mask as "the object ended" (e.g. on a disc slice), so a
    prior that finds nothing must not be echoed back."""
    img, _ = sagittal_phantom(seed=7)
    prior = np.zeros(img.shape, dtype=bool)
    prior[20:80, 20:80] = True  # soft tissue only
    assert not segment(grey_slice(img), Prompt(mask_input=prior)).any()


def test_prompt_errors_are_clear_segmenter_errors() -> None:
    seg = ClassicalSegmenter()
    with pytest.raises(SegmenterError, match="load an image"):
        seg.predict(Prompt(box=np.array([0, 0, 10, 10])))
    img, _ = axial_phantom()
    seg.set_image(grey_slice(img))
    with pytest.raises(SegmenterError, match="outside"):
        seg.predict(Prompt(points=np.array([[600, 10]]), labels=POSITIVE))
    with pytest.raises(SegmenterError, match="too small"):
        seg.predict(Prompt(box=np.array([10, 10, 11, 12])))
    with pytest.raises(SegmenterError, match="positive point or a box"):
        seg.predict(Prompt(points=np.array([[50, 50]]), labels=np.zeros(1, dtype=np.int64)))
    with pytest.raises(SegmenterError, match="prior mask"):
        seg.predict(Prompt(mask_input=np.ones((5, 5), dtype=bool)))
    with pytest.raises(SegmenterError, match="2-D"):
        seg.set_image(SliceImage(np.zeros((3, 4, 4)), np.zeros((3, 4, 4), np.uint8), False))


def test_flat_image_gives_an_empty_mask_not_a_crash() -> None:
    flat = np.full((128, 128), 112.0, dtype=np.float32)
    assert not segment(grey_slice(flat), Prompt(box=np.array([20, 20, 100, 100]))).any()
    click = Prompt(points=np.array([[64, 64]]), labels=POSITIVE)
    assert not segment(grey_slice(flat), click).any()


def test_registry_names_and_unknown_backend() -> None:
    assert {"default", "classical"} <= set(BACKENDS)
    seg = create_segmenter(" Classical ")
    assert isinstance(seg, Segmenter) and isinstance(seg, ClassicalSegmenter)
    assert seg.info.name == "classical"
    assert create_segmenter() is not create_segmenter()  # per-user state is never shared
    with pytest.raises(SegmenterError, match="classical, default"):
        create_segmenter("nope")


def test_fast_morphology_equals_the_library_operations() -> None:
    """The hand-built disk and square dilations, cross erosion, closing and hole filling must
    equal scipy/skimage exactly, since they replace them for speed without changing any mask."""
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = rng.integers(1, 50, 2)
        mask = rng.random((h, w)) < rng.uniform(0.05, 0.7)
        radius = int(rng.integers(1, 10))
        pad = radius + 1
        closed = ndi.binary_closing(np.pad(mask, pad), structure=disk(radius))
        assert np.array_equal(close_disk(mask, radius), closed[pad:-pad, pad:-pad])
        assert np.array_equal(dilate_disk(mask, radius), ndi.binary_dilation(mask, disk(radius)))
        assert np.array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))
        assert np.array_equal(dilate_square(mask), ndi.binary_dilation(mask, np.ones((3, 3))))
        labels, _ = ndi.label(mask)
        where = rng.random((h, w)) < 0.05
        touched = np.unique(labels[where])
        touching = np.isin(labels, touched[touched > 0])
        assert np.array_equal(components_touching(labels, where), touching)
        eroded = ndi.binary_erosion(mask, iterations=1 + radius % 3, border_value=1)
        assert np.array_equal(erode_cross(mask, 1 + radius % 3), eroded)


def test_h_maxima_equals_skimage() -> None:
    """Same markers as skimage's h_maxima on distance maps, plateaus, random floats and smooth
    ridges (where the cheap geodesic steps cannot rule every candidate out)."""
    rng = np.random.default_rng(1)
    for i in range(400):
        shape = tuple(rng.integers(1, 30, 2))
        image = (
            rng.random(shape),
            rng.integers(0, 6, shape).astype(np.float64),
            ndi.distance_transform_edt(rng.random(shape) < 0.85),
            ndi.gaussian_filter(rng.random(shape), 2.0) * 10.0,
        )[i % 4]
        h = float(rng.choice([0.3, 0.5, 2 / 3, 1.0, 2.0]))
        assert np.array_equal(regional_h_maxima(image, h), h_maxima(image, h).astype(bool)), (i, h)


def test_neck_region_ignores_bone_that_does_not_touch_the_piece() -> None:
    """The clicked piece alone decides the region: a separate blob elsewhere changes nothing,
    and the narrow neck is still cut."""
    shape = (120, 160)
    dumbbell = _ellipse(shape, 40, 40, 25, 25) | _ellipse(shape, 40, 100, 25, 25)
    dumbbell[38:43, 40:100] = True  # a bridge far thinner than either disc
    lone = dumbbell & (np.arange(shape[1]) < 70)
    for step in (1, 3):
        alone = neck_region(dumbbell, 40, 40, step)
        assert np.array_equal(
            alone, neck_region(dumbbell | _ellipse(shape, 100, 80, 15, 60), 40, 40, step)
        )
        assert (alone & lone).sum() > 0.9 * lone.sum()
        assert not alone[:, 95:].any()


def test_box_overlap() -> None:
    assert box_overlap((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert box_overlap((0, 0, 9, 9), (10, 0, 19, 9)) == 0.0
    assert box_overlap((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)


def test_prompt_latency_on_512_slice() -> None:
    """Loose bound for a shared CI machine; bench/segmenter.py measures the real numbers."""
    img, target = axial_phantom(seed=5)
    seg = ClassicalSegmenter()
    start = time.perf_counter()
    seg.set_image(grey_slice(img))
    seg.predict(Prompt(points=centre_of(target), labels=POSITIVE))
    assert time.perf_counter() - start < 2.0


def _real_cases(root: Path, view: str, names: list[str]) -> list[tuple[SliceImage, np.ndarray]]:
    folder = root / "spinalsam-r1-sample" / view
    cases = []
    for name in names:
        grey = np.asarray(Image.open(folder / "images" / name).convert("L"))
        mask = np.asarray(Image.open(folder / "masks" / name).convert("L")) > 0
        cases.append((SliceImage(grey.astype(np.float32), grey, is_hu=False), mask))
    return cases


# (slices, box minimum, point minimum). Axial: every 10th slice; sagittal: 3 spread-out slices.
# These slices give 0.943/0.775 (axial box/point) and 0.855/0.790 (sagittal); the minimums
# sit a little below, so a regression fails but slice-to-slice spread does not. (Before the
# rules that helped only these development slices were deleted: 0.954/0.933, 0.898/0.870.)
REAL = {
    "axial": ([f"Case1_{i:02d}.png" for i in range(5, 80, 10)], 0.92, 0.76),
    "sagittal": (["RN2.png", "RN9.png", "RN16.png"], 0.83, 0.76),
}


@pytest.mark.parametrize("view", sorted(REAL))
def test_real_slices_mean_vertebra_dice(shared_data: Path, view: str) -> None:
    """Mean per-vertebra Dice on a few real slices with the data protocol's prompts."""
    from spinalsam.evaluate import evaluate_case

    names, box_min, point_min = REAL[view]
    seg = ClassicalSegmenter()
    for kind, minimum in (("box", box_min), ("point", point_min)):
        scores = [
            d
            for image, gt in _real_cases(shared_data, view, names)
            for d in evaluate_case(seg, image, gt, kind, view).vertebra_dice
        ]
        assert np.mean(scores) >= minimum, (kind, np.round(scores, 3))
