"""The learned default's training pipeline: packs, random crops, fitting, export, validation.

Small and synthetic where possible (the phantom), real data where the point is the data
(labels resampled by physical position), skipped when ../shared/data is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spinalsam.phantom import make_spine_phantom  # noqa: E402
from spinalsam.segmenters.crops import CHANNELS  # noqa: E402
from spinalsam.segmenters.learned import LearnedConfig, predict_mask  # noqa: E402
from spinalsam.training.default_loop import (  # noqa: E402
    FitConfig,
    fit,
    generate,
    learned,
    torch_runner,
    validate,
)
from spinalsam.training.default_model import UNet, export_onnx  # noqa: E402
from spinalsam.training.default_sampler import (  # noqa: E402
    HU_OFFSET,
    HU_STEP,
    Item,
    dequantise,
    entries,
    make_sample,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _phantom_item() -> Item:
    hu, labels = make_spine_phantom(shape=(24, 96, 96), n_vertebrae=2)
    volume = np.clip(np.rint((hu - HU_OFFSET) / HU_STEP), 0, 255).astype(np.uint8)
    return Item(
        volume,
        labels.astype(np.uint8),
        (0.8, 0.8, 2.0),
        True,
        ("axial", "coronal", "sagittal"),
        stacked=False,
    )


def test_quantised_hu_round_trip_within_half_a_step() -> None:
    item = _phantom_item()
    hu, _ = make_spine_phantom(shape=(24, 96, 96), n_vertebrae=2)
    inside = (hu > HU_OFFSET) & (hu < HU_OFFSET + 255 * HU_STEP)
    assert np.abs(dequantise(item.volume)[inside] - hu[inside]).max() <= HU_STEP / 2 + 1e-3


def test_entries_cover_every_plane_and_label() -> None:
    found = entries([_phantom_item()])
    assert {e.plane for e in found} == {"axial", "coronal", "sagittal"}
    assert {e.label for e in found} == {1, 2}


def test_samples_are_seeded_and_hold_their_object() -> None:
    items = [_phantom_item()]
    found = entries(items)
    pairs = [make_sample(items, found[k], np.random.default_rng(k), size=64) for k in range(20)]
    again = make_sample(items, found[3], np.random.default_rng(3), size=64)
    np.testing.assert_array_equal(pairs[3][0], again[0])
    for inputs, target in pairs:
        assert inputs.shape == (CHANNELS, 64, 64) and inputs.dtype == np.uint8
        assert target.shape == (64, 64)
    # every prompt has a box or a click, and the object lies mostly inside the crop
    assert all(x[1].any() or x[2].any() for x, _ in pairs)
    assert np.mean([t.mean() for _, t in pairs]) > 0.05


def test_generation_does_not_depend_on_the_number_of_processes() -> None:
    packs = {"phantom": [_phantom_item()]}
    one = generate(packs, 300, seed=1, workers=1)["phantom"]
    two = generate(packs, 300, seed=1, workers=2)["phantom"]
    np.testing.assert_array_equal(one[0], two[0])


def test_fit_learns_export_matches_and_validation_scores(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    items = [_phantom_item()]
    xs, ys = generate({"phantom": items}, 512, seed=0, workers=1)["phantom"]
    model = fit(xs, ys, FitConfig((8, 16), steps=60, batch=16, lr=1e-2), "cpu", log=lambda _: None)
    path = tmp_path / "m.onnx"
    export_onnx(model, 96, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = np.random.default_rng(0).random((2, CHANNELS, 96, 96), dtype=np.float32)
    expected = torch_runner(model)(inputs)
    np.testing.assert_allclose(session.run(None, {"inputs": inputs})[0], expected, atol=1e-3)
    scores = validate(learned(torch_runner(model)), items, per_plane=2, seed=0)
    assert set(scores) == {"axial", "coronal", "sagittal"}
    assert scores["axial"]["n"] == 2 and 0.0 <= scores["axial"]["box"] <= 1.0
    assert np.mean([v for s in scores.values() for k, v in s.items() if k != "n"]) > 0.3


def test_network_standardises_intensity_itself() -> None:
    """A render and a darker, flatter copy give the same standardised channel."""
    model = UNet((8, 16)).eval()
    captured = []
    model.down[0].register_forward_hook(lambda m, i, o: captured.append(i[0][:, -1].clone()))
    x = torch.rand(1, CHANNELS, 32, 32)
    y = x.clone()
    y[:, 0] = x[:, 0] * 0.8 + 0.1
    with torch.no_grad():
        model(x), model(y)
    torch.testing.assert_close(captured[0], captured[1], atol=1e-2, rtol=0)  # up to its +0.02


@pytest.mark.skipif(not (DATA / "totalseg-example").is_dir(), reason="../shared/data is absent")
def test_packs_resample_labels_by_physical_position(tmp_path: Path) -> None:
    """TotalSegmentator's DICOM label map is flipped in y against its series: by index, T12
    would land on soft tissue; by physical position it lands on bone."""
    from spinalsam.training.default_data import _volume_item

    folder = DATA / "totalseg-example"
    item = _volume_item(folder / "dicom", folder / "example_seg_dicom.nii.gz", (32, 33))
    hu = dequantise(item.volume)
    assert set(np.unique(item.labels)) == {0, 32, 33}
    assert np.median(hu[item.labels == 32]) > 150


def test_predict_mask_runs_on_a_trained_runner_for_every_prompt_kind() -> None:
    model = UNet((8, 16)).eval()
    run = torch_runner(model)
    from spinalsam.segmenters.base import Prompt, SliceImage

    pixels = np.zeros((80, 90), np.float32)
    image = SliceImage(pixels, pixels.astype(np.uint8), True, (0.7, 2.5))
    prior = np.zeros((80, 90), bool)
    prior[30:40, 30:50] = True
    for prompt in (
        Prompt(box=np.array([20, 20, 60, 50])),
        Prompt(points=np.array([[40, 35], [10, 10]]), labels=np.array([1, 0])),
        Prompt(mask_input=prior),
    ):
        assert predict_mask(run, image, prompt, LearnedConfig()).shape == (80, 90)
