"""SAM + LoRA + CBAM (+ decoder) on the tiny SAM: injection, identity init, strict loading,
adapters, and the tiny model's configurable input size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sam_fixtures import slice_image

from spinalsam.sam import (
    CBAM,
    SamConfig,
    SamError,
    SpinalSAM,
    build_sam,
    build_spinalsam,
    load_adapter,
    merge_adapter,
    save_adapter,
    save_tiny_checkpoint,
)
from spinalsam.sam.model import file_sha256


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "sam_vit_tiny.pth", seed=0)


def _prompted_logits(model: SpinalSAM, image: np.ndarray) -> torch.Tensor:
    """Low-res logits for one positive click and a box, multimask, on `image`."""
    x, info = model.preprocess(image)
    coords = torch.tensor(model.to_input_coords(np.array([[30, 20]]), info), dtype=torch.float32)
    box = torch.tensor(model.to_input_boxes(np.array([10, 8, 50, 40]), info), dtype=torch.float32)
    with torch.no_grad():
        logits, _ = model.decode(
            model.embed(x), coords[None], torch.tensor([[1]]), box[None], multimask_output=True
        )
    return logits


def _train_a_little(model: SpinalSAM) -> None:
    """Stand-in for fine-tuning: move every trainable weight away from its no-op init."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)


def test_untrained_cbam_is_exactly_the_identity() -> None:
    cbam = CBAM(channels=32, reduction=4)
    x = torch.randn(2, 32, 8, 8)
    assert torch.equal(cbam(x), x)
    with torch.no_grad():
        cbam.gamma.fill_(1.0)
    assert not torch.allclose(cbam(x), x)


def test_lora_goes_only_into_the_requested_attention_layers(checkpoint: Path) -> None:
    def lora_layers(targets: tuple[str, ...]) -> list[str]:
        model = build_spinalsam(SamConfig("vit_tiny", lora_targets=targets), checkpoint)
        return sorted(
            n.removesuffix(".lora_A")
            for n, _ in model.sam.image_encoder.named_modules()
            if n.endswith(".lora_A")
        )

    assert lora_layers(("qkv",)) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    # "proj" must not also catch the patch-embedding convolution `patch_embed.proj`.
    assert lora_layers(("qkv", "proj")) == [
        "blocks.0.attn.proj",
        "blocks.0.attn.qkv",
        "blocks.1.attn.proj",
        "blocks.1.attn.qkv",
    ]


def test_only_lora_and_cbam_train_and_counts_add_up(checkpoint: Path) -> None:
    model = build_spinalsam(SamConfig("vit_tiny", lora_rank=4), checkpoint)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    assert all(".lora_" in n or n.startswith("cbam.") for n in trainable)
    counts = model.parameter_counts()
    base = sum(p.numel() for p in build_sam("vit_tiny", checkpoint).parameters())
    # rank 4 on two qkv layers of width 32 -> 96 outputs: A is 4x32, B is 96x4 per layer.
    assert counts["lora"] == 2 * (4 * 32 + 96 * 4)
    assert counts["trainable"] == counts["lora"] + counts["cbam"] and counts["decoder"] == 0
    assert counts["total"] == base + counts["lora"] + counts["cbam"]
    assert model.key_check.ok and model.key_check.loaded == len(torch.load(checkpoint))


def test_fresh_spinalsam_predicts_exactly_like_the_base_sam(checkpoint: Path) -> None:
    image = slice_image().display
    adapted = build_spinalsam(SamConfig("vit_tiny"), checkpoint)
    plain = build_spinalsam(SamConfig("vit_tiny", use_cbam=False), checkpoint)
    merge_adapter(plain)  # zero LoRA B: merging leaves the pure base SAM
    sam = build_sam("vit_tiny", checkpoint)
    x, _ = adapted.preprocess(image)
    with torch.no_grad():
        assert torch.allclose(adapted.embed(x), sam.image_encoder(x), atol=1e-6)
    assert torch.allclose(
        _prompted_logits(adapted, image), _prompted_logits(plain, image), atol=1e-6
    )


