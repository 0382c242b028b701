"""SAM as a `Segmenter`: one shared model and embedding cache, one light segmenter per session.

Which backend the app serves is decided in `spinalsam.backends` (the one place); this module
only serves SAM once that decision was made, so it imports torch freely.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spinalsam.sam.cache import Embedding, EmbeddingCache, embedding_key
from spinalsam.sam.config import SamSettings
from spinalsam.sam.device import describe_compute
from spinalsam.sam.errors import SamError
from spinalsam.sam.hub import ProgressCallback
from spinalsam.sam.loader import LoadedModel, ModelLoader
from spinalsam.sam.model import SpinalSAM
from spinalsam.sam.report import describe_parameters
from spinalsam.sam.zerogpu import gpu_task
from spinalsam.segmenters.base import BackendInfo, Prompt, SliceImage

__all__ = ["SamSegmenter", "SharedSam", "create_sam_segmenter", "shared_sam"]

# A prior mask enters SAM as low-res logits; +-10 is a confident in/out, like SAM's own outputs.
_PRIOR_LOGIT = 10.0
# GPU time asked of ZeroGPU per encoder call: a ViT-H embedding takes well under a second on a
# shared A100-class GPU; the margin covers the first call's CUDA warm-up.
_ENCODER_GPU_S = 30


@dataclass(frozen=True)
class SharedSam:
    """What all sessions of one settings share: the model loader, the embedding cache, and the
    encoder/decoder calls (run through `spaces.GPU` on a ZeroGPU Space)."""

    loader: ModelLoader
    cache: EmbeddingCache
    embed: Callable[[SpinalSAM, np.ndarray], Embedding]
    predict: Callable[[SpinalSAM, Embedding, Prompt], np.ndarray]

    def __deepcopy__(self, memo: dict) -> SharedSam:
        # Process-wide by design: Gradio deep-copies each new session's state.
        return self

    def segmenter(self, reason: str = "", progress: ProgressCallback | None = None) -> SamSegmenter:
        """A new per-session segmenter; loads the model first if no session has yet."""
        loaded = self.loader.get(progress)
        return SamSegmenter(loaded, self, _sam_info(loaded, reason))


@lru_cache(maxsize=4)
def shared_sam(settings: SamSettings) -> SharedSam:
    """One shared SAM per distinct settings for the whole process (settings are immutable).

    Built while the app starts, so ZeroGPU sees the GPU functions before `launch()`.
    """
    return SharedSam(
        ModelLoader(settings),
        EmbeddingCache(settings.embed_cache_bytes),
        gpu_task(_embed, _ENCODER_GPU_S),
        gpu_task(_predict),
    )


class SamSegmenter:
    """A session's view of the shared model: holds only the embedding of its current slice."""

    def __init__(self, loaded: LoadedModel, shared: SharedSam, info: BackendInfo) -> None:
        self.info = info
        self._loaded = loaded
        self._shared = shared
        self._embedding: Embedding | None = None

    def set_image(self, image: SliceImage) -> None:
        self._embedding = self._shared.cache.get_or_compute(*self._job(image))

    def prefetch(self, image: SliceImage) -> Future[Embedding] | None:
        """Start the encoder on `image` in the background (e.g. when the slice is shown);
        None when the cache keeps nothing, so an embedding ahead of time would be lost."""
        if self._shared.cache.max_bytes == 0:
            return None
        return self._shared.cache.prefetch(*self._job(image))

    def predict(self, prompt: Prompt) -> np.ndarray:
        if self._embedding is None:
            raise SamError("no slice is loaded yet: open an image before segmenting")
        return self._shared.predict(self._loaded.model, self._embedding, prompt)

    def describe_parameters(self) -> dict[str, Any]:
        return describe_parameters(self._loaded)

    def describe_compute(self) -> dict[str, Any]:
        return describe_compute(self._loaded.model.device)

    def _job(self, image: SliceImage) -> tuple[str, Callable[[], Embedding]]:
        display = image.display
        if display.ndim != 2 or display.dtype != np.uint8:
            raise SamError(f"SAM needs the 8-bit slice render, got {display.dtype} {display.shape}")
        key = embedding_key(display, self._loaded.model_id)
        return key, partial(self._shared.embed, self._loaded.model, display)


