"""A tiny SAM built from segment_anything's own modules, for tests and CI.

It has the real architecture (ViT encoder with windowed and global attention, prompt encoder,
two-way transformer decoder) and the real state-dict layout, only far smaller, so every code path
that loads, adapts, saves and serves the real checkpoints runs on a CPU in milliseconds.
"""

from __future__ import annotations

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

__all__ = ["TINY_IMG_SIZE", "build_tiny_sam", "save_tiny_checkpoint"]

TINY_IMG_SIZE = 128
_PATCH = 16
_WIDTH = 32


def build_tiny_sam() -> Sam:
    """A randomly initialised SAM with a 128-pixel input and a 32-channel, 8x8 embedding."""
    grid = TINY_IMG_SIZE // _PATCH
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=TINY_IMG_SIZE,
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
            input_image_size=(TINY_IMG_SIZE, TINY_IMG_SIZE),
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


def save_tiny_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny SAM's state dict to `path` (a `.pth` like Meta's), reproducibly per seed.

    The global RNG is forked so that writing a fixture does not perturb the caller's randomness.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = build_tiny_sam()
    torch.save(sam.state_dict(), path)
    return path
