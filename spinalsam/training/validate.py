"""Validation Dice with the evaluation protocol's prompts, computed as the app would see it.

Prompts are the deterministic ones of `spinalsam.evaluate` (box = tight box + 5 px, point = the
deepest interior pixel), mapped into the input frame and the masks upscaled back to the original
slice with the model's own helpers, so the best-by-validation adapter is chosen on the metric
that is reported, and validation never consumes training randomness (resume stays identical).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from spinalsam import metrics
from spinalsam.evaluate import derive_prompts
from spinalsam.sam.model import SpinalSAM
from spinalsam.training.batch import autocast, decode_prompt
from spinalsam.training.data import Sample

__all__ = ["VAL_PROMPTS", "predict_sample", "validate"]

VAL_PROMPTS = ("box", "point")


@torch.no_grad()
def predict_sample(model: SpinalSAM, sample: Sample, kind: str) -> np.ndarray:
    """Union of the per-object predictions for one slice, at the slice's own resolution."""
    image, info = model.preprocess(sample.image)
    with autocast(model.device):
        embedding = model.embed(image)
    union = np.zeros(sample.image.shape[:2], dtype=bool)
    for obj in sample.objects:
        for _, prompt in derive_prompts(obj, kind):
            points = model.to_input_coords(prompt.points, info)
            box = None if prompt.box is None else model.to_input_boxes(prompt.box, info)
            with autocast(model.device):
                low_res = decode_prompt(model, embedding, points, prompt.labels, box)
            union |= (model.upscale_logits(low_res.float(), info)[0, 0] > 0).cpu().numpy()
    return union


def validate(model: SpinalSAM, samples: Sequence[Sample]) -> dict[str, float]:
    """Mean per-slice Dice for box and for point prompts, and their mean as `val_dice`."""
    was_training = model.training
    model.eval()
    scores = {
        f"val_dice_{kind}": float(
            np.mean(
                [
                    metrics.dice(predict_sample(model, s, kind), np.logical_or.reduce(s.objects))
                    for s in samples
                ]
            )
        )
        for kind in VAL_PROMPTS
    }
    model.train(was_training)
    scores["val_dice"] = float(np.mean(list(scores.values())))
    return scores
