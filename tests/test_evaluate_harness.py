"""The evaluation harness on small synthetic volumes: physical overlay, planes, prompts, modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spinalsam import metrics
from spinalsam.evaluate import main as evaluate_main
from spinalsam.evaluation.protocol import (
    BOX_MARGIN_PX,
    Target,
    grown_box,
    margin_px,
    min_area_px,
    prompt_for,
    targets_from_labels,
)
from spinalsam.evaluation.robustness import (
    BOX_JITTER_PX,
    POINT_OFFSET_RANGE,
    flip_box,
    flip_image,
    flip_mask,
    flip_target,
    jitter_box,
    jitter_point,
    target_rng,
)
from spinalsam.evaluation.runner import Modes, score_slices, summarize
from spinalsam.evaluation.volume import (
    SliceCase,
    load_labelled_volume,
    sample_slices,
    volume_slice_cases,
)
from spinalsam.planes import take_slice
from spinalsam.segmenters.base import BackendInfo, Prompt, SegmenterError, SliceImage
from spinalsam.segmenters.baseline import BaselineSegmenter
from spinalsam.segmenters.registry import create_segmenter
from tests.test_classical import axial_phantom, sagittal_phantom

SPACING = (0.8, 0.8, 2.0)  # (x, y, z) mm
ORIGIN = (-20.0, -30.0, 100.0)


def spine_volume(shape: tuple[int, int, int] = (16, 48, 56)) -> tuple[np.ndarray, np.ndarray]:
    """(Z, Y, X) LPS HU volume with two touching 'vertebrae' (labels 7 below, 8 above).

    Deliberately asymmetric (the blocks sit off-centre in x and y), so a flipped or transposed
    axis moves them and a test notices.
    """
    ct = np.full(shape, -1000.0, dtype=np.float32)
    ct[:, 4:-4, 4:-4] = 40.0  # soft-tissue body
    labels = np.zeros(shape, dtype=np.int32)
    labels[2:8, 20:38, 14:30] = 7
    labels[8:14, 20:38, 14:30] = 8
    labels[4:6, 26:30, 30:44] = 7  # a process on one side only
    ct[labels > 0] = 300.0
    shell = labels > 0
    ct[shell & ~np.roll(shell, 1, axis=2)] = 900.0  # bright cortex on one face
    return ct, labels


def _image(array: np.ndarray, direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(direction)
    return image


def _write(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(scope="module")
def volume_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The CT in LPS; its labels flipped in y in storage (as TotalSegmentator's DICOM map is);
    and the CT and labels stored sagittally (PIR, as the TPTBox cut-out is)."""
    root = tmp_path_factory.mktemp("vol")
    ct, labels = spine_volume()
    ct_img = _image(ct.astype(np.int16))
    lab_img = _image(labels)
    flipped = sitk.Flip(lab_img, [False, True, False])  # same physical voxels, array flipped
    assert not np.array_equal(sitk.GetArrayFromImage(flipped), labels)
    return {
        "ct": _write(ct_img, root / "ct.nii.gz"),
        "labels": _write(lab_img, root / "labels.nii.gz"),
        "labels_flipped": _write(flipped, root / "labels_flipped.nii.gz"),
        "ct_pir": _write(sitk.DICOMOrient(ct_img, "PIR"), root / "ct_pir.nii.gz"),
        "labels_pir": _write(sitk.DICOMOrient(lab_img, "PIR"), root / "labels_pir.nii.gz"),
    }


def test_a_flipped_label_map_lands_on_its_physical_voxels(volume_files: dict) -> None:
    _, labels = spine_volume()
    volume = load_labelled_volume(volume_files["ct"], volume_files["labels_flipped"])
    np.testing.assert_array_equal(volume.labels, labels)
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(volume_files["labels_flipped"])))
    assert not np.array_equal(stored, labels)  # by array index it would be mirrored


