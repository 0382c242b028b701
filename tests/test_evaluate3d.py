"""evaluate3d on the real TotalSegmentator example (skipped when shared/data is absent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spinalsam.evaluate3d import main, start_box
from spinalsam.evaluation.backends import check_backend_spec, create_evaluated_segmenter
from spinalsam.export import save_nifti
from spinalsam.io import load_ct
from spinalsam.segmenters.base import SegmenterError
from spinalsam.segmenters.learned import DEFAULT_WEIGHTS, LearnedSegmenter

# Measured with the embedded default backend: 3-D Dice 0.883 / 0.866 / 0.851 (labels 30 / 31 /
# 32), mean 0.867; start slices 0.94 / 0.95 / 0.92 (docs/3d.md). Thresholds sit a little below.
MIN_MEAN_DICE = 0.84
MIN_LABEL_DICE = 0.82
MIN_START_DICE = 0.85


def _args(shared_data: Path, *extra: str) -> list[str]:
    folder = shared_data / "totalseg-example"
    return [
        "--image",
        str(folder / "example_ct_sm.nii.gz"),
        "--labels",
        str(folder / "example_seg.nii.gz"),
        *extra,
    ]


# (backend, mean, per label). Classical: its propagation rules (the defaults) were tuned on this
# volume and are unchanged, 0.883 / 0.866 / 0.851. The learned default (trained on every source,
# this one included: not a held-out number) with its prior-following rules measured 0.929 /
# 0.876 / 0.905, mean 0.903 (0.890 / 0.788 / 0.704 with the classical rules before); the bounds
# sit 0.04 below for other CPUs' ONNX Runtime numerics and stay above what the classical rules
# gave it, so a lost rule set fails here.
BOUNDS = {
    "classical": (MIN_MEAN_DICE, MIN_LABEL_DICE),
    "default": (0.86, 0.83),
}


@pytest.mark.parametrize("backend", sorted(BOUNDS))
def test_one_box_per_vertebra_segments_the_volume(
    shared_data: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    min_mean, min_label = BOUNDS[backend]
    args = [*_args(shared_data), "--label-ids", "30,31,32", "--json", "--backend", backend]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["label"]: row for row in report["labels"]}
    assert set(rows) == {30, 31, 32}
    for row in rows.values():
        assert row["dice"] >= min_label, row
        assert row["start_dice"] >= MIN_START_DICE, row
        assert row["slices_propagated"] >= 0.4 * row["slices_ground_truth"], row
        assert 0.0 <= row["hd95_mm"] < 20.0 and row["msd_mm"] <= row["hd95_mm"]
    assert report["mean_dice"] == pytest.approx(np.mean([r["dice"] for r in rows.values()]))
    assert report["mean_dice"] >= min_mean


def test_bad_arguments_exit_with_a_message(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*_args(shared_data), "--label-ids", "30,999"])
    assert exc.value.code == 2 and "999" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*_args(shared_data), "--label-ids", "thirty"])
    assert "integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*_args(shared_data), "--label-ids", "30", "--backend", "nope"])
    assert "unknown backend" in capsys.readouterr().err


def test_start_margin_sets_how_loose_the_start_box_is(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boxes = {}
    for margin_mm in (0.0, 6.0):  # 0 and 2 px on the 3 mm slices
        args = _args(shared_data, "--label-ids", "31", "--start-margin-mm", str(margin_mm))
        assert main([*args, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["start_margin_mm"] == margin_mm
        row = report["labels"][0]
        boxes[margin_mm] = row["start_box"]
        assert row["dice"] >= MIN_LABEL_DICE - 0.05, row  # robust to how tight the box is
    x0, y0, x1, y1 = boxes[0.0]
    assert boxes[6.0] == [x0 - 2, y0 - 2, x1 + 2, y1 + 2]
    with pytest.raises(SystemExit):
        main([*_args(shared_data), "--label-ids", "31", "--start-margin-mm", "-1"])
    assert "must not be negative" in capsys.readouterr().err


def test_start_box_is_the_tight_box_plus_margin_clipped() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[2:10, 12:29] = True
    assert start_box(mask).tolist() == [7, 0, 29, 14]


def test_nifti_labels_round_trip_voxel_for_voxel(shared_data: Path, tmp_path: Path) -> None:
    """The ground truth evaluate3d scores against, exported again, matches the file on disk."""
    source = shared_data / "totalseg-example" / "example_seg.nii.gz"
    ct = load_ct([shared_data / "totalseg-example" / "example_ct_sm.nii.gz"])
    labels = np.rint(load_ct([source]).volume).astype(np.uint16)
    exported = sitk.ReadImage(str(save_nifti(labels, ct, tmp_path / "labels.nii.gz")))
    original = sitk.ReadImage(str(source))
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(exported), sitk.GetArrayFromImage(original)
    )
    assert exported.GetDirection() == pytest.approx(original.GetDirection())
    assert exported.GetOrigin() == pytest.approx(original.GetOrigin(), abs=1e-3)


def test_other_weights_are_scored_as_learned_path(
    shared_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`learned:PATH` runs the learned segmenter on another weights file (e.g. a model trained
    without the scored source), leaving the app's registry as it is."""
    copy = tmp_path / "other.onnx"
    shutil.copy(DEFAULT_WEIGHTS, copy)
    shutil.copy(DEFAULT_WEIGHTS.with_suffix(".json"), copy.with_suffix(".json"))
    args = [*_args(shared_data), "--label-ids", "31", "--json"]
    dice = {}
    for backend in ("learned", f"learned:{copy}"):
        assert main([*args, "--backend", backend]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["backend"] == backend
        dice[backend] = report["labels"][0]["dice"]
    assert dice["learned"] == dice[f"learned:{copy}"] > 0.5  # same weights, same result
    with pytest.raises(SystemExit):
        main([*args, "--backend", f"learned:{tmp_path / 'missing.onnx'}"])
    assert "no weights file" in capsys.readouterr().err


def test_backend_specs_are_checked_and_normalised(tmp_path: Path) -> None:
    assert check_backend_spec(" Classical ") == "classical"
    weights = tmp_path / "Model.onnx"
    with pytest.raises(SegmenterError, match="no weights file"):
        check_backend_spec(f"learned:{weights}")
    shutil.copy(DEFAULT_WEIGHTS, weights)
    assert check_backend_spec(f"LEARNED:{weights}") == f"learned:{weights}"  # path kept as is
    assert isinstance(create_evaluated_segmenter(f"learned:{weights}"), LearnedSegmenter)
    with pytest.raises(SegmenterError, match="unknown backend"):
        check_backend_spec("sam2")
