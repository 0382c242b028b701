"""SAM with LoRA on the image encoder and CBAM on its embedding: building, loading, running.

The base SAM stays frozen; only the LoRA matrices (injected by `peft` into the encoder's attention
projections) and the CBAM block train. Both start as exact no-ops (LoRA B is zero, CBAM's gate
is zero), so a freshly built `SpinalSAM` predicts exactly what the base checkpoint predicts.
With `train_decoder` the (small) mask decoder trains as well: a base whose decoder never saw
spine masks, or a random-weight test model, cannot learn through LoRA and CBAM alone.

Checkpoints load strictly: the key check is kept on the model (`SpinalSAM.key_check`) so the app
can report exactly which weights were loaded instead of silently running half-random weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from peft import LoraConfig
from peft.functional import inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide
from torch import nn

from spinalsam.sam.adapters import adapter_config, load_adapter
from spinalsam.sam.cbam import CBAM
from spinalsam.sam.config import ModelType
from spinalsam.sam.errors import SamError
from spinalsam.sam.tiny import build_tiny_sam, tiny_img_size

__all__ = [
    "KeyCheck",
    "ModelType",
    "SamConfig",
    "SpinalSAM",
    "TransformInfo",
    "build_sam",
    "build_spinalsam",
    "file_sha256",
    "load_sam",
]

LoraTarget = Literal["qkv", "proj"]
_MODEL_TYPES: tuple[str, ...] = get_args(ModelType)


@dataclass(frozen=True)
class SamConfig:
    """Which SAM to build and how to adapt it; immutable so it can key caches."""

    model_type: ModelType
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("qkv",)
    use_cbam: bool = True
    train_decoder: bool = False  # the mask decoder trains too (and is saved with the adapter)

    def __post_init__(self) -> None:
        if self.model_type not in _MODEL_TYPES:
            raise SamError(
                f"unknown SAM model type {self.model_type!r}; choose one of {list(_MODEL_TYPES)}"
            )
        allowed = set(get_args(LoraTarget))
        if not self.lora_targets or not set(self.lora_targets) <= allowed:
            raise SamError(
                f"LoRA targets must be a non-empty subset of {sorted(allowed)}, "
                f"got {list(self.lora_targets)}"
            )
        if self.lora_rank < 1:
            raise SamError(f"LoRA rank must be at least 1, got {self.lora_rank}")

    def lora_config(self) -> LoraConfig:
        """The peft config; a regex so `proj` never also matches the patch-embedding conv.

        ViT blocks are `blocks.N.attn.*`; MobileSAM's TinyViT nests them in stages,
        `layers.S.blocks.N.attn.*`.
        """
        names = "|".join(sorted(set(self.lora_targets)))
        return LoraConfig(
            r=self.lora_rank,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=rf"(layers\.\d+\.)?blocks\.\d+\.attn\.({names})",
        )


@dataclass(frozen=True)
class KeyCheck:
    """Outcome of loading a base checkpoint: how many tensors loaded, and what did not match."""

    checkpoint: str | None
    sha256: str | None
    loaded: int
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected


@dataclass(frozen=True)
class TransformInfo:
    """Sizes needed to map prompts into, and masks out of, SAM's square input frame."""

    original_size: tuple[int, int]  # (H, W) of the image as given
    input_size: tuple[int, int]  # (h, w) after resizing the longest side, before padding
    transform: ResizeLongestSide = field(repr=False, compare=False)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, streamed, so adapters can name the exact base weights they expect."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _new_sam(model_type: ModelType, state: Mapping[str, torch.Tensor]) -> Sam:
    """A randomly initialised SAM; the tiny one takes its input size from the state to load."""
    if model_type == "vit_tiny":
        return build_tiny_sam(tiny_img_size(state))
    if model_type == "vit_t":  # MobileSAM; needs the 'mobilesam-mirror' and 'timm' packages
        from spinalsam.sam.fast import build_mobile_sam

        return build_mobile_sam()
    return sam_model_registry[model_type]()


