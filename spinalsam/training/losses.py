"""Segmentation losses on mask logits: soft Dice plus BCE or focal loss.

Dice alone ignores calibration and gives noisy gradients on tiny objects; BCE alone is swamped by
background pixels when a vertebra covers a few percent of a sagittal slice. Their sum is the
usual choice for fine-tuning SAM on medical masks (MedSAM, SAM-Med2D); focal loss (SAM's own
training loss, with Dice) is the option for heavily imbalanced data.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

__all__ = ["LossKind", "dice_loss", "segmentation_loss"]

LossKind = Literal["dice_bce", "dice_focal"]


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean over the batch of 1 - soft Dice of sigmoid(logits) vs a {0,1} target (B, H, W).

    `eps` smooths the ratio so an empty target with an empty prediction costs nothing.
    """
    probs = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    overlap = (probs * target).sum(1)
    total = probs.sum(1) + target.sum(1)
    return (1.0 - (2.0 * overlap + eps) / (total + eps)).mean()


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, kind: LossKind = "dice_bce"
) -> torch.Tensor:
    """Dice + pixel loss, computed in float32 so bf16 autocast does not round the sums."""
    logits, target = logits.float(), target.float()
    if kind == "dice_focal":
        pixel = sigmoid_focal_loss(logits, target, reduction="mean")
    else:
        pixel = F.binary_cross_entropy_with_logits(logits, target)
    return dice_loss(logits, target) + pixel
