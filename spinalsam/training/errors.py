"""The one exception type of fine-tuning: its message is printed to the user as is."""

from __future__ import annotations

__all__ = ["TrainingError"]


class TrainingError(RuntimeError):
    """Training cannot go on (bad data, a checkpoint that does not fit, a failed push)."""