def test_preprocess_and_upscale_use_sams_frame(checkpoint: Path) -> None:
    model = build_spinalsam(SamConfig("vit_tiny"), checkpoint)
    x, info = model.preprocess(slice_image(48, 64).display)
    assert x.shape == (1, 3, 128, 128)
    assert info.original_size == (48, 64) and info.input_size == (96, 128)
    assert np.allclose(model.to_input_coords(np.array([[32, 24]]), info), [[64, 48]])
    logits = _prompted_logits(model, slice_image(48, 64).display)
    assert logits.shape == (1, 3, 32, 32)
    assert model.upscale_logits(logits, info).shape == (1, 3, 48, 64)
    with pytest.raises(SamError, match="8-bit"):
        model.preprocess(np.zeros((8, 8), dtype=np.float32))


def test_batched_decode_matches_one_by_one(checkpoint: Path) -> None:
    model = build_spinalsam(SamConfig("vit_tiny"), checkpoint)
    emb = torch.randn(2, 32, 8, 8)
    coords, labels = torch.tensor([[[10.0, 20.0]], [[90.0, 60.0]]]), torch.tensor([[1], [1]])
    with torch.no_grad():
        both, ious = model.decode(emb, coords, labels)
        first, _ = model.decode(emb[:1], coords[:1], labels[:1])
        second, _ = model.decode(emb[1:], coords[1:], labels[1:])
    assert both.shape == (2, 1, 32, 32) and ious.shape == (2, 1)
    assert torch.allclose(both, torch.cat([first, second]), atol=1e-6)


def test_strict_loading_names_missing_and_unexpected_keys(tmp_path: Path, checkpoint: Path) -> None:
    state = torch.load(checkpoint)
    del state["mask_decoder.iou_token.weight"]
    state["image_encoder.extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(SamError) as err:
        build_sam("vit_tiny", bad)
    assert "mask_decoder.iou_token.weight" in str(err.value)
    assert "image_encoder.extra.weight" in str(err.value)
    with pytest.raises(SamError, match="not found"):
        build_sam("vit_tiny", tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SamError, match="could not read"):
        build_sam("vit_tiny", tmp_path / "junk.pth")


def test_config_rejects_unknown_targets_and_types() -> None:
    with pytest.raises(SamError, match="LoRA targets"):
        SamConfig("vit_tiny", lora_targets=("mlp",))
    with pytest.raises(SamError, match="unknown SAM model type"):
        SamConfig("vit_x")  # type: ignore[arg-type]


def test_adapter_round_trip_and_merge_keep_the_masks(tmp_path: Path, checkpoint: Path) -> None:
    image = slice_image().display
    trained = build_spinalsam(SamConfig("vit_tiny", lora_rank=4), checkpoint)
    _train_a_little(trained)
    expected = _prompted_logits(trained, image)
    folder = save_adapter(trained, tmp_path / "adapter", "local:tiny", file_sha256(checkpoint))
    assert {p.name for p in folder.iterdir()} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "cbam.safetensors",
        "spinalsam.json",
    }
    meta = json.loads((folder / "spinalsam.json").read_text())
    assert meta["model_type"] == "vit_tiny" and meta["base_sha256"] == file_sha256(checkpoint)

    # The adapter's own rank wins over the (different) rank asked for.
    loaded = build_spinalsam(SamConfig("vit_tiny", lora_rank=16), checkpoint, adapter=folder)
    assert loaded.config.lora_rank == 4
    assert torch.allclose(_prompted_logits(loaded, image), expected, atol=1e-6)

    merge_adapter(loaded)
    assert loaded.lora_merged and loaded.parameter_counts()["lora"] == 0
    assert torch.allclose(_prompted_logits(loaded, image), expected, atol=1e-4)
    with pytest.raises(SamError, match="merged"):
        save_adapter(loaded, tmp_path / "again", None, None)
    assert not torch.allclose(
        expected, _prompted_logits(build_spinalsam(SamConfig("vit_tiny"), checkpoint), image)
    )


