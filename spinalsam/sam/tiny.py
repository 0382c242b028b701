"""A tiny SAM built from segment_anything's own modules, for tests and CI.

It has the real architecture (ViT encoder with windowed and global attention, prompt encoder,
two-way transformer decoder) and the real state-dict layout, only far smaller, so every code path
that loads, adapts, saves and serves the real checkpoints runs on a CPU in milliseconds.

Its input size is a parameter (a multiple of the 16-px patch): a smaller image trains faster on a
CPU. The size is not stored separately; it is read back from the checkpoint's position table.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from spinalsam.sam.errors import SamError

__all__ = ["TINY_IMG_SIZE", "build_tiny_sam", "save_tiny_checkpoint", "tiny_img_size"]

TINY_IMG_SIZE = 128
_PATCH = 16
_WIDTH = 32
_POS_EMBED = "image_encoder.pos_embed"


def build_tiny_sam(img_size: int = TINY_IMG_SIZE) -> Sam:
    """A randomly initialised SAM with an `img_size` input and a 32-channel embedding."""
    if img_size < _PATCH or img_size % _PATCH:
        raise SamError(f"the tiny SAM's image size must be a multiple of {_PATCH}, got {img_size}")
    grid = img_size // _PATCH
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=_PATCH,
            embed_dim=_WIDTH,
            depth=2,
            num_heads=2,
            mlp_ratio=2,
            out_chans=_WIDTH,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=_WIDTH,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=_WIDTH, num_heads=2, mlp_dim=64),
            transformer_dim=_WIDTH,
            iou_head_depth=2,
            iou_head_hidden_dim=_WIDTH,
        ),
    )
    return sam.eval()


def tiny_img_size(state: Mapping[str, torch.Tensor]) -> int:
    """The input size a tiny-SAM state dict was built for, from its (1, grid, grid, C) position
    table; the default size when the table is absent, so strict loading names the gap."""
    pos_embed = state.get(_POS_EMBED)
    if not isinstance(pos_embed, torch.Tensor) or pos_embed.ndim != 4:
        return TINY_IMG_SIZE
    return int(pos_embed.shape[1]) * _PATCH


def save_tiny_checkpoint(path: str | Path, seed: int = 0, img_size: int = TINY_IMG_SIZE) -> Path:
    """Write a tiny SAM's state dict to `path` (a `.pth` like Meta's), reproducibly per seed.

    The global RNG is forked so that writing a fixture does not perturb the caller's randomness.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = build_tiny_sam(img_size)
    torch.save(sam.state_dict(), path)
    return path