def test_a_label_map_on_another_grid_is_resampled_by_position(
    volume_files: dict, tmp_path: Path
) -> None:
    """A label map cropped to part of the CT (its own origin and size) lands where it belongs;
    CT voxels outside it are unlabelled."""
    _, labels = spine_volume()
    full = sitk.ReadImage(str(volume_files["labels"]))
    crop = sitk.RegionOfInterest(full, [40, 30, 10], [10, 12, 4])  # x, y, z size; index
    path = _write(sitk.Flip(crop, [True, False, True]), tmp_path / "crop.nrrd")
    volume = load_labelled_volume(volume_files["ct"], path)
    expected = np.zeros_like(labels)
    expected[4:14, 12:42, 10:50] = labels[4:14, 12:42, 10:50]
    np.testing.assert_array_equal(volume.labels, expected)
    assert set(np.unique(volume.labels)) == {0, 7, 8}


def test_a_sagittally_stored_volume_is_reoriented_to_anatomical_planes(
    volume_files: dict,
) -> None:
    ct, labels = spine_volume()
    volume = load_labelled_volume(volume_files["ct_pir"], volume_files["labels_pir"])
    assert sitk.ReadImage(str(volume_files["ct_pir"])).GetSize() != ct.shape[::-1]
    np.testing.assert_array_equal(volume.labels, labels)
    np.testing.assert_allclose(volume.ct.volume, ct)
    assert volume.ct.spacing == pytest.approx(SPACING)
    # Sagittal and coronal views put superior at the top: label 8 (above) on the upper rows.
    for plane, index in (("sagittal", 20), ("coronal", 28)):
        view = take_slice(volume.labels, plane, index)
        rows8 = np.flatnonzero((view == 8).any(axis=1))
        rows7 = np.flatnonzero((view == 7).any(axis=1))
        assert rows8.max() < rows7.min()


@pytest.mark.parametrize("plane", ["axial", "sagittal", "coronal"])
def test_prompts_are_derived_per_vertebra_per_slice(volume_files: dict, plane: str) -> None:
    volume = load_labelled_volume(volume_files["ct"], volume_files["labels_flipped"])
    indices = sample_slices(volume.labels, [7, 8], plane, volume.ct.spacing, step_mm=0.1)
    cases = list(volume_slice_cases(volume, [7, 8], plane, indices, "synthetic"))
    assert cases and all(c.targets for c in cases)
    labels_seen = set()
    for case in cases:
        spacing = case.image.spacing
        assert spacing is not None
        margin = margin_px(spacing)
        assert margin == tuple(max(1, round(3.5 / s)) for s in spacing)
        for target in case.targets:
            labels_seen.add(target.key.split(".")[0])
            assert target.mask.sum() >= min_area_px(spacing)
            assert target.box.tolist() == grown_box(target.mask, margin).tolist()
            x, y = target.point
            assert target.mask[y, x]
            assert case.truth[target.mask].all()
    # Sagittal/coronal slices cut both vertebrae, which touch: each is its own target.
    assert labels_seen == {"L7", "L8"}


def test_slices_are_subsampled_in_mm_and_capped() -> None:
    _, labels = spine_volume()
    every = sample_slices(labels, [7, 8], "axial", SPACING, step_mm=0.1)
    assert every == list(range(2, 14))  # every slice holding a vertebra
    assert sample_slices(labels, [7, 8], "axial", SPACING, step_mm=4.0) == every[::2]
    capped = sample_slices(labels, [7, 8], "axial", SPACING, step_mm=0.1, max_slices=3)
    assert capped == [2, 8, 13]
    assert sample_slices(labels, [99], "axial", SPACING) == []
    thin = labels[6:9]  # three slices: a step of 5 mm would keep one, MIN_SLICES keeps three
    assert sample_slices(thin, [7, 8], "axial", SPACING, step_mm=5.0) == [0, 1, 2]


def test_margin_and_minimum_keep_the_published_protocol_without_spacing() -> None:
    assert margin_px(None) == (BOX_MARGIN_PX, BOX_MARGIN_PX) == (5, 5)
    assert min_area_px(None) == 50
    assert margin_px((3.0, 3.0)) == (1, 1) and margin_px((0.7, 0.7)) == (5, 5)
    assert margin_px((0.7, 2.5)) == (5, 1)  # anisotropic: millimetres on each axis
    assert margin_px((0.5, 0.5), 0.0) == (0, 0)
    assert min_area_px((1.0, 1.0)) == 100 and min_area_px((3.0, 3.0)) == 12


