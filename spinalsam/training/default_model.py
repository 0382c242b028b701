"""The learned default's network: a small U-Net over the prompt crop (torch; training only).

Inputs are crops.CHANNELS channels in 0..1 (intensity, box, positive and negative clicks, prior
mask); the network adds the intensity standardised over the crop as one more channel, so an
8-bit render in any window and HU under the fixed bone window read alike. BatchNorm folds into
the convolutions on export, so the ONNX graph is plain convolutions for ONNX Runtime on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from spinalsam.segmenters.crops import CHANNELS

__all__ = ["UNet", "export_onnx"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder widths `widths` (each level halves the crop), skip connections, one logit map."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.widths = tuple(widths)
        cin = CHANNELS + 1
        self.down = nn.ModuleList()
        for width in widths:
            self.down.append(_block(cin, width))
            cin = width
        self.up = nn.ModuleList(
            _block(widths[i] + widths[i + 1], widths[i]) for i in range(len(widths) - 1)
        )
        self.head = nn.Conv2d(widths[0], 1, 1)
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x[:, :1]
        mean = image.mean(dim=(2, 3), keepdim=True)
        std = torch.sqrt(((image - mean) ** 2).mean(dim=(2, 3), keepdim=True)) + 0.02
        x = torch.cat([x, torch.clamp((image - mean) / std, -4.0, 4.0) / 4.0], dim=1)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for i in range(len(self.up) - 1, -1, -1):
            x = self.up[i](torch.cat([skips[i], self.upsample(x)], dim=1))
        return self.head(x)


def export_onnx(model: UNet, size: int, path: Path) -> None:
    """The trained network as ONNX (batch dimension dynamic), for crops of `size`²."""
    model = model.cpu().eval()
    dummy = torch.zeros(1, CHANNELS, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["inputs"],
        output_names=["logits"],
        dynamic_axes={"inputs": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
