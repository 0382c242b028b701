"""The SAM backend: SAM + LoRA + CBAM, Hub weights, and a cached, shared predictor."""

from spinalsam.sam.adapters import load_adapter, merge_adapter, save_adapter
from spinalsam.sam.cbam import CBAM
from spinalsam.sam.errors import SamError
from spinalsam.sam.model import SamConfig, SpinalSAM, build_sam, build_spinalsam
from spinalsam.sam.tiny import save_tiny_checkpoint

__all__ = [
    "CBAM",
    "SamConfig",
    "SamError",
    "SpinalSAM",
    "build_sam",
    "build_spinalsam",
    "load_adapter",
    "merge_adapter",
    "save_adapter",
    "save_tiny_checkpoint",
]