def _target(mask: np.ndarray) -> Target:
    return next(iter(targets_from_labels(mask.astype(np.int32), [1], 5, 1)))


def test_jitter_is_reproducible_by_seed_and_within_bounds() -> None:
    mask = np.zeros((120, 160), dtype=bool)
    mask[30:90, 40:130] = True  # 90 × 60 px: 10 % is over 5 px, so ±5 px applies
    small = np.zeros((120, 160), dtype=bool)
    small[50:62, 60:80] = True  # with the 5 px margin a 30 × 22 px box: 10 % is 3 and 2 px
    for target, reach in (
        (_target(mask), (BOX_JITTER_PX, BOX_JITTER_PX)),
        (_target(small), (3, 2)),
    ):
        boxes, offsets = set(), []
        for seed in range(200):
            box = jitter_box(target.box, mask.shape, target_rng(seed, target.key))
            again = jitter_box(target.box, mask.shape, target_rng(seed, target.key))
            assert box.tolist() == again.tolist()
            delta = np.abs(box - target.box)
            assert delta[[0, 2]].max() <= reach[0] and delta[[1, 3]].max() <= reach[1]
            boxes.add(tuple(box))
            point = jitter_point(target, target_rng(seed, target.key))
            assert target.mask[point[1], point[0]]
            offsets.append(np.hypot(*(point - target.point)) / target.inner_radius)
        assert len(boxes) > 20  # it does move
        low, high = POINT_OFFSET_RANGE
        slack = 0.75 / target.inner_radius  # rounding to a pixel
        assert low - slack <= min(offsets) and max(offsets) <= high + slack
    assert not np.array_equal(
        [jitter_box(_target(mask).box, mask.shape, target_rng(s, "a")) for s in range(5)],
        [jitter_box(_target(mask).box, mask.shape, target_rng(s, "b")) for s in range(5)],
    )


def test_flips_mirror_image_mask_and_prompts_exactly() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:20, 8:30] = True
    mask[5:9, 30:50] = True
    target = _target(mask)
    for flip in ("horizontal", "vertical"):
        mirrored = flip_target(target, flip)
        assert mirrored.box.tolist() == grown_box(mirrored.mask, 5).tolist()
        assert mirrored.mask[mirrored.point[1], mirrored.point[0]]
        back = flip_target(mirrored, flip)
        np.testing.assert_array_equal(back.mask, target.mask)
        assert back.box.tolist() == target.box.tolist()
        assert back.point.tolist() == target.point.tolist()
        assert flip_box(flip_box(target.box, mask.shape, flip), mask.shape, flip).tolist() == (
            target.box.tolist()
        )
    image = SliceImage(
        np.arange(12.0).reshape(3, 4), np.arange(12, dtype=np.uint8).reshape(3, 4), False
    )
    np.testing.assert_array_equal(flip_image(image, "horizontal").display, image.display[:, ::-1])
    np.testing.assert_array_equal(flip_mask(image.pixels, "vertical"), image.pixels[::-1])


class _BoxFiller:
    """Fills the box (equivariant under flips) or, when `lopsided`, only what lies in the
    image's left half: a backend that depends on where the object is, not what it is."""

    info = BackendInfo("box-filler", "test")

    def __init__(self, lopsided: bool = False) -> None:
        self.lopsided = lopsided
        self.shape = (0, 0)

    def set_image(self, image: SliceImage) -> None:
        self.shape = image.shape

    def predict(self, prompt: Prompt) -> np.ndarray:
        if prompt.box is None:
            raise SegmenterError("box only")
        x0, y0, x1, y1 = prompt.box
        out = np.zeros(self.shape, dtype=bool)
        out[y0 : y1 + 1, x0 : x1 + 1] = True
        if self.lopsided:
            out[:, self.shape[1] // 2 :] = False
        return out


def _one_case() -> SliceCase:
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:40, 5:35] = True
    image = SliceImage(mask * 200.0, (mask * 200).astype(np.uint8), False)
    return SliceCase("one", image, (_target(mask),), mask)


