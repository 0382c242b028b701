"""Training data, prompt simulation and losses: loaders, split by case, simulated clicks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from spinalsam.phantom import make_spine_phantom
from spinalsam.planes import take_slice
from spinalsam.training.data import (
    TrainingDataError,
    case_of,
    load_data,
    load_png_pairs,
    load_volume_slices,
    split_by_case,
)
from spinalsam.training.losses import dice_loss, segmentation_loss
from spinalsam.training.prompts import (
    PromptConfig,
    correction_click,
    jittered_box,
    sample_points,
    simulate_prompt,
)


def _write_png_folder(root: Path, cases: dict[str, int]) -> Path:
    """images/ + masks/ with two vertebra-sized squares and one 4-px speck per slice."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for case, n in cases.items():
        for i in range(1, n + 1):
            image = np.zeros((64, 80, 4), np.uint8)
            image[..., 3] = 255
            mask = np.zeros((64, 80), np.uint8)
            mask[5:20, 5:20] = mask[30:50, 40:70] = 255
            mask[60:62, 0:2] = 255  # a speck under the 50-px minimum
            image[mask > 0, :3] = 200
            Image.fromarray(image, "RGBA").save(root / "images" / f"{case}_{i:02d}.png")
            Image.fromarray(mask, "L").save(root / "masks" / f"{case}_{i:02d}.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / "orphan_01.png")
    return root


def _write_phantom_nifti(
    folder: Path, shape=(12, 48, 40), stem: str = "ct"
) -> tuple[Path, Path, np.ndarray]:
    volume, labels = make_spine_phantom(shape, n_vertebrae=2, seed=1)
    paths = []
    for array, name in (
        (volume.astype(np.int16), f"{stem}.nii.gz"),
        (labels, f"{stem}_seg.nii.gz"),
    ):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.0, 1.0, 2.5))
        sitk.WriteImage(image, str(folder / name))
        paths.append(folder / name)
    return paths[0], paths[1], labels


# --------------------------------------------------------------------------- case ids and split


@pytest.mark.parametrize(
    ("name", "pattern", "case"),
    [
        ("Case1_05", None, "Case1"),
        ("sub-verse004_ct_012", None, "sub-verse004_ct"),
        ("RN3", None, "RN3"),  # no "_<digits>" suffix: a case of its own
        ("Case1_05", r"^(.+_\d)\d$", "Case1_0"),  # slabs of ten slices
        ("p07-slice3", r"^(?P<case>p\d+)-", "p07"),
        ("scan", r"^(\d+)$", "scan"),  # no match: own case
    ],
)
def test_case_of(name: str, pattern: str | None, case: str) -> None:
    assert (case_of(name) if pattern is None else case_of(name, pattern)) == case


def test_png_pairs_objects_and_cases(tmp_path: Path) -> None:
    folder = _write_png_folder(tmp_path / "axial", {"Case1": 3, "Case2": 2})
    samples = load_png_pairs(folder)
    assert [s.name for s in samples] == [f"Case1_0{i}" for i in (1, 2, 3)] + [
        "Case2_01",
        "Case2_02",
    ]  # the orphan image has no mask and is skipped
    assert {s.case for s in samples} == {"Case1", "Case2"}
    for s in samples:
        assert s.image.shape == (64, 80, 3) and s.image.dtype == np.uint8
        assert sorted(int(o.sum()) for o in s.objects) == [15 * 15, 20 * 30]  # speck dropped


def test_png_pairs_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="images/ and a masks/"):
        load_png_pairs(tmp_path)
    folder = _write_png_folder(tmp_path / "x", {"A": 1})
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "masks" / "A_01.png")
    with pytest.raises(TrainingDataError, match="80×64 px but its mask is 10×10 px"):
        load_png_pairs(folder)


