"""The served SAM: shared embedding cache, per-session segmenters, fallback, self-description."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from sam_fixtures import TINY_FILE, TINY_REPO, prefill_hf_cache, settings_from, slice_image
from segment_anything import SamPredictor

from spinalsam.backends import DefaultBackend, SamAppBackend, load_backend
from spinalsam.sam import SamError, build_sam, save_tiny_checkpoint
from spinalsam.sam.backend import SamSegmenter, shared_sam
from spinalsam.sam.cache import Embedding, EmbeddingCache, embedding_key
from spinalsam.sam.config import SamSettings
from spinalsam.sam.device import describe_compute, format_compute
from spinalsam.sam.model import TransformInfo
from spinalsam.sam.report import format_parameters
from spinalsam.segmenters.base import Prompt, SliceImage
from spinalsam.segmenters.bounded import BoundedSegmenter


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("hf")
    checkpoint = save_tiny_checkpoint(home / "source" / "sam_vit_tiny.pth")
    prefill_hf_cache(home / "hub", TINY_REPO, TINY_FILE, checkpoint)
    return home


def _settings(hf_home: Path, **extra: str) -> SamSettings:
    env = {
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "SPINALSAM_SAM_CHECKPOINT": f"{TINY_REPO}:{TINY_FILE}",
        "SPINALSAM_DEVICE": "cpu",
        "SPINALSAM_ENCODER_OPT": "none",  # exact comparisons with segment_anything below
        **extra,
    }
    return settings_from(env).sam


@pytest.fixture(scope="module")
def sam_settings(hf_home: Path) -> SamSettings:
    return _settings(hf_home)


def _sam(settings: SamSettings) -> SamSegmenter:
    backend = load_backend(settings)
    assert isinstance(backend, SamAppBackend), backend.info.reason
    bounded = backend.new_segmenter()  # every session's segmenter works on a bounded grid
    assert isinstance(bounded, BoundedSegmenter)
    assert isinstance(bounded.inner, SamSegmenter)
    return bounded.inner


def _embedding(n_floats: int) -> Embedding:
    info = TransformInfo((8, 8), (8, 8), transform=None)  # type: ignore[arg-type]
    return Embedding(torch.zeros(1, n_floats), info)


def test_cache_is_bounded_by_bytes_and_evicts_least_recently_used() -> None:
    cache = EmbeddingCache(max_bytes=10_000)  # room for two 4,000-byte embeddings
    for key in ("a", "b"):
        cache.get_or_compute(key, lambda: _embedding(1000))
    cache.get_or_compute("a", lambda: _embedding(1000))  # hit; "b" is now least recent
    cache.get_or_compute("c", lambda: _embedding(1000))  # evicts "b"
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.evictions) == (1, 3, 1)
    assert (stats.entries, stats.bytes) == (2, 8000)
    cache.get_or_compute("a", lambda: pytest.fail("'a' should still be cached"))
    cache.get_or_compute("b", lambda: _embedding(1000))
    assert cache.stats().misses == 4
    cache.get_or_compute("huge", lambda: _embedding(5000))  # 20 kB: never stored
    assert cache.stats().bytes <= 10_000 and cache.stats().entries == 2


def test_concurrent_requests_for_one_key_compute_once() -> None:
    cache = EmbeddingCache(max_bytes=0)  # even with no room, in-flight work is shared
    calls: list[int] = []

    def slow() -> Embedding:
        calls.append(1)
        time.sleep(0.3)
        return _embedding(10)

    results: list[Embedding] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow)))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 6
    assert all(r is results[0] for r in results)
    assert (cache.stats().misses, cache.stats().hits) == (1, 5)


def test_a_failed_computation_reaches_every_waiter_and_is_not_cached() -> None:
    cache = EmbeddingCache(max_bytes=10_000)

    def broken() -> Embedding:
        raise SamError("encoder failed")

    with pytest.raises(SamError, match="encoder failed"):
        cache.get_or_compute("k", broken)
    assert cache.get_or_compute("k", lambda: _embedding(10)).nbytes == 40


def test_embedding_key_covers_pixels_shape_and_model() -> None:
    image = slice_image().display
    key = embedding_key(image, "m1")
    assert key == embedding_key(image.copy(), "m1")
    assert key != embedding_key(image, "m2")
    assert key != embedding_key(image.reshape(64, 48), "m1")
    changed = image.copy()
    changed[0, 0] ^= 1
    assert key != embedding_key(changed, "m1")


def test_sam_segmenter_matches_segment_anythings_predictor(
    sam_settings: SamSettings, hf_home: Path
) -> None:
    segmenter = _sam(sam_settings)
    assert segmenter.info.name == "sam" and "vit_tiny" in segmenter.info.description
    image = slice_image()
    segmenter.set_image(image)
    mask = segmenter.predict(Prompt(points=np.array([[32, 24]]), labels=np.array([1])))
    assert mask.dtype == bool and mask.shape == image.shape

    predictor = SamPredictor(build_sam("vit_tiny", hf_home / "source" / "sam_vit_tiny.pth"))
    predictor.set_image(np.repeat(image.display[:, :, None], 3, axis=2))
    masks, scores, _ = predictor.predict(np.array([[32, 24]]), np.array([1]))
    assert 0 < mask.sum() < mask.size  # a real mask, not an empty or full one
    assert np.array_equal(mask, masks[int(np.argmax(scores))])


def test_sessions_share_the_model_and_the_embedding_cache(sam_settings: SamSettings) -> None:
    first, second = _sam(sam_settings), _sam(sam_settings)
    assert first is not second and first._loaded is second._loaded
    image = slice_image(seed=3)
    first.prefetch(image).result(timeout=30)
    before = first._shared.cache.stats()
    second.set_image(image)
    after = second._shared.cache.stats()
    assert after.hits == before.hits + 1 and after.misses == before.misses


def test_box_and_prior_mask_prompts_and_bad_prompts(sam_settings: SamSettings) -> None:
    segmenter = _sam(sam_settings)
    with pytest.raises(SamError, match="open an image"):
        segmenter.predict(Prompt(points=np.array([[1, 1]]), labels=np.array([1])))
    image = slice_image()
    segmenter.set_image(image)
    prior = np.zeros(image.shape, dtype=bool)
    prior[12:36, 16:48] = True
    mask = segmenter.predict(Prompt(box=np.array([16, 12, 48, 36]), mask_input=prior))
    assert mask.shape == image.shape
    with pytest.raises(SamError, match="outside"):
        segmenter.predict(Prompt(points=np.array([[64, 10]]), labels=np.array([1])))
    with pytest.raises(SamError, match="x0 < x1"):
        segmenter.predict(Prompt(box=np.array([30, 10, 20, 40])))
    with pytest.raises(SamError, match="prior mask"):
        segmenter.predict(Prompt(mask_input=np.zeros((10, 10), dtype=bool)))
    with pytest.raises(SamError, match="8-bit"):
        segmenter.set_image(SliceImage(image.pixels, image.pixels, is_hu=False))


def test_unreachable_hub_falls_back_with_a_reason(tmp_path: Path) -> None:
    settings = settings_from({"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}).sam
    backend = load_backend(settings)
    assert isinstance(backend, DefaultBackend) and backend.info.name != "sam"
    reason = backend.info.reason
    assert "ybelkada/segment-anything" in reason and "not on this machine" in reason
    assert "SPINALSAM_SAM_CHECKPOINT" in reason and "hf download" in reason
    assert "SPINALSAM_BACKEND=sam" in reason
    assert backend.new_segmenter().info.name == backend.info.name

    forced = load_backend(settings.model_copy(update={"backend": "sam"})).info.reason
    assert "SAM was requested" in forced and "no cached checkpoint for ybelkada/" in forced
    default = settings.model_copy(update={"backend": "default"})
    assert "SPINALSAM_BACKEND=default" in load_backend(default).info.reason


def test_describe_parameters_and_compute(sam_settings: SamSettings) -> None:
    facts = _sam(sam_settings).describe_parameters()
    assert facts["model_type"] == "vit_tiny"
    assert facts["checkpoint"] == f"{TINY_REPO}:{TINY_FILE}"
    assert len(facts["sha256"]) == 64 and facts["keys_loaded"] > 100
    assert facts["missing_keys"] == [] and facts["unexpected_keys"] == []
    assert facts["parameters_lora"] > 0 and facts["parameters_cbam"] > 0
    assert facts["lora_rank"] == 8 and facts["lora_targets"] == ["qkv"]
    text = format_parameters(facts)
    assert "strict key check passed" in text and facts["sha256"] in text

    compute = describe_compute(torch.device("cpu"))
    assert compute["device"] == "cpu" and compute["torch_threads"] >= 1
    assert compute["torch_version"] == torch.__version__
    assert "torch threads" in format_compute(compute)


def test_a_speed_up_that_cannot_run_is_noted_not_fatal_and_loading_reports_progress(
    hf_home: Path,
) -> None:
    messages: list[tuple[float | None, str]] = []
    settings = _settings(hf_home, SPINALSAM_ENCODER_OPT="compile")  # GPU only: cannot run here
    backend = load_backend(settings, lambda f, m: messages.append((f, m)))
    assert isinstance(backend, SamAppBackend), backend.info.reason
    notes = backend.new_segmenter().inner.describe_parameters()["notes"]
    assert any("compile" in note and "skipped" in note for note in notes)
    assert messages[0][0] == 0.0 and messages[-1] == (1.0, "SAM ready")


def test_auto_speed_up_is_applied_and_reported(hf_home: Path) -> None:
    from spinalsam.sam.fast import auto_method

    expected = auto_method(torch.device("cpu"))
    segmenter = shared_sam(_settings(hf_home, SPINALSAM_ENCODER_OPT="auto")).segmenter()
    facts = segmenter.describe_parameters()
    assert expected and expected.split("+")[0] in str(facts)
    segmenter.set_image(slice_image())
    mask = segmenter.predict(Prompt(points=np.array([[32, 24]]), labels=np.array([1])))
    assert 0 < mask.sum() < mask.size


@pytest.mark.skipif(not importlib.util.find_spec("openvino"), reason="'openvino' is absent")
def test_an_encoder_speed_up_serves_the_exact_openvino_decoder(
    hf_home: Path, sam_settings: SamSettings, tmp_path: Path
) -> None:
    from spinalsam.sam.fast_decoder import OpenVinoMaskDecoder

    plain = _sam(sam_settings)
    fast = _sam(_settings(hf_home, SPINALSAM_ENCODER_OPT="sdpa", SPINALSAM_CACHE=str(tmp_path)))
    assert isinstance(fast._loaded.model.sam.mask_decoder, OpenVinoMaskDecoder)
    assert fast.describe_parameters()["decoder"] == "openvino"
    assert plain.describe_parameters()["decoder"] == "pytorch"
    assert list(tmp_path.rglob("decoder.xml"))  # cached beside the encoder exports
    image = slice_image(seed=5)
    prompts = (
        Prompt(points=np.array([[32, 24]]), labels=np.array([1])),  # multimask, best kept
        Prompt(box=np.array([12.0, 8.0, 50.0, 40.0])),
        Prompt(box=np.array([12.0, 8.0, 50.0, 40.0]), mask_input=np.ones(image.shape, bool)),
    )
    for segmenter in (plain, fast):
        segmenter.set_image(image)
    for prompt in prompts:
        want, got = plain.predict(prompt), fast.predict(prompt)
        assert 0 < want.sum() < want.size
        assert (want != got).mean() < 1e-3  # same masks up to a pixel at the threshold


@pytest.mark.skipif(
    not importlib.util.find_spec("mobile_sam"), reason="MobileSAM needs 'mobilesam-mirror'/'timm'"
)
def test_mobile_sam_is_served_from_the_hub_like_sam(tmp_path: Path) -> None:
    """`mobile_sam.pt` from the Hub (here a pre-filled cache): loaded strictly as `vit_t`, LoRA
    on TinyViT's attention, and the served masks are upstream MobileSAM's (random weights)."""
    from spinalsam.sam.fast import build_mobile_sam
    from spinalsam.sam.fidelity import random_sam

    source = tmp_path / "source" / "mobile_sam.pt"
    source.parent.mkdir()
    torch.save(random_sam("mobile_sam", seed=2).state_dict(), source)
    prefill_hf_cache(tmp_path / "hub", "dhkim2810/MobileSAM", "mobile_sam.pt", source)
    settings = _settings(tmp_path, SPINALSAM_SAM_CHECKPOINT="dhkim2810/MobileSAM:mobile_sam.pt")
    segmenter = _sam(settings)
    facts = segmenter.describe_parameters()
    assert facts["model_type"] == "vit_t" and facts["missing_keys"] == []
    assert facts["parameters_lora"] > 0 and facts["lora_merged"]
    image = slice_image(seed=4)
    prompt = Prompt(points=np.array([[32, 24]]), labels=np.array([1]))
    segmenter.set_image(image)
    mask = segmenter.predict(prompt)

    predictor = SamPredictor(build_mobile_sam(source))
    predictor.set_image(np.repeat(image.display[:, :, None], 3, axis=2))
    masks, scores, _ = predictor.predict(prompt.points, prompt.labels)
    assert mask.shape == image.shape and 0 < mask.sum() < mask.size
    assert (mask != masks[int(np.argmax(scores))]).mean() < 1e-3


def test_nothing_is_embedded_ahead_when_the_cache_keeps_nothing(hf_home: Path) -> None:
    segmenter = _sam(_settings(hf_home, SPINALSAM_EMBED_CACHE_MB="0"))
    assert segmenter.prefetch(slice_image()) is None  # it would be computed and thrown away
    segmenter.set_image(slice_image())  # the foreground still embeds
    assert segmenter._shared.cache.stats().misses == 1