def test_flip_bookkeeping_reports_changes_only_for_orientation_dependent_backends() -> None:
    modes = Modes(kinds=("box", "point"), jitter=True, flip=True, seed=3)
    records, _ = score_slices(_BoxFiller(), [_one_case()], modes)
    box = summarize(records, "box")
    assert box["flip"] == box["clean"] and box["flip_change"] == 0.0 and box["n"] == 1
    point = summarize(records, "point")  # a refused prompt scores 0 in every mode
    assert point["clean"] == point["jitter"] == point["flip"] == 0.0
    lopsided = summarize(score_slices(_BoxFiller(True), [_one_case()], modes)[0], "box")
    assert lopsided["flip_change"] > 0.1  # mirrored into the right half: nothing
    again = summarize(score_slices(_BoxFiller(), [_one_case()], modes)[0], "box")
    assert again == box  # seeded: the same run twice gives the same jitter


def test_baseline_segments_phantoms_and_handles_edge_prompts() -> None:
    segmenter = create_segmenter("baseline")
    assert isinstance(segmenter, BaselineSegmenter) and segmenter.info.name == "baseline"
    with pytest.raises(SegmenterError):
        segmenter.predict(Prompt(box=np.array([0, 0, 5, 5])))
    for phantom, minimum in ((axial_phantom, 0.75), (sagittal_phantom, 0.75)):
        img, truth = phantom(seed=4)
        image = SliceImage(img.astype(np.float32), img.astype(np.uint8), False)
        segmenter.set_image(image)
        target = _target(truth)
        box = segmenter.predict(prompt_for("box", target.box, target.point))
        assert metrics.dice(box, target.mask) >= minimum
        point = segmenter.predict(prompt_for("point", target.box, target.point))
        assert point[target.point[1], target.point[0]] and metrics.dice(point, target.mask) > 0.5
        x0, y0, x1, y1 = target.box
        reversed_box = segmenter.predict(Prompt(box=np.array([x1, y1, x0, y0])))
        np.testing.assert_array_equal(reversed_box, box)
        prior = segmenter.predict(Prompt(mask_input=target.mask))
        assert metrics.dice(prior, target.mask) >= minimum
    flat = SliceImage(np.zeros((30, 30), np.float32), np.zeros((30, 30), np.uint8), False)
    segmenter.set_image(flat)
    assert not segmenter.predict(Prompt(box=np.array([5, 5, 20, 20]))).any()
    with pytest.raises(SegmenterError):
        segmenter.predict(Prompt(points=np.array([[40, 3]]), labels=np.array([1])))


def test_volume_cli_scores_every_plane_with_robustness(
    volume_files: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--volume",
        str(volume_files["ct_pir"]),
        "--labels",
        str(volume_files["labels_flipped"]),
    ]
    argv += ["--label-ids", "7,8", "--planes", "axial,coronal", "--prompt", "box"]
    argv += ["--backend", "baseline", "--jitter", "--flip", "--slice-step-mm", "2", "--json"]
    assert evaluate_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    results = out["backends"]
    assert [(r["backend"], r["plane"]) for r in results] == [
        ("baseline", "axial"),
        ("baseline", "coronal"),
    ]
    for r in results:
        assert r["per_vertebra_dice"]["mean"] > 0.7
        rob = r["robustness"]
        assert set(rob) >= {"clean", "jitter", "flip", "jitter_drop", "flip_change"}
        assert rob["clean"] == pytest.approx(r["per_vertebra_dice"]["mean"], abs=1e-3)
    assert "| jitter_drop |" in out["table"] and "baseline coronal" in out["table"]
    with pytest.raises(SystemExit):
        evaluate_main([*argv[:4], "--label-ids", "7,99", "--prompt", "box"])
    assert "[99]" in capsys.readouterr().err
