"""The SAM part of the app's settings, as one immutable, hashable value.

It is built once at start-up by `spinalsam.settings.load_settings` (environment over the `[sam]`
table of `spinalsam.toml`). Being hashable, the loaded model and the embedding cache can be shared
per distinct settings without a mutable global. This module imports neither torch nor
segment_anything, so the app can decide whether SAM is wanted before paying for those imports.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_CHECKPOINT", "ModelType", "SamSettings"]

DEFAULT_CHECKPOINT = "ybelkada/segment-anything:checkpoints/sam_vit_b_01ec64.pth"

# vit_t is MobileSAM: its 5.7 M-parameter TinyViT encoder behind SAM's own prompt encoder and
# mask decoder (`mobile_sam.pt`, Apache-2.0), a different, lighter model for slow CPUs.
ModelType = Literal["vit_b", "vit_l", "vit_h", "vit_t", "vit_tiny"]


class SamSettings(BaseModel):
    """Everything that decides which SAM is served, from where, and on what device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["auto", "sam", "default"] = "auto"
    sam_checkpoint: str = DEFAULT_CHECKPOINT  # `repo_id:filename` on the Hub, or a local path
    sam_model_type: ModelType | None = None  # None: inferred from the checkpoint's file name
    adapter: str | None = None  # a Hub repo id or a local folder (see adapters.py)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    embed_cache_mb: int = Field(512, ge=0)
    # A spinalsam.sam.methods spec ("openvino+bf16", "sdpa+int8", …); "auto" picks the fastest
    # Dice-preserving one for the device (docs/speed.md), "none" keeps the plain encoder.
    encoder_opt: str = "auto"
    export_cache_dir: str | None = None  # None: ~/.cache/spinalsam/onnx
    hf_cache_dir: str | None = None  # None: huggingface_hub's own default
    offline: bool = False  # HF_HUB_OFFLINE: never touch the network

    @property
    def embed_cache_bytes(self) -> int:
        return self.embed_cache_mb * 1024 * 1024
