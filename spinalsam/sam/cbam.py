"""CBAM (Woo et al., 2018) on SAM's image embedding, initialised as the identity.

The block refines the encoder output before the (frozen) mask decoder sees it. It is applied in
residual form `x + gamma * (attended - x)` with `gamma = 0`, so a freshly built, untrained CBAM
returns its input bit for bit and adding it to a pretrained SAM changes nothing until training
moves `gamma`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CBAM"]


class _ChannelAttention(nn.Module):
    """Per-channel gate from a shared MLP over global average- and max-pooled features."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)


class _SpatialAttention(nn.Module):
    """Per-pixel gate from a convolution over the channel-wise mean and max maps."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("CBAM kernel_size must be odd so the gate keeps the map's size")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Channel then spatial attention on a (B, C, h, w) embedding; identity until trained."""

    def __init__(self, channels: int = 256, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = _ChannelAttention(channels, reduction)
        self.spatial = _SpatialAttention(kernel_size)
        # Zero gate: the residual form below makes the untrained block an exact identity.
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended = x * self.channel(x)
        attended = attended * self.spatial(attended)
        return x + self.gamma * (attended - x)
