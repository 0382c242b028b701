"""SAM's mask decoder run by OpenVINO on the CPU: the same masks for less CPU per click.

Once a slice is embedded, a click costs one prompt-encoder call (0.2 ms) and one mask-decoder
call, and the decoder is nearly all of it: on one Xeon thread its two-way transformer over the
4096 image tokens takes ~85 ms and the transposed-conv upscaling ~45 ms in eager PyTorch
(docs/speed.md, "Why a click costs ~140 ms"). The same graph compiled by OpenVINO in f32 needs
about half the CPU time and gives the same masks (rel. error ~1e-6), on CPUs with or without
bf16, so it is the one click speed-up that costs no accuracy.

The decoder is converted once per weights (cached next to the encoder exports) with a dynamic
number of prompt tokens, so points, boxes and both together share one compiled model; the mask
prompt enters as the dense embedding, and the multimask switch only picks which of the four
masks are returned, exactly as `MaskDecoder.forward` does.
"""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder, Sam
from torch import nn

from spinalsam.sam.fast import cached_export
from spinalsam.sam.methods import FastEncoderError

__all__ = ["DECODER_THREADS", "OpenVinoMaskDecoder", "optimize_decoder", "wants_fast_decoder"]

# One thread per click. A click is ~5 GFLOP of small ops: a second thread saves little wall time
# on an idle machine, and on a busy one (other users' clicks, the background encoder of
# `spinalsam.prefetch`) two threads wait on each other at every op. Measured on 2 shared Xeon
# cores under the AVX2 emulation: 88 CPU ms per decoder call on 1 thread, 153 on 2 (PyTorch:
# 147 / 651), at the same wall time (docs/speed.md).
DECODER_THREADS = 1


class _AllMasks(nn.Module):
    """`MaskDecoder.predict_masks`: all four masks and IoU scores, before the multimask pick."""

    def __init__(self, decoder: MaskDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.predict_masks(image_embeddings, image_pe, sparse, dense)


class OpenVinoMaskDecoder(nn.Module):
    """Drop-in for `sam.mask_decoder` (same forward signature) backed by compiled OpenVINO.

    SAM pairs one image embedding with a batch of prompts; each prompt is decoded on its own,
    which is what the compiled (batch 1, any number of tokens) model takes.
    """

    def __init__(self, path: Path, num_threads: int) -> None:
        super().__init__()
        import openvino as ov

        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": num_threads,
            # f32 always: on a bf16 CPU OpenVINO would pick bf16 by itself (~1 % off).
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.path = path

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = image_embeddings.device
        image, pe = _numpy(image_embeddings), _numpy(image_pe)
        masks, ious = [], []
        for sparse, dense in zip(sparse_prompt_embeddings, dense_prompt_embeddings, strict=True):
            # A request per call: one compiled model serves the threads of every session.
            request = self.compiled.create_infer_request()
            out = request.infer(
                [image, pe, _numpy(sparse[None]), _numpy(dense[None])], share_outputs=False
            )
            masks.append(torch.from_numpy(out[0]))
            ious.append(torch.from_numpy(out[1]))
        picked = slice(1, None) if multimask_output else slice(0, 1)
        return torch.cat(masks)[:, picked].to(device), torch.cat(ious)[:, picked].to(device)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).contiguous().numpy()


def wants_fast_decoder(device: torch.device, encoder_methods: tuple[str, ...]) -> bool:
    """Whether serving should use the OpenVINO decoder: on the CPU, with OpenVINO installed,
    unless the plain model was asked for (no encoder speed-up either)."""
    return (
        device.type == "cpu"
        and bool(encoder_methods)
        and importlib.util.find_spec("openvino") is not None
    )


def optimize_decoder(sam: Sam, cache_dir: Path, num_threads: int = DECODER_THREADS) -> Path:
    """Replace `sam.mask_decoder` by its OpenVINO f32 conversion (cached per weights) in place.

    Returns the IR's path. Raises FastEncoderError when OpenVINO is missing or the conversion
    or compilation fails; the torch decoder is then left in place.
    """
    if sam.device.type != "cpu":
        raise FastEncoderError("the OpenVINO mask decoder runs on the CPU")
    try:
        import openvino as ov
    except ImportError as err:
        raise FastEncoderError("openvino: install the 'openvino' package") from err
    decoder = sam.mask_decoder.eval()
    prompt_encoder = sam.prompt_encoder
    grid = tuple(prompt_encoder.image_embedding_size)
    channels = prompt_encoder.embed_dim
    path = cached_export(
        decoder,
        cache_dir / "openvino-decoder",
        # The embedding grid is baked into the IR's static shapes, so it is part of the key.
        f"|ov{ov.__version__}|{channels}x{grid[0]}x{grid[1]}",
        export=partial(_convert, decoder, channels, grid),
        derive=None,
        filename="decoder.xml",
        what="convert the mask decoder to OpenVINO",
    )
    try:
        fast = OpenVinoMaskDecoder(path, num_threads)
    except Exception as err:  # a damaged cached IR: remove it so a retry converts again
        shutil.rmtree(path.parent, ignore_errors=True)
        raise FastEncoderError(f"could not load the converted mask decoder ({err})") from err
    sam.mask_decoder = fast
    return path


def _convert(decoder: MaskDecoder, channels: int, grid: tuple[int, int], folder: Path) -> None:
    import openvino as ov

    image = torch.zeros(1, channels, *grid)
    sparse = torch.zeros(1, 2, channels)  # a click and SAM's padding point
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the decoder's shape arithmetic
        model = ov.convert_model(_AllMasks(decoder), example_input=(image, image, sparse, image))
    # Everything static except the number of prompt tokens (points, box corners, padding).
    shape = [1, channels, *grid]
    model.reshape({0: shape, 1: shape, 2: [1, -1, channels], 3: shape})
    ov.save_model(model, folder / "decoder.xml", compress_to_fp16=False)