def create_sam_segmenter(settings: SamSettings) -> SamSegmenter:
    """SAM for one session; `SamError` if it cannot load (the registry's explicit "sam")."""
    return shared_sam(settings).segmenter(reason="selected explicitly")


def _sam_info(loaded: LoadedModel, reason: str) -> BackendInfo:
    config = loaded.model.config
    parts = [f"SAM {config.model_type}", f"LoRA r{config.lora_rank}"]
    if config.use_cbam:
        parts.append("CBAM")
    adapter = f", adapter {loaded.adapter_spec}" if loaded.adapter_spec else ", no adapter"
    description = " + ".join(parts) + adapter + f" on {loaded.model.device.type}"
    return BackendInfo("sam", description, reason)


@torch.inference_mode()
def _embed(model: SpinalSAM, display: np.ndarray) -> Embedding:
    images, info = model.preprocess(display)
    return Embedding(model.embed(images), info)


@torch.inference_mode()
def _predict(model: SpinalSAM, embedding: Embedding, prompt: Prompt) -> np.ndarray:
    """One mask for `prompt`; a lone click asks for SAM's 3 candidates and keeps the best-scored."""
    info, device = embedding.info, model.device
    height, width = info.original_size
    coords = labels = boxes = masks = None
    if len(prompt.points):
        points = np.asarray(prompt.points, dtype=np.float64).reshape(-1, 2)
        if (points < 0).any() or (points[:, 0] >= width).any() or (points[:, 1] >= height).any():
            raise SamError(f"a point lies outside the {width}x{height} slice")
        coords = torch.as_tensor(model.to_input_coords(points, info), dtype=torch.float32)
        coords = coords[None].to(device)
        labels = torch.as_tensor(np.asarray(prompt.labels), dtype=torch.int64)[None].to(device)
    if prompt.box is not None:
        box = np.asarray(prompt.box, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or box[2] <= box[0] or box[3] <= box[1]:
            raise SamError("a box needs x0 < x1 and y0 < y1")
        boxes = torch.as_tensor(model.to_input_boxes(box, info), dtype=torch.float32)
        boxes = boxes.reshape(1, 4).to(device)
    if prompt.mask_input is not None:
        masks = _mask_prior(model, prompt.mask_input, embedding)
    multimask = len(prompt.points) == 1 and boxes is None and masks is None
    logits, ious = model.decode(embedding.tensor, coords, labels, boxes, masks, multimask)
    best = int(ious[0].argmax())
    full = model.upscale_logits(logits[:, best : best + 1], info)[0, 0]
    return (full > model.sam.mask_threshold).cpu().numpy()


def _mask_prior(model: SpinalSAM, mask: np.ndarray, embedding: Embedding) -> torch.Tensor:
    """A full-size bool mask -> SAM's low-res mask-prompt logits, framed like the image."""
    info = embedding.info
    if mask.shape != info.original_size:
        raise SamError(
            f"the prior mask is {mask.shape[1]}x{mask.shape[0]}, the slice "
            f"{info.original_size[1]}x{info.original_size[0]}"
        )
    prior = torch.as_tensor(mask, dtype=torch.float32, device=model.device)[None, None]
    prior = F.interpolate(prior, info.input_size, mode="bilinear", align_corners=False)
    pad_h, pad_w = model.img_size - info.input_size[0], model.img_size - info.input_size[1]
    prior = F.pad(prior, (0, pad_w, 0, pad_h))
    size = model.sam.prompt_encoder.mask_input_size
    prior = F.interpolate(prior, size, mode="bilinear", align_corners=False)
    return (prior * 2 - 1) * _PRIOR_LOGIT
