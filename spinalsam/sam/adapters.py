"""Trained LoRA + CBAM (+ mask decoder) weights as a folder one can push to the Hugging Face Hub.

Layout (peft's own files, plus two of ours):
- `adapter_config.json`        peft `LoraConfig` (rank, alpha, dropout, target regex)
- `adapter_model.safetensors`  LoRA weights from peft's `get_peft_model_state_dict`, with keys
                               relative to SAM's image encoder (`blocks.0.attn.qkv.lora_A.weight`)
- `cbam.safetensors`           the CBAM block's state dict (absent when CBAM is off)
- `decoder.safetensors`        the mask decoder's state dict, only when it was trained
                               (`train_decoder`); adapters without it use the base decoder
- `spinalsam.json`             base model type, base checkpoint spec and SHA-256, LoRA targets,
                               CBAM and decoder switches and library version

The SHA-256 pins the exact base weights: LoRA deltas trained on one SAM are meaningless on
another, so loading onto a different base is refused instead of producing quiet garbage.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from peft import LoraConfig
from peft.functional import get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file
from torch import nn

import spinalsam
from spinalsam.sam.errors import SamError

if TYPE_CHECKING:
    from spinalsam.sam.model import SamConfig, SpinalSAM

__all__ = [
    "ADAPTER_WEIGHTS",
    "CBAM_WEIGHTS",
    "DECODER_WEIGHTS",
    "METADATA",
    "adapter_config",
    "load_adapter",
    "merge_adapter",
    "read_metadata",
    "save_adapter",
]

ADAPTER_WEIGHTS = "adapter_model.safetensors"
CBAM_WEIGHTS = "cbam.safetensors"
DECODER_WEIGHTS = "decoder.safetensors"
METADATA = "spinalsam.json"
_FORMAT_VERSION = 1


def save_adapter(
    model: SpinalSAM, folder: str | Path, base_spec: str | None, base_sha256: str | None
) -> Path:
    """Write the model's LoRA, CBAM and (when trained) decoder weights and metadata to `folder`."""
    if model.lora_merged:
        raise SamError("this model's LoRA is already merged into the base; save before merging")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = model.sam.image_encoder
    encoder.peft_config["default"].save_pretrained(str(folder))
    lora = get_peft_model_state_dict(encoder)
    save_file({k: v.detach().cpu().contiguous() for k, v in lora.items()}, folder / ADAPTER_WEIGHTS)
    if model.cbam is not None:
        save_file(_tensors(model.cbam), folder / CBAM_WEIGHTS)
    decoder_path = folder / DECODER_WEIGHTS
    if model.config.train_decoder:
        save_file(_tensors(model.sam.mask_decoder), decoder_path)
    else:  # a stale file from an earlier save into this folder would be loaded by mistake
        decoder_path.unlink(missing_ok=True)
    metadata = {
        "format_version": _FORMAT_VERSION,
        "model_type": model.config.model_type,
        "lora_targets": list(model.config.lora_targets),
        "use_cbam": model.config.use_cbam,
        "train_decoder": model.config.train_decoder,
        "base_checkpoint": base_spec,
        "base_sha256": base_sha256,
        "spinalsam_version": spinalsam.__version__,
    }
    (folder / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    return folder


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """The adapter's `spinalsam.json`, with a clear error when the folder is not an adapter."""
    path = Path(folder) / METADATA
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SamError(f"{folder} is not a SpinalSAM adapter (no {METADATA})") from exc
    except json.JSONDecodeError as exc:
        raise SamError(f"{path} is not valid JSON: {exc}") from exc
    if metadata.get("format_version") != _FORMAT_VERSION:
        raise SamError(
            f"adapter format {metadata.get('format_version')!r} is not supported "
            f"(this SpinalSAM reads format {_FORMAT_VERSION})"
        )
    return metadata


def adapter_config(folder: str | Path, base: SamConfig) -> SamConfig:
    """`base` with the model type, LoRA shape, CBAM and decoder switches of the adapter.

    Adapters written before decoder training existed have no `train_decoder`: they left the
    base decoder untouched.
    """
    metadata = read_metadata(folder)
    lora = LoraConfig.from_pretrained(str(folder))
    return dataclasses.replace(
        base,
        model_type=metadata["model_type"],
        lora_rank=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        lora_targets=tuple(metadata["lora_targets"]),
        use_cbam=bool(metadata["use_cbam"]),
        train_decoder=bool(metadata.get("train_decoder", False)),
    )


def load_adapter(model: SpinalSAM, folder: str | Path) -> SpinalSAM:
    """Load an adapter's LoRA, CBAM and decoder weights into `model`, checking base and keys
    strictly; the model must have been built with the adapter's CBAM and decoder switches."""
    folder = Path(folder)
    metadata = read_metadata(folder)
    if metadata["model_type"] != model.config.model_type:
        raise SamError(
            f"adapter was trained on {metadata['model_type']}, the loaded SAM is "
            f"{model.config.model_type}"
        )
    expected, actual = metadata.get("base_sha256"), model.key_check.sha256
    if expected and actual and expected != actual:
        raise SamError(
            f"adapter expects base weights {metadata.get('base_checkpoint')} "
            f"(sha256 {expected[:12]}…) but the loaded checkpoint has sha256 {actual[:12]}…"
        )
    if model.lora_merged:
        raise SamError("cannot load an adapter into a model whose LoRA was merged")
    encoder = model.sam.image_encoder
    weights = _read_safetensors(folder / ADAPTER_WEIGHTS)
    wanted = set(get_peft_model_state_dict(encoder))
    _check_keys("LoRA", wanted, set(weights))
    set_peft_model_state_dict(encoder, weights)
    cbam_path = folder / CBAM_WEIGHTS
    if model.cbam is None and cbam_path.exists():
        raise SamError("adapter has CBAM weights but the model was built without CBAM")
    if model.cbam is not None:
        cbam = _read_safetensors(cbam_path)
        _check_keys("CBAM", set(model.cbam.state_dict()), set(cbam))
        model.cbam.load_state_dict(cbam)
    decoder_path = folder / DECODER_WEIGHTS
    if not model.config.train_decoder and decoder_path.exists():
        raise SamError(
            "adapter has mask-decoder weights but the model was built without train_decoder"
        )
    if model.config.train_decoder:
        decoder = _read_safetensors(decoder_path)
        _check_keys("mask-decoder", set(model.sam.mask_decoder.state_dict()), set(decoder))
        try:
            model.sam.mask_decoder.load_state_dict(decoder)
        except RuntimeError as exc:  # same keys, other shapes: a decoder of another model
            raise SamError(f"mask-decoder weights do not fit this model: {exc}") from exc
    return model


def merge_adapter(model: SpinalSAM) -> SpinalSAM:
    """Fold LoRA into the encoder's base weights in place (peft's `merge_and_unload` semantics).

    Inference then runs plain `nn.Linear` layers: no LoRA overhead, same predictions. CBAM and
    a trained decoder are ordinary modules already and stay as they are.
    """
    encoder = model.sam.image_encoder
    layers = [(n, m) for n, m in encoder.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, layer in layers:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(encoder.get_submodule(parent_name), child, layer.get_base_layer())
    if hasattr(encoder, "peft_config"):
        del encoder.peft_config
    return model


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict as safetensors needs it: detached, on the CPU, contiguous."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _read_safetensors(path: Path) -> dict:
    if not path.is_file():
        raise SamError(f"adapter file missing: {path}")
    try:
        return load_file(path)
    except Exception as exc:  # truncated download, not a safetensors file, ...
        raise SamError(f"could not read {path.name}: {exc}") from exc


def _check_keys(what: str, wanted: set[str], found: set[str]) -> None:
    missing, unexpected = sorted(wanted - found), sorted(found - wanted)
    if missing or unexpected:
        raise SamError(
            f"{what} weights do not fit this model: missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'}"
        )
