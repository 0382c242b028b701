"""How far a faster SAM encoder drifts from the fp32 reference, and what to measure it on.

Measurement material for `bench/latency.py` and the tests, kept out of `fast.py` (which the server
imports): an embedding-error summary, Dice of masks decoded from both embeddings with one decoder,
a synthetic vertebra to prompt on, and seeded random-weight SAMs that cost exactly the compute of
real checkpoints. Nothing here is imported while serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam
from segment_anything.predictor import SamPredictor
from skimage.draw import disk, ellipse

from spinalsam.metrics import dice
from spinalsam.sam.fast import build_mobile_sam
from spinalsam.sam.methods import FastEncoderError
from spinalsam.sam.tiny import build_tiny_sam
from spinalsam.segmenters.base import Prompt

__all__ = [
    "EmbeddingError",
    "Fidelity",
    "decode_prompt",
    "embedding_error",
    "mask_agreement",
    "random_sam",
    "synthetic_vertebra",
    "vertebra_prompts",
]


@dataclass(frozen=True)
class EmbeddingError:
    """How far an optimized embedding is from the fp32 reference."""

    max_abs: float
    mean_abs: float
    rel_l2: float  # ||opt - ref|| / ||ref||


@dataclass(frozen=True)
class Fidelity:
    """Embedding error plus Dice of decoded masks (optimized vs reference) for each prompt."""

    embedding: EmbeddingError
    dice: tuple[float, ...]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self.embedding), "dice": list(self.dice)}


def embedding_error(reference: torch.Tensor, optimized: torch.Tensor) -> EmbeddingError:
    ref = reference.detach().double().cpu()
    diff = optimized.detach().double().cpu() - ref
    return EmbeddingError(
        max_abs=float(diff.abs().max()),
        mean_abs=float(diff.abs().mean()),
        rel_l2=float(diff.norm() / ref.norm().clamp_min(1e-12)),
    )


def decode_prompt(predictor: SamPredictor, prompt: Prompt) -> np.ndarray:
    """One boolean mask (single-mask output) for `prompt` from the predictor's current image."""
    masks, _, _ = predictor.predict(
        point_coords=prompt.points.astype(np.float32) if len(prompt.points) else None,
        point_labels=prompt.labels if len(prompt.labels) else None,
        box=prompt.box,
        multimask_output=False,
    )
    return masks[0]


def mask_agreement(
    predictor: SamPredictor,
    reference: torch.Tensor,
    optimized: torch.Tensor,
    prompts: Sequence[Prompt],
) -> Fidelity:
    """Decode the same prompts from both embeddings with one decoder and compare the masks.

    `predictor` must have had `set_image` called on the image (it fixes the coordinate frame);
    its own features are restored afterwards.
    """
    own = predictor.features
    try:
        scores = []
        for prompt in prompts:
            predictor.features = reference
            ref_mask = decode_prompt(predictor, prompt)
            predictor.features = optimized
            scores.append(dice(ref_mask, decode_prompt(predictor, prompt)))
    finally:
        predictor.features = own
    return Fidelity(embedding_error(reference, optimized), tuple(scores))


def synthetic_vertebra(size: int = 512, seed: int = 0) -> np.ndarray:
    """An axial-CT-like RGB slice: bright vertebral body and arch around a dark canal.

    Gives the fidelity check a realistic object to prompt on without shipping patient data.
    """
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 40.0)
    s = size / 512
    img[ellipse(256 * s, 256 * s, 200 * s, 230 * s, img.shape)] = 70.0  # soft tissue
    img[ellipse(220 * s, 256 * s, 70 * s, 85 * s, img.shape)] = 230.0  # cortical shell
    img[ellipse(220 * s, 256 * s, 58 * s, 73 * s, img.shape)] = 160.0  # cancellous body
    img[ellipse(330 * s, 256 * s, 50 * s, 60 * s, img.shape)] = 210.0  # posterior arch
    img[disk((322 * s, 256 * s), 30 * s, shape=img.shape)] = 45.0  # spinal canal
    img += rng.normal(0.0, 6.0, img.shape)
    gray = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def vertebra_prompts(size: int = 512) -> tuple[Prompt, Prompt]:
    """A box around and a click inside the vertebral body of `synthetic_vertebra(size)`."""
    s = size / 512
    box = np.array([171, 150, 341, 290], dtype=np.float64) * s
    point = np.array([[256 * s, 220 * s]]).round().astype(np.int64)
    return Prompt(box=box), Prompt(points=point, labels=np.array([1]))


def random_sam(name: str = "vit_b", seed: int = 0) -> Sam:
    """A seeded random-weight SAM (vit_b/l/h, vit_tiny, mobile_sam) for speed/fidelity runs.

    Compute is the same as with real checkpoints. Relative and absolute position tables are
    zero-initialised by segment_anything; they get small random values here so the
    relative-position path is really exercised (zeros would hide a wrong bias).
    """
    torch.manual_seed(seed)
    if name == "vit_tiny":
        sam = build_tiny_sam()
    elif name == "mobile_sam":
        sam = build_mobile_sam()
    elif name in ("vit_b", "vit_l", "vit_h"):
        sam = sam_model_registry[name](checkpoint=None)
    else:
        raise FastEncoderError(
            f"unknown SAM model {name!r}; choose vit_b, vit_l, vit_h or vit_tiny"
        )
    with torch.no_grad():
        for pname, param in sam.image_encoder.named_parameters():
            if "rel_pos" in pname or pname == "pos_embed" or "attention_biases" in pname:
                param.normal_(0.0, 0.1)
    return sam.eval()  # also refreshes MobileSAM's cached attention biases
