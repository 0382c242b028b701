"""Fine-tuning end to end on a tiny SAM (CPU): learning, exact resume, adapter round trip, CLI.

The tiny SAM's base weights are random, so LoRA + CBAM alone barely learn through its random,
frozen decoder (Dice 0.21 -> 0.40 in 150 steps); these runs therefore also train the mask
decoder (`train_decoder`, the CLI's default for vit_tiny) while the base encoder stays frozen.
Thresholds come from measured runs of 60 steps at lr 1e-2 (seeds 0-2, 128 px): overfitting seven
phantom slices gives Dice 0.21 -> 0.96-0.97 and loss 0.8-1.1 -> 0.06-0.08 (means of 20 steps);
training on two slabs and validating on the held-out third gives 0.22 -> 0.95-0.96.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from spinalsam.phantom import make_spine_phantom
from spinalsam.sam.model import SamConfig, build_sam, build_spinalsam
from spinalsam.sam.tiny import save_tiny_checkpoint
from spinalsam.train import main
from spinalsam.training.checkpoint import CHECKPOINT_DIR
from spinalsam.training.data import Sample, load_volume_slices, split_by_case
from spinalsam.training.loop import TrainConfig, TrainResult, train
from spinalsam.training.publish import PublishError, push_adapter
from spinalsam.training.validate import predict_sample, validate

SLABS = r"^(.+_\d\d)\d$"  # ct_000..ct_009 -> ct_00: three slabs of ten slices


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The tiny model's ops are too small to gain from threads; on a shared CPU they thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CT NIfTI, label map NIfTI, tiny base checkpoint) in a temporary folder."""
    folder = tmp_path_factory.mktemp("phantom")
    volume, labels = make_spine_phantom((24, 96, 96), n_vertebrae=3, seed=0)
    for array, name in ((volume.astype(np.int16), "ct.nii.gz"), (labels, "seg.nii.gz")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.0, 1.0, 2.0))
        sitk.WriteImage(image, str(folder / name))
    base = save_tiny_checkpoint(folder / "tiny.pth", seed=0)
    return folder / "ct.nii.gz", folder / "seg.nii.gz", base


@pytest.fixture(scope="module")
def samples(phantom: tuple[Path, Path, Path]) -> list[Sample]:
    ct, seg, _ = phantom
    return load_volume_slices(ct, seg, labels=(1, 2, 3), case_pattern=SLABS)


