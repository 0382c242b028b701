"""SpinalSAM: interactive spine-CT segmentation (SAM + LoRA + CBAM, chat-driven)."""

__version__ = "0.1.0"
