"""The evaluation CLI on a tiny synthetic folder: protocol prompts, JSON/CSV output, errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spinalsam.evaluate import derive_prompts, main
from spinalsam.segmenters.learned import DEFAULT_WEIGHTS
from tests.test_classical import axial_phantom, sagittal_phantom

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three slices like the shared sample: an RGBA render, a grey render, a sagittal one."""
    root = tmp_path_factory.mktemp("eval")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    cases = {
        "a.png": (axial_phantom(seed=10), "RGBA"),
        "b.png": (axial_phantom(seed=11), "L"),
        "c.png": (sagittal_phantom(seed=12), "L"),
    }
    for name, ((img, mask), mode) in cases.items():
        Image.fromarray(img.astype(np.uint8)).convert(mode).save(root / "images" / name)
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / name)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / "unpaired.png")
    return root


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spinalsam.evaluate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_output_for_box_prompts(folder: Path, tmp_path: Path) -> None:
    out_csv = tmp_path / "rows.csv"
    proc = run_cli(
        "--images", str(folder / "images"), "--masks", str(folder / "masks"),
        "--prompt", "box", "--json", "--csv", str(out_csv),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout holds exactly one JSON object
    assert result["backend"] == "default" and result["prompt"] == "box"
    assert result["n"] == 3 and result["n_vertebrae"] == 3
    assert result["per_vertebra_dice"]["mean"] >= 0.9
    assert result["per_slice_dice"]["mean"] >= 0.9
    assert 0.8 <= result["iou"]["mean"] <= 1.0
    assert 0.0 <= result["msd"]["mean"] <= result["hd95"]["mean"] < 15.0  # pixels: no spacing
    assert result["ms_per_image"] > 0
    assert [c["image"] for c in result["per_case"]] == ["a.png", "b.png", "c.png"]
    assert "[default] 3 c.png" in proc.stderr  # progress goes to stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["image"] for r in rows] == ["a.png", "b.png", "c.png"]
    assert all(r["backend"] == "default" and float(r["dice"]) >= 0.85 for r in rows)


def test_point_prompts_and_several_backends(folder: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--images", str(folder / "images"), "--masks", str(folder / "masks")]
    assert main([*argv, "--prompt", "point", "--backend", "default,classical", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [b["backend"] for b in result["backends"]] == ["default", "classical"]
    assert all(b["per_vertebra_dice"]["mean"] >= 0.85 for b in result["backends"])
    assert result["table"].startswith("| metric | default | classical |")
    assert main([*argv, "--prompt", "box+point"]) == 0
    table = capsys.readouterr().out
    assert "| per_vertebra_dice |" in table and "| n / vertebrae | 3 / 3 |" in table


def test_a_weights_file_is_scored_as_its_own_backend(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`learned:PATH` scores other weights (e.g. held-out ones) beside the registry's default."""
    weights = tmp_path / "copy.onnx"
    shutil.copy(DEFAULT_WEIGHTS, weights)
    shutil.copy(DEFAULT_WEIGHTS.with_suffix(".json"), weights.with_suffix(".json"))
    argv = ["--images", str(folder / "images"), "--masks", str(folder / "masks")]
    assert (
        main([*argv, "--prompt", "box", "--backend", f"default,learned:{weights}", "--json"]) == 0
    )
    default, copy = json.loads(capsys.readouterr().out)["backends"]
    assert copy["backend"] == f"learned:{weights}"
    assert [c["per_vertebra_dice"] for c in copy["per_case"]] == [
        c["per_vertebra_dice"] for c in default["per_case"]
    ]
    assert copy["per_vertebra_dice"]["mean"] >= 0.9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--images": "missing"}, "images folder not found"),
        ({"--backend": "default,nope"}, "unknown backend"),
        ({"--backend": "learned:/nonexistent/w.onnx"}, "no weights file"),
        ({"--masks": "images-renamed"}, "no image in"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture, change: dict, message: str
) -> None:
    renamed = tmp_path / "images-renamed"
    renamed.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(renamed / "other.png")
    args = {"--images": str(folder / "images"), "--masks": str(folder / "masks")}
    args |= {k: str(tmp_path / v) if k != "--backend" else v for k, v in change.items()}
    argv = [x for kv in args.items() for x in kv] + ["--prompt", "box", "--json"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_prompts_follow_the_data_protocol() -> None:
    mask = np.zeros((60, 80), dtype=bool)
    mask[5:26, 30:51] = True  # 21×21 square: its deepest pixel is the centre (40, 15)
    mask[40:42, 2:20] = True  # 36 px speck: below the 50 px minimum, no prompt
    mask[50:60, 70:80] = True  # touches the image corner: box is clipped to the image
    prompts = list(derive_prompts(mask, "box+point"))
    assert len(prompts) == 2
    (first, p1), (second, p2) = prompts
    assert first.sum() == 21 * 21 and second.sum() == 100
    assert p1.box.tolist() == [25, 0, 55, 30]
    assert p1.points.tolist() == [[40, 15]] and p1.labels.tolist() == [1]
    assert p2.box.tolist() == [65, 45, 79, 59]
    box_only = next(iter(derive_prompts(mask, "box")))[1]
    assert box_only.points.shape == (0, 2)
    point_only = next(iter(derive_prompts(mask, "point")))[1]
    assert point_only.box is None