def test_adapter_refuses_other_base_weights_and_bad_keys(tmp_path: Path, checkpoint: Path) -> None:
    model = build_spinalsam(SamConfig("vit_tiny"), checkpoint)
    folder = save_adapter(model, tmp_path / "adapter", "local:tiny", "f" * 64)
    with pytest.raises(SamError, match="sha256"):
        load_adapter(build_spinalsam(SamConfig("vit_tiny"), checkpoint), folder)

    folder = save_adapter(model, tmp_path / "adapter2", "local:tiny", None)
    no_cbam = build_spinalsam(SamConfig("vit_tiny", use_cbam=False), checkpoint)
    with pytest.raises(SamError, match="without CBAM"):
        load_adapter(no_cbam, folder)
    wider = build_spinalsam(SamConfig("vit_tiny", lora_targets=("qkv", "proj")), checkpoint)
    with pytest.raises(SamError, match=r"missing \['blocks.0.attn.proj"):
        load_adapter(wider, folder)
    with pytest.raises(SamError, match="not a SpinalSAM adapter"):
        load_adapter(model, tmp_path)


def test_train_decoder_unfreezes_only_the_mask_decoder(checkpoint: Path) -> None:
    model = build_spinalsam(SamConfig("vit_tiny", lora_rank=4, train_decoder=True), checkpoint)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    decoder = {f"sam.mask_decoder.{n}" for n, _ in model.sam.mask_decoder.named_parameters()}
    assert decoder <= trainable
    # The base encoder (apart from LoRA) and the prompt encoder stay frozen.
    assert all(n in decoder or ".lora_" in n or n.startswith("cbam.") for n in trainable), sorted(
        trainable - decoder
    )
    counts = model.parameter_counts()
    assert counts["decoder"] == sum(p.numel() for p in model.sam.mask_decoder.parameters()) > 0
    assert counts["trainable"] == counts["lora"] + counts["cbam"] + counts["decoder"]


def test_adapter_with_a_trained_decoder_round_trips_and_survives_merging(
    tmp_path: Path, checkpoint: Path
) -> None:
    image = slice_image().display
    trained = build_spinalsam(SamConfig("vit_tiny", train_decoder=True), checkpoint)
    _train_a_little(trained)
    expected = _prompted_logits(trained, image)
    folder = save_adapter(trained, tmp_path / "adapter", "local:tiny", file_sha256(checkpoint))
    assert (folder / "decoder.safetensors").is_file()
    assert json.loads((folder / "spinalsam.json").read_text())["train_decoder"] is True

    # The adapter's switch wins: a config without train_decoder still gets the trained decoder.
    loaded = build_spinalsam(SamConfig("vit_tiny"), checkpoint, adapter=folder)
    assert loaded.config.train_decoder
    assert torch.allclose(_prompted_logits(loaded, image), expected, atol=1e-6)
    merge_adapter(loaded)
    assert torch.allclose(_prompted_logits(loaded, image), expected, atol=1e-4)

    # Without its decoder the same LoRA + CBAM predict something else: the decoder mattered.
    lora_only = build_spinalsam(SamConfig("vit_tiny"), checkpoint)
    lora_only.load_state_dict(
        {k: v for k, v in trained.state_dict().items() if "mask_decoder" not in k}, strict=False
    )
    assert not torch.allclose(_prompted_logits(lora_only, image), expected, atol=1e-3)

    with pytest.raises(SamError, match="without train_decoder"):
        load_adapter(build_spinalsam(SamConfig("vit_tiny"), checkpoint), folder)
    (folder / "decoder.safetensors").unlink()
    with pytest.raises(SamError, match=r"missing: .*decoder\.safetensors"):
        build_spinalsam(SamConfig("vit_tiny"), checkpoint, adapter=folder)


