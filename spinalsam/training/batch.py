"""Moving samples and prompts into SAM's square input frame, and decoding one object's prompt.

Training works entirely in the input frame (image resized by its longest side, zero-padded to
S×S): targets are resized once there, prompts are simulated there, and the loss compares
upsampled logits with them. Validation instead maps prompts in and masks out exactly as the app
does at inference, so its Dice is the number users would see.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spinalsam.sam.model import SpinalSAM, TransformInfo

__all__ = ["autocast", "decode_prompt", "input_frame_masks", "upsample_to_input"]


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on GPU; a no-op on CPU, where bf16 matmuls are slow or emulated."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def input_frame_masks(masks: list[np.ndarray], info: TransformInfo, size: int) -> torch.Tensor:
    """(K, S, S) float {0, 1} targets: each mask resized like the image, then zero-padded.

    Bilinear resizing thresholded at 0.5 keeps thin posterior elements that nearest-neighbour
    downsampling would break apart.
    """
    h, w = info.input_size
    stacked = torch.as_tensor(np.stack(masks), dtype=torch.float32)[None]
    resized = F.interpolate(stacked, size=(h, w), mode="bilinear", align_corners=False)[0]
    return F.pad((resized > 0.5).float(), (0, size - w, 0, size - h))


def upsample_to_input(low_res: torch.Tensor, size: int) -> torch.Tensor:
    """(B, K, 4h, 4w) low-res logits -> (B, K, S, S) logits in the padded input frame."""
    return F.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)


def decode_prompt(
    model: SpinalSAM,
    embedding: torch.Tensor,
    points: np.ndarray,
    labels: np.ndarray,
    box: np.ndarray | None,
    mask_input: torch.Tensor | None = None,
) -> torch.Tensor:
    """Low-res logits (1, 1, 4h, 4w) for one object; points and box are in the input frame."""
    device = embedding.device
    coords = label_tensor = box_tensor = None
    if len(points):
        coords = torch.as_tensor(points, dtype=torch.float32, device=device)[None]
        label_tensor = torch.as_tensor(labels, dtype=torch.int64, device=device)[None]
    if box is not None:
        box_tensor = torch.as_tensor(box, dtype=torch.float32, device=device)[None]
    logits, _ = model.decode(embedding, coords, label_tensor, box_tensor, mask_input)
    return logits
