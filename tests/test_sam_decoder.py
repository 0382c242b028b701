"""The OpenVINO mask decoder must give the masks SAM's own decoder gives, for every prompt kind.

Runs on the tiny 128-px SAM, so the conversion and every comparison take well under a second.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from segment_anything.modeling.sam import Sam

from spinalsam.sam.fast_decoder import OpenVinoMaskDecoder, optimize_decoder, wants_fast_decoder
from spinalsam.sam.fidelity import random_sam
from spinalsam.sam.methods import FastEncoderError
from spinalsam.sam.tiny import build_tiny_sam

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="the 'openvino' package is absent"
)

# f32 in both runtimes: only the summation order differs (measured max abs ~1e-7 on logits ~1).
ATOL = 1e-5

_POINT = (torch.tensor([[[60.0, 50.0]]]), torch.tensor([[1]]))
_POINTS = (torch.tensor([[[60.0, 50.0], [10.0, 10.0], [100.0, 90.0]]]), torch.tensor([[1, 0, 1]]))
_BOX = torch.tensor([[10.0, 10.0, 90.0, 100.0]])
PROMPTS = {
    "click": {"points": _POINT},
    "points": {"points": _POINTS},
    "box": {"boxes": _BOX},
    "mask prompt only (no tokens)": {"masks": "random"},
    "click, box and mask prompt": {"points": _POINT, "boxes": _BOX, "masks": "random"},
    "two boxes (a prompt batch)": {"boxes": torch.tensor([[10.0, 10, 90, 100], [5, 5, 50, 60]])},
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sam, Sam]:
    """The tiny SAM and a copy whose decoder was converted (the conversion is shared)."""
    reference = random_sam("vit_tiny", seed=0)
    fast = copy.deepcopy(reference)
    optimize_decoder(fast, tmp_path_factory.mktemp("openvino"))
    return reference, fast


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("name", list(PROMPTS))
def test_openvino_decoder_matches_pytorch(
    pair: tuple[Sam, Sam], name: str, multimask: bool
) -> None:
    reference, fast = pair
    assert isinstance(fast.mask_decoder, OpenVinoMaskDecoder)
    torch.manual_seed(1)
    encoder = reference.prompt_encoder
    embedding = torch.randn(1, encoder.embed_dim, *encoder.image_embedding_size)
    kwargs = dict(PROMPTS[name])
    if kwargs.get("masks") == "random":
        kwargs["masks"] = torch.randn(1, 1, *encoder.mask_input_size)
    with torch.inference_mode():
        sparse, dense = encoder(
            points=kwargs.get("points"), boxes=kwargs.get("boxes"), masks=kwargs.get("masks")
        )
        args = (embedding, encoder.get_dense_pe(), sparse, dense, multimask)
        want_masks, want_iou = reference.mask_decoder(*args)
        masks, iou = fast.mask_decoder(*args)
    assert masks.shape == want_masks.shape and iou.shape == want_iou.shape
    assert masks.shape[1] == (3 if multimask else 1)
    torch.testing.assert_close(masks, want_masks, atol=ATOL, rtol=0)
    torch.testing.assert_close(iou, want_iou, atol=ATOL, rtol=0)


def test_conversion_is_cached_per_weights_and_grid(tmp_path: Path) -> None:
    first = optimize_decoder(random_sam("vit_tiny", seed=0), tmp_path)
    stamp = first.stat().st_mtime_ns
    assert optimize_decoder(random_sam("vit_tiny", seed=0), tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # reused, not converted again
    other_weights = optimize_decoder(random_sam("vit_tiny", seed=1), tmp_path)
    torch.manual_seed(0)
    other_grid = optimize_decoder(build_tiny_sam(img_size=192), tmp_path)  # 12x12 embedding
    assert len({first, other_weights, other_grid}) == 3
    assert all(p.parent.parent == tmp_path for p in (first, other_weights, other_grid))


def test_damaged_cache_is_reported_and_removed(tmp_path: Path) -> None:
    path = optimize_decoder(random_sam("vit_tiny", seed=0), tmp_path)
    path.write_text("not an OpenVINO model")
    sam = random_sam("vit_tiny", seed=0)
    with pytest.raises(FastEncoderError, match="could not load the converted mask decoder"):
        optimize_decoder(sam, tmp_path)
    assert not path.parent.exists()
    assert not isinstance(sam.mask_decoder, OpenVinoMaskDecoder)  # left as it was


def test_wanted_on_the_cpu_with_an_encoder_speed_up_only() -> None:
    cpu = torch.device("cpu")
    assert wants_fast_decoder(cpu, ("openvino-int8",))
    assert not wants_fast_decoder(cpu, ())  # "none": the plain model, as asked
    assert not wants_fast_decoder(torch.device("cuda"), ("bf16",))