def test_split_by_case_has_no_leakage(tmp_path: Path) -> None:
    cases = {f"P{k}": 2 + k % 3 for k in range(10)}
    samples = load_png_pairs(_write_png_folder(tmp_path / "d", cases))
    train, val = split_by_case(samples, 0.3, seed=4)
    assert {s.case for s in train}.isdisjoint({s.case for s in val})
    assert len({s.case for s in val}) == 3 and len(train) + len(val) == len(samples)
    again = split_by_case(samples, 0.3, seed=4)[1]
    assert [s.name for s in again] == [s.name for s in val]  # seeded: reproducible
    with pytest.raises(TrainingDataError, match="one case"):
        split_by_case([s for s in samples if s.case == "P0"], 0.3, seed=0)


def test_load_data_finds_subfolders_and_rejects_unknown(tmp_path: Path) -> None:
    _write_png_folder(tmp_path / "root" / "axial", {"A": 2})
    _write_png_folder(tmp_path / "root" / "sagittal", {"B": 1})
    assert len(load_data([tmp_path / "root"])) == 3
    with pytest.raises(TrainingDataError, match="does not exist"):
        load_data([tmp_path / "missing"])
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    with pytest.raises(TrainingDataError, match="--label-map"):
        load_data([tmp_path / "ct.nii.gz"])


# --------------------------------------------------------------------------- volumes


def test_nifti_label_map_slices(tmp_path: Path) -> None:
    ct, seg, labels = _write_phantom_nifti(tmp_path)
    samples = load_volume_slices(ct, seg, labels=(1, 2), min_area=20)
    assert samples and all(s.name.startswith("ct_") and s.case == "ct" for s in samples)
    for s in samples:
        index = int(s.name.rsplit("_", 1)[1])
        present = [k for k in (1, 2) if (labels[index] == k).sum() >= 20]
        assert len(s.objects) == len(present)
        for obj, k in zip(s.objects, present, strict=True):
            np.testing.assert_array_equal(obj, labels[index] == k)
        assert s.image.shape == (48, 40, 3) and s.image.dtype == np.uint8
        assert s.image[s.objects[0]].mean() > s.image[~np.logical_or.reduce(s.objects)].mean()
    sagittal = load_volume_slices(ct, seg, labels=(1,), axis="sagittal", min_area=20)
    for s in sagittal:
        index = int(s.name.rsplit("_", 1)[1])
        np.testing.assert_array_equal(s.objects[0], take_slice(labels, "sagittal", index) == 1)


def test_nifti_errors(tmp_path: Path) -> None:
    ct, seg, _ = _write_phantom_nifti(tmp_path)
    with pytest.raises(TrainingDataError, match="--labels"):
        load_volume_slices(ct, seg, labels=())
    with pytest.raises(TrainingDataError, match="none of the labels"):
        load_volume_slices(ct, seg, labels=(99,))
    other = tmp_path / "other"
    other.mkdir()
    _, small_seg, _ = _write_phantom_nifti(other, shape=(12, 48, 36))
    with pytest.raises(TrainingDataError, match=r"label map ct_seg\.nii\.gz has"):
        load_volume_slices(ct, small_seg, labels=(1,))


def test_load_data_pairs_each_volume_with_its_label_map(tmp_path: Path) -> None:
    ct_a, seg_a, _ = _write_phantom_nifti(tmp_path, stem="verse004")
    ct_b, seg_b, _ = _write_phantom_nifti(tmp_path, shape=(12, 48, 36), stem="verse005")
    samples = load_data([ct_a, ct_b], [seg_a, seg_b], labels=(1, 2))
    assert {s.case for s in samples} == {"verse004", "verse005"}
    with pytest.raises(TrainingDataError, match="label map verse005_seg"):
        load_data([ct_a], [seg_b], labels=(1,))  # a label map of another grid is refused
    with pytest.raises(TrainingDataError, match="one per volume"):
        load_data([ct_a], [seg_a, seg_b], labels=(1,))


# --------------------------------------------------------------------------- prompts


def _blob() -> np.ndarray:
    mask = np.zeros((60, 70), bool)
    mask[20:40, 25:55] = True
    return mask