def test_decoder_weights_load_with_a_strict_key_check(tmp_path: Path, checkpoint: Path) -> None:
    model = build_spinalsam(SamConfig("vit_tiny", train_decoder=True), checkpoint)
    folder = save_adapter(model, tmp_path / "adapter", None, None)
    weights = load_file(folder / "decoder.safetensors")
    weights["extra.weight"] = weights.pop("iou_token.weight")
    save_file(weights, folder / "decoder.safetensors")
    with pytest.raises(SamError, match=r"missing \['iou_token.weight'\].*unexpected \['extra"):
        load_adapter(model, folder)


def test_adapters_without_decoder_still_load_and_saving_removes_a_stale_decoder(
    tmp_path: Path, checkpoint: Path
) -> None:
    image = slice_image().display
    model = build_spinalsam(SamConfig("vit_tiny"), checkpoint)
    _train_a_little(model)
    folder = save_adapter(model, tmp_path / "adapter", None, None)
    assert not (folder / "decoder.safetensors").exists()
    meta = json.loads((folder / "spinalsam.json").read_text())
    del meta["train_decoder"]  # as written before decoder training existed
    (folder / "spinalsam.json").write_text(json.dumps(meta))
    loaded = build_spinalsam(SamConfig("vit_tiny", train_decoder=True), checkpoint, adapter=folder)
    assert not loaded.config.train_decoder and loaded.parameter_counts()["decoder"] == 0
    assert torch.allclose(_prompted_logits(loaded, image), _prompted_logits(model, image))

    with_decoder = build_spinalsam(SamConfig("vit_tiny", train_decoder=True), checkpoint)
    save_adapter(with_decoder, folder, None, None)
    save_adapter(model, folder, None, None)  # same folder, now without a trained decoder
    assert not (folder / "decoder.safetensors").exists()
    load_adapter(build_spinalsam(SamConfig("vit_tiny"), checkpoint), folder)


@pytest.mark.parametrize("size", [64, 96])
def test_tiny_image_size_is_a_parameter_read_back_from_the_checkpoint(
    tmp_path: Path, size: int
) -> None:
    path = save_tiny_checkpoint(tmp_path / "tiny.pth", seed=0, img_size=size)
    assert torch.load(path)["image_encoder.pos_embed"].shape == (1, size // 16, size // 16, 32)
    model = build_spinalsam(SamConfig("vit_tiny"), path)
    assert model.img_size == size and model.key_check.ok
    x, info = model.preprocess(slice_image(48, 64).display)
    assert x.shape == (1, 3, size, size) and info.input_size == (size * 3 // 4, size)
    logits = _prompted_logits(model, slice_image(48, 64).display)
    assert logits.shape == (1, 3, size // 4, size // 4)
    assert model.upscale_logits(logits, info).shape == (1, 3, 48, 64)


def test_tiny_image_size_must_fit_the_patch_grid(tmp_path: Path) -> None:
    with pytest.raises(SamError, match="multiple of 16"):
        save_tiny_checkpoint(tmp_path / "tiny.pth", img_size=100)
    state = torch.load(save_tiny_checkpoint(tmp_path / "tiny.pth", img_size=64))
    state["image_encoder.pos_embed"] = torch.zeros(1, 8, 8, 32)  # says 128 px, rel_pos says 64
    torch.save(state, tmp_path / "mixed.pth")
    with pytest.raises(SamError, match="does not fit a vit_tiny SAM"):
        build_sam("vit_tiny", tmp_path / "mixed.pth")


def test_decode_reuses_the_positional_encoding() -> None:
    model = build_spinalsam(SamConfig("vit_tiny", use_cbam=False))
    first = model._dense_pe()
    assert model._dense_pe() is first  # computed once
    torch.testing.assert_close(first, model.sam.prompt_encoder.get_dense_pe(), rtol=0, atol=0)