@pytest.fixture(scope="module")
def split(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    return split_by_case(samples, 0.34, seed=0)


@pytest.fixture(scope="module")
def few(samples: list[Sample]) -> list[Sample]:
    """Seven slices spread over the three vertebrae: the set to overfit."""
    return samples[::3]


def _config(out: Path, base: Path, **changes: object) -> TrainConfig:
    config = TrainConfig(
        out=out,
        model_type="vit_tiny",
        checkpoint=base,
        checkpoint_spec=str(base),
        steps=60,
        batch_size=4,
        lr=1e-2,
        lora_targets=("qkv", "proj"),
        train_decoder=True,
        val_every=60,
        save_every=60,
        progress=False,
    )
    return replace(config, **changes)


@pytest.fixture(scope="module")
def overfit(
    tmp_path_factory: pytest.TempPathFactory,
    phantom: tuple[Path, Path, Path],
    few: list[Sample],
) -> TrainResult:
    out = tmp_path_factory.mktemp("overfit")
    return train(_config(out, phantom[2], log_jsonl=out / "log.jsonl"), few, few)


def test_split_keeps_cases_apart(split: tuple[list[Sample], list[Sample]]) -> None:
    train_samples, val_samples = split
    assert len({s.case for s in val_samples}) == 1 and len({s.case for s in train_samples}) == 2
    assert {s.case for s in train_samples}.isdisjoint({s.case for s in val_samples})


def test_tiny_sam_overfits_a_few_phantom_slices(overfit: TrainResult) -> None:
    history = overfit.history
    baseline, final = history[0], history[-1]
    assert baseline["step"] == 0 and baseline["loss"] is None and final["step"] == 60
    losses = [r["loss"] for r in history[1:]]
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.3 * first, (first, last)  # measured: 1.09 -> 0.06 (means of 20 steps)
    assert baseline["val_dice"] < 0.25  # measured 0.21: the random base guesses
    assert final["val_dice"] > 0.85, final  # measured 0.96-0.97 over seeds 0-2
    assert overfit.best_val_dice == final["val_dice"]


@pytest.mark.parametrize("seed", [1, 2])
def test_tiny_sam_generalises_to_a_held_out_slab(
    tmp_path: Path, seed: int, split: tuple[list[Sample], list[Sample]]
) -> None:
    base = save_tiny_checkpoint(tmp_path / "tiny.pth", seed=seed)
    result = train(_config(tmp_path / "run", base, seed=seed), *split)
    assert result.history[0]["val_dice"] < 0.25  # measured 0.22
    assert result.best_val_dice > 0.85  # measured 0.95 (seed 2) and 0.96 (seeds 0, 1)


def test_training_leaves_the_base_encoders_frozen(
    overfit: TrainResult, phantom: tuple[Path, Path, Path]
) -> None:
    """Only LoRA, CBAM and the decoder may move: the image and prompt encoders are the base's."""
    base = build_sam("vit_tiny", phantom[2]).state_dict()
    sam = overfit.model.sam
    encoder = {
        f"image_encoder.{name.replace('.base_layer', '')}": tensor
        for name, tensor in sam.image_encoder.state_dict().items()
        if ".lora_" not in name
    }
    prompt_encoder = {f"prompt_encoder.{n}": t for n, t in sam.prompt_encoder.state_dict().items()}
    for name, tensor in (encoder | prompt_encoder).items():
        assert torch.equal(tensor, base[name]), name
    decoder = sam.mask_decoder.state_dict()
    changed = [n for n, t in decoder.items() if not torch.equal(t, base[f"mask_decoder.{n}"])]
    assert len(changed) > len(decoder) // 2
    lora_b = [p for n, p in sam.image_encoder.named_parameters() if ".lora_B." in n]
    assert lora_b and all(p.abs().max() > 0 for p in lora_b)


def test_log_jsonl_has_a_line_per_step(overfit: TrainResult) -> None:
    lines = (overfit.adapter.parent / "log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == list(range(61))
    assert all({"step", "loss", "lr", "val_dice"} <= r.keys() for r in records)
    assert [r["step"] for r in records if r["val_dice"] is not None] == [0, 60]
    lrs = [r["lr"] for r in records[1:]]
    assert max(lrs) == pytest.approx(1e-2, rel=0.15) and lrs[-1] < 1e-4  # warmup, cosine to 0


def test_best_adapter_reloads_with_identical_predictions(
    overfit: TrainResult, phantom: tuple[Path, Path, Path], few: list[Sample]
) -> None:
    assert (overfit.adapter / "adapter_model.safetensors").is_file()
    assert (overfit.adapter / "decoder.safetensors").is_file()
    config = SamConfig("vit_tiny", lora_targets=("qkv", "proj"))  # the adapter adds the decoder
    fresh = build_spinalsam(config, checkpoint=phantom[2], adapter=overfit.adapter)
    trained = overfit.model.eval()
    for sample in few[:3]:
        for kind in ("box", "point"):
            np.testing.assert_array_equal(
                predict_sample(fresh, sample, kind), predict_sample(trained, sample, kind)
            )
    assert validate(fresh, few)["val_dice"] == pytest.approx(overfit.best_val_dice)
    untrained = build_spinalsam(config, checkpoint=phantom[2])
    assert validate(untrained, few)["val_dice"] < overfit.best_val_dice - 0.5


def test_resume_continues_identically(
    tmp_path: Path, phantom: tuple[Path, Path, Path], split: tuple[list, list]
) -> None:
    changes = {"steps": 6, "batch_size": 2, "save_every": 3, "val_every": 3}
    changes["correction_clicks"] = 2  # exercises the iterative path and its extra RNG draws
    straight = train(_config(tmp_path / "a", phantom[2], **changes), *split)
    halfway = tmp_path / "a" / CHECKPOINT_DIR / "step_0000003.pt"
    resumed = train(_config(tmp_path / "b", phantom[2], **changes), *split, resume=halfway)
    assert [r["step"] for r in resumed.history] == [4, 5, 6]
    assert [r["loss"] for r in resumed.history] == pytest.approx(
        [r["loss"] for r in straight.history[4:]], abs=1e-6
    )
    assert resumed.history[-1]["val_dice"] == pytest.approx(straight.history[-1]["val_dice"])
    a = dict(straight.model.named_parameters())
    for name, param in resumed.model.named_parameters():
        torch.testing.assert_close(param, a[name], atol=1e-6, rtol=0)


def test_cli_trains_and_reports(
    tmp_path: Path, phantom: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ct, seg, _ = phantom
    out = tmp_path / "run"
    argv = [
        *("--data", str(ct), "--label-map", str(seg), "--labels", "1,2,3"),
        *("--case-pattern", SLABS, "--model-type", "vit_tiny", "--image-size", "64"),
        *("--steps", "2", "--batch-size", "1", "--val-every", "2", "--no-progress"),
    ]
    assert main([*argv, "--out", str(out), "--log-jsonl", str(out / "log.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["adapter"] == str(out / "adapter") and 0 <= summary["best_val_dice"] <= 1
    assert len((out / "log.jsonl").read_text().splitlines()) == 3
    assert (out / CHECKPOINT_DIR / "step_0000002.pt").exists()
    # vit_tiny trains its decoder by default, and the base records the asked-for input size.
    assert (out / "adapter" / "decoder.safetensors").is_file()
    model = build_spinalsam(SamConfig("vit_tiny"), out / "tiny_base.pth", adapter=out / "adapter")
    assert model.img_size == 64 and model.config.train_decoder
    assert main([*argv, "--out", str(out), "--resume"]) == 0  # at the last step: nothing to do

    plain = tmp_path / "plain"
    assert main([*argv, "--out", str(plain), "--no-train-decoder", "--steps", "1"]) == 0
    assert not (plain / "adapter" / "decoder.safetensors").exists()

    capsys.readouterr()
    for bad, message in (
        (["--data", str(ct), "--model-type", "vit_b", "--image-size", "64"], "applies only"),
        (["--data", str(ct), "--model-type", "vit_tiny", "--image-size", "100"], "multiple of 16"),
        (["--data", str(tmp_path / "nope")], "does not exist"),
    ):
        assert main(["--out", str(out), *bad]) == 2
        assert message in capsys.readouterr().err


def test_push_needs_a_token_and_reports_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PublishError, match="HF_TOKEN"):
        push_adapter(tmp_path, "me/spine-lora")

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def __init__(self, token: str) -> None:
            calls.append(("init", {"token": token}))

        def create_repo(self, repo_id: str, **kwargs: object) -> str:
            calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kwargs: object) -> None:
            calls.append(("upload_folder", kwargs))

    monkeypatch.setattr("spinalsam.training.publish.HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert push_adapter(tmp_path, "me/spine-lora") == "https://huggingface.co/me/spine-lora"
    assert calls[0] == ("init", {"token": "hf_test"})
    assert calls[1][1]["exist_ok"] is True
    assert calls[2][1]["folder_path"] == str(tmp_path) and calls[2][1]["repo_id"] == "me/spine-lora"

    class OfflineApi(FakeApi):
        def create_repo(self, repo_id: str, **kwargs: object) -> str:
            raise OSError("Name or service not known")

    monkeypatch.setattr("spinalsam.training.publish.HfApi", OfflineApi)
    with pytest.raises(PublishError, match=r"offline.*saved locally"):
        push_adapter(tmp_path, "me/spine-lora")