def test_jittered_box_is_noisy_around_the_tight_box() -> None:
    mask, rng = _blob(), np.random.default_rng(0)
    np.testing.assert_array_equal(jittered_box(mask, rng, 0.0), [25, 20, 54, 39])
    boxes = np.array([jittered_box(mask, rng, 0.1) for _ in range(300)])
    assert np.all(boxes[:, 0] <= boxes[:, 2]) and np.all(boxes[:, 1] <= boxes[:, 3])
    assert np.all(boxes >= 0) and np.all(boxes[:, [0, 2]] <= 69) and np.all(boxes[:, [1, 3]] <= 59)
    shift = boxes - [25, 20, 54, 39]
    # std of each edge ≈ 10% of the side it belongs to (30 px wide, 20 px high)
    np.testing.assert_allclose(shift.std(axis=0), [3.0, 2.0, 3.0, 2.0], rtol=0.25)


def test_points_inside_and_negatives_near_outside() -> None:
    mask, rng = _blob(), np.random.default_rng(1)
    for _ in range(50):
        points, labels = sample_points(mask, rng, 3, 2, margin=0.25)
        xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
        assert list(labels) == [1, 1, 1, 0, 0]
        assert mask[ys[labels == 1], xs[labels == 1]].all()
        assert not mask[ys[labels == 0], xs[labels == 0]].any()
        # negatives lie within 0.25 * sqrt(area) ≈ 6 px of the object
        assert np.all((xs[labels == 0] >= 25 - 7) & (xs[labels == 0] <= 54 + 7))
        assert np.all((ys[labels == 0] >= 20 - 7) & (ys[labels == 0] <= 39 + 7))


def test_simulate_prompt_mixes_boxes_and_points() -> None:
    mask, rng = _blob(), np.random.default_rng(2)
    prompts = [simulate_prompt(mask, rng, PromptConfig(box_probability=0.5)) for _ in range(200)]
    with_box = [p for p in prompts if p.box is not None]
    assert 60 < len(with_box) < 140
    assert all(len(p.points) == 0 for p in with_box)
    assert all(1 <= (p.labels == 1).sum() <= 3 for p in prompts if p.box is None)


def test_correction_click_comes_from_the_error_region() -> None:
    target, rng = _blob(), np.random.default_rng(3)
    assert correction_click(target.copy(), target, rng) is None
    missed = target.copy()
    missed[20:40, 25:35] = False  # under-segmentation: needs a positive click there
    point, label = correction_click(missed, target, rng)
    assert label == 1 and 25 <= point[0] < 35 and 20 <= point[1] < 40
    leaked = target.copy()
    leaked[0:5, :] = True  # leak into background: needs a negative click there
    point, label = correction_click(leaked, target, rng)
    assert label == 0 and point[1] < 5


# --------------------------------------------------------------------------- losses


def test_losses_reward_the_right_mask() -> None:
    target = torch.zeros(2, 16, 16)
    target[:, 4:12, 4:12] = 1
    right, wrong = (target * 2 - 1) * 20, (1 - target * 2) * 20
    assert dice_loss(right, target) < 0.01 and dice_loss(wrong, target) > 0.95
    for kind in ("dice_bce", "dice_focal"):
        good, bad = segmentation_loss(right, target, kind), segmentation_loss(wrong, target, kind)
        assert torch.isfinite(good) and good < 0.01 and bad > 1.0
    empty = torch.zeros(1, 8, 8)
    assert dice_loss(torch.full((1, 8, 8), -20.0), empty) < 1e-6  # empty vs empty is perfect


# --------------------------------------------------------------------------- shared data


def test_shared_png_folders(shared_data: Path) -> None:
    root = shared_data / "spinalsam-r1-sample"
    axial = load_png_pairs(root / "axial")
    sagittal = load_png_pairs(root / "sagittal")
    assert len(axial) == 80 and len(sagittal) == 30
    assert {s.case for s in axial} == {"Case1"}  # one patient: split it with --case-pattern
    assert len({s.case for s in sagittal}) == 30  # RN<k>: one case per file
    assert all(len(s.objects) >= 2 for s in sagittal)  # several vertebrae per reformat
    slabs = {case_of(s.name, r"^(.+_\d)\d$") for s in axial}
    assert sorted(slabs) == [f"Case1_{d}" for d in range(9)]  # slabs of ten slices