def load_sam(model_type: ModelType, checkpoint: str | Path | None) -> tuple[Sam, KeyCheck]:
    """Build a SAM and load `checkpoint` strictly; raise `SamError` naming any key mismatch."""
    if model_type not in _MODEL_TYPES:
        raise SamError(f"unknown SAM model type {model_type!r}; choose one of {list(_MODEL_TYPES)}")
    if checkpoint is None:
        return _new_sam(model_type, {}).eval(), KeyCheck(None, None, loaded=0)
    path = Path(checkpoint)
    if not path.is_file():
        raise SamError(f"SAM checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, not a torch archive, pickled code, ...
        raise SamError(f"could not read SAM checkpoint {path.name}: {exc}") from exc
    if not isinstance(state, dict):
        raise SamError(f"{path.name} is not a SAM state dict")
    sam = _new_sam(model_type, state)
    try:
        result = sam.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same keys, wrong shapes: usually the wrong model type
        raise SamError(f"{path.name} does not fit a {model_type} SAM: {exc}") from exc
    check = KeyCheck(
        checkpoint=str(path),
        sha256=file_sha256(path),
        loaded=len(state) - len(result.unexpected_keys),
        missing=tuple(result.missing_keys),
        unexpected=tuple(result.unexpected_keys),
    )
    if not check.ok:
        raise SamError(
            f"{path.name} does not match a {model_type} SAM: "
            f"missing keys {_preview(check.missing)}; unexpected keys {_preview(check.unexpected)}"
        )
    return sam.eval(), check


def build_sam(model_type: ModelType, checkpoint: str | Path | None) -> Sam:
    """A plain segment_anything `Sam`, loaded strictly from `checkpoint` when one is given."""
    return load_sam(model_type, checkpoint)[0]


def _preview(keys: tuple[str, ...], limit: int = 8) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


class SpinalSAM(nn.Module):
    """A frozen SAM whose encoder carries LoRA and whose embedding passes through CBAM
    (and whose mask decoder trains too when `config.train_decoder` is set)."""

    def __init__(self, sam: Sam, config: SamConfig, key_check: KeyCheck | None = None) -> None:
        super().__init__()
        sam.requires_grad_(False)
        sam.mask_decoder.requires_grad_(config.train_decoder)
        # peft marks only the injected LoRA matrices trainable inside the encoder.
        inject_adapter_in_model(config.lora_config(), sam.image_encoder)
        self.sam = sam
        self.cbam = CBAM(sam.prompt_encoder.embed_dim) if config.use_cbam else None
        self.config = config
        self.key_check = key_check or KeyCheck(None, None, loaded=0)
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)

    @property
    def device(self) -> torch.device:
        return self.sam.device

    @property
    def img_size(self) -> int:
        return self.sam.image_encoder.img_size

    @property
    def lora_merged(self) -> bool:
        """True once `merge_adapter` folded LoRA into the base weights."""
        return not any(isinstance(m, BaseTunerLayer) for m in self.sam.image_encoder.modules())

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, C, h, w) embeddings (encoder, then CBAM)."""
        embeddings = self.sam.image_encoder(images)
        return self.cbam(embeddings) if self.cbam is not None else embeddings

    def decode(
        self,
        embeddings: torch.Tensor,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in the input frame -> (low-res logits (B, K, 4h, 4w), IoU predictions (B, K)).

        SAM's decoder pairs one image with many prompts, so a batch of images is decoded one
        image at a time, each with its own prompts.
        """
        logits, ious = [], []
        image_pe = self._dense_pe()
        for i in range(embeddings.shape[0]):
            item = slice(i, i + 1)
            points = None
            if point_coords is not None:
                if point_labels is None:
                    raise SamError("point_labels are required with point_coords")
                points = (point_coords[item], point_labels[item])
            sparse, dense = self.sam.prompt_encoder(
                points=points,
                boxes=boxes[item] if boxes is not None else None,
                masks=mask_inputs[item] if mask_inputs is not None else None,
            )
            low_res, iou = self.sam.mask_decoder(
                image_embeddings=embeddings[item],
                image_pe=image_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
            logits.append(low_res)
            ious.append(iou)
        return torch.cat(logits), torch.cat(ious)

    def _dense_pe(self) -> torch.Tensor:
        """SAM's positional encoding of the embedding grid, computed once per device.

        It depends only on a fixed random buffer, yet `get_dense_pe` recomputes 64x64 sin/cos
        features on every click (2 ms on one thread, 40 CPU ms on two busy ones).
        """
        cached = getattr(self, "_dense_pe_cache", None)
        if cached is None or cached.device != self.device:
            with torch.no_grad():
                cached = self.sam.prompt_encoder.get_dense_pe()
            self._dense_pe_cache = cached
        return cached

    def preprocess(self, image_u8: np.ndarray) -> tuple[torch.Tensor, TransformInfo]:
        """8-bit (H, W) or (H, W, 3) -> normalised, padded (1, 3, S, S) tensor on the device."""
        if image_u8.ndim == 2:
            image_u8 = np.repeat(image_u8[:, :, None], 3, axis=2)
        if image_u8.ndim != 3 or image_u8.shape[2] != 3 or image_u8.dtype != np.uint8:
            raise SamError(
                f"SAM needs an 8-bit grey or RGB image, got {image_u8.dtype} {image_u8.shape}"
            )
        resized = self.transform.apply_image(image_u8)
        tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).float()
        info = TransformInfo(
            original_size=(image_u8.shape[0], image_u8.shape[1]),
            input_size=(resized.shape[0], resized.shape[1]),
            transform=self.transform,
        )
        return self.sam.preprocess(tensor[None]), info

    def to_input_coords(self, coords: np.ndarray, info: TransformInfo) -> np.ndarray:
        """(..., 2) x/y pixel coordinates in the original image -> SAM's input frame."""
        return info.transform.apply_coords(np.asarray(coords, dtype=np.float64), info.original_size)

    def to_input_boxes(self, boxes: np.ndarray, info: TransformInfo) -> np.ndarray:
        """(..., 4) x0/y0/x1/y1 boxes in the original image -> SAM's input frame."""
        return info.transform.apply_boxes(np.asarray(boxes, dtype=np.float64), info.original_size)

    def upscale_logits(self, low_res: torch.Tensor, info: TransformInfo) -> torch.Tensor:
        """(B, K, 4h, 4w) low-res logits -> (B, K, H, W) logits in the original image frame."""
        return self.sam.postprocess_masks(low_res, info.input_size, info.original_size)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The LoRA, CBAM (and decoder) parameters: everything an optimiser should see."""
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> dict[str, int]:
        """Total / trainable / LoRA / CBAM / trainable-decoder parameter counts (LoRA is 0 once
        merged, the decoder 0 unless `train_decoder`)."""
        lora = sum(p.numel() for n, p in self.sam.named_parameters() if ".lora_" in n)
        decoder = self.sam.mask_decoder.parameters()
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "trainable": sum(p.numel() for p in self.trainable_parameters()),
            "lora": lora,
            "cbam": sum(p.numel() for p in self.cbam.parameters()) if self.cbam else 0,
            "decoder": sum(p.numel() for p in decoder if p.requires_grad),
        }


def build_spinalsam(
    config: SamConfig,
    checkpoint: str | Path | None = None,
    adapter: str | Path | None = None,
) -> SpinalSAM:
    """Base SAM (strictly loaded) + LoRA + CBAM; with `adapter`, its trained weights and config.

    An adapter folder carries its own rank, targets, CBAM and decoder switches, which take
    precedence over `config` so the model always has the layers the saved weights need.
    """
    if adapter is not None:
        config = adapter_config(adapter, config)
    sam, key_check = load_sam(config.model_type, checkpoint)
    model = SpinalSAM(sam, config, key_check)
    if adapter is not None:
        load_adapter(model, adapter)
    return model.eval()
