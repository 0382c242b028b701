"""The report over sources: a synthetic registry here, the real one when ../shared/data exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from spinalsam.evaluate_report import main
from spinalsam.evaluation.report import Budget, Column, markdown_report, merge_reports, run_report
from spinalsam.evaluation.runner import Modes
from spinalsam.evaluation.sources import SOURCES, FolderSet, Source, VolumeCase
from spinalsam.evaluation.volume import load_labelled_volume
from spinalsam.planes import take_slice
from tests.test_classical import axial_phantom
from tests.test_evaluate_harness import SPACING, spine_volume


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data root with a 2-D folder source and a volume source; an empty cache root."""
    data = tmp_path_factory.mktemp("data")
    for sub in ("slices/images", "slices/masks"):
        (data / sub).mkdir(parents=True)
    for seed in (1, 2):
        img, mask = axial_phantom(seed=seed, size=256)
        Image.fromarray(img.astype(np.uint8)).save(data / f"slices/images/s{seed}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(data / f"slices/masks/s{seed}.png")
    ct, labels = spine_volume()
    (data / "vol").mkdir()
    for array, name in ((ct.astype(np.int16), "ct.nii.gz"), (labels, "seg.nii.gz")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(SPACING)
        sitk.WriteImage(image, str(data / "vol" / name))
    return data, tmp_path_factory.mktemp("cache")


SYNTHETIC = (
    Source("slices", "slices", "2-D", "manual", folders=(FolderSet("axial", "images", "masks"),)),
    Source(
        "vol",
        "vol",
        "volume",
        "model output",
        volumes=(VolumeCase("v", "ct.nii.gz", "seg.nii.gz", (7, 8)),),
        planes=("axial", "coronal"),
    ),
    Source("absent", "absent", "fetched", "model output", volumes=(), root="cache",
           folders=(FolderSet("axial", "i", "m"),)),
)  # fmt: skip
SMALL = Budget(slice_step_mm=4.0, max_slices=3, max_labels_3d=1)


def test_one_table_over_every_source_plane_prompt_and_backend(roots: tuple[Path, Path]) -> None:
    columns = [Column("base", "baseline"), Column("again", "baseline")]
    report = run_report(SYNTHETIC, columns, *roots, SMALL, Modes(jitter=True, flip=True, seed=1))
    cells = {(c["source"], c["plane"], c["prompt"], c["column"]): c for c in report["cells"]}
    expected_rows = {
        ("slices", "axial", "box"), ("slices", "axial", "point"),
        ("vol", "axial", "box"), ("vol", "axial", "point"),
        ("vol", "coronal", "box"), ("vol", "coronal", "point"),
        ("vol", "3-D", "box"),
    }  # fmt: skip
    assert {k[:3] for k in cells} == expected_rows
    for (_, plane, _, _), cell in cells.items():
        assert 0.0 <= cell["clean"] <= 1.0 and cell["n"] >= 1
        if plane != "3-D":
            assert cell["jitter"] is not None and cell["flip_change"] is not None
    for row in expected_rows:  # the same backend twice: identical, jitter included
        assert cells[(*row, "base")] | {"column": ""} == cells[(*row, "again")] | {"column": ""}
    assert cells[("slices", "axial", "box", "base")]["n"] == 2
    assert report["skipped"][0]["source"] == "absent"
    assert report["volumes3d"][0]["labels"][0]["label"] in (7, 8)
    table = markdown_report(report)
    lines = table.splitlines()
    assert lines[0].startswith("| source | plane | prompt | n | base clean | base jitter |")
    assert sum(line.startswith("| vol |") for line in lines) == 5
    assert "skipped absent" in table


def test_held_out_and_trained_on_columns_and_merging(roots: tuple[Path, Path]) -> None:
    """Leave-one-source-out: each model scored on its held-out source only, runs merged."""
    budget, modes = SMALL, Modes(kinds=("box",))
    runs = [
        run_report(SYNTHETIC[:2], [Column("loso", "baseline", frozenset({name}))], *roots,
                   budget, modes, with_3d=False)
        for name in ("slices", "vol")
    ]  # fmt: skip
    assert {c["source"] for c in runs[0]["cells"]} == {"slices"}
    merged = merge_reports(runs)
    assert {c["source"] for c in merged["cells"]} == {"slices", "vol"}
    assert merged["columns"] == ["loso"]
    with pytest.raises(ValueError, match="two reports"):
        merge_reports([runs[0], runs[0]])
    flagged = run_report(
        SYNTHETIC[:1],
        [Column("fit", "baseline", trained_on=frozenset({"slices"}))],
        *roots, budget, modes,
    )  # fmt: skip
    row = markdown_report(flagged).splitlines()[2]
    assert row.split("|")[5].strip().endswith("*")


def test_cli_rejects_bad_columns_and_sources(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["--backend", "nope"], "unknown backend"),
        (["--sources", "nowhere"], "unknown source"),
        (["--backend", "a=baseline", "--held-out", "b=tptbox"], "lacks"),
        (["--backend", "a=baseline", "--held-out", "a=mars"], "COLUMN=SOURCE"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_the_registry_names_every_shared_source_once() -> None:
    names = [s.name for s in SOURCES]
    assert len(names) == len(set(names))
    assert {"r1-sample", "totalseg", "totalseg-aorta-crop", "tptbox", "dcmqi-3slice"} <= set(names)
    totalseg = next(s for s in SOURCES if s.name == "totalseg")
    cts = [case.ct for case in totalseg.volumes]
    assert not any("example_ct_sm" in ct for ct in cts)  # a part of the full volume: not twice


# --- the real data (skipped when ../shared/data is absent) -----------------------------------


def test_the_dicom_label_map_is_overlaid_by_physical_position(shared_data: Path) -> None:
    """TotalSegmentator's map of the DICOM series is stored flipped in y: overlaid physically
    its vertebrae are bone; by array index they would be soft tissue and air."""
    folder = shared_data / "totalseg-example"
    volume = load_labelled_volume(folder / "dicom", folder / "example_seg_dicom.nii.gz")
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg_dicom.nii.gz")))
    for label in (32, 33):
        assert volume.ct.volume[volume.labels == label].mean() > 150
    assert volume.ct.volume[stored == 32].mean() < 0


def test_the_sagittally_stored_cutout_is_read_in_anatomical_planes(shared_data: Path) -> None:
    folder = shared_data / "tptbox"
    volume = load_labelled_volume(
        folder / "sub-ct_label-22_ct.nii.gz", folder / "sub-ct_seg-vert_label-22_msk.nii.gz"
    )
    assert volume.ct.source_orientation == "PIR"
    z = {i: np.flatnonzero((volume.labels == i).any(axis=(1, 2))).mean() for i in (21, 22, 23)}
    assert z[21] > z[22] > z[23]  # L2 above L3 above L4 (z grows superiorly)
    middle = take_slice(volume.labels, "sagittal", volume.labels.shape[2] // 2)
    rows = {i: np.flatnonzero((middle == i).any(axis=1)).mean() for i in (21, 23)}
    assert rows[21] < rows[23]  # superior at the top of a sagittal view


def test_quick_report_on_real_sources(shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--quick", "--sources", "tptbox,dcmqi-3slice", "--backend", "baseline", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {(c["source"], c["plane"], c["prompt"]) for c in report["cells"]}
    assert ("tptbox", "sagittal", "point") in rows and ("tptbox", "3-D", "box") in rows
    assert ("dcmqi-3slice", "axial", "box") in rows
    assert not any(r[0] == "dcmqi-3slice" and r[1] != "axial" for r in rows)
    box = next(c for c in report["cells"] if c["source"] == "dcmqi-3slice" and c["prompt"] == "box")
    assert box["clean"] > 0.6  # measured 0.892 for the baseline on these manual labels
    assert report["table"].startswith("| source | plane | prompt | n | baseline clean |")
