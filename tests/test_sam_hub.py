"""Settings and Hub resolution, offline, through huggingface_hub's real cache lookup."""

from __future__ import annotations

import time
from pathlib import Path

import huggingface_hub.constants
import pytest
from sam_fixtures import TINY_FILE, TINY_REPO, prefill_hf_cache, settings_from

from spinalsam.sam import SamConfig, SamError, build_spinalsam, save_adapter, save_tiny_checkpoint
from spinalsam.sam.config import DEFAULT_CHECKPOINT
from spinalsam.sam.hub import (
    HubFile,
    download_hint,
    fetch_adapter,
    fetch_checkpoint,
    infer_model_type,
    parse_checkpoint_spec,
    weights_on_disk,
)
from spinalsam.settings import SettingsError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network (huggingface_hub read HF_HUB_OFFLINE at import, so force it) and no stray
    `spinalsam.toml` from the working directory."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "sam_vit_tiny.pth")


def test_settings_env_overrides_toml_and_reads_hf_variables(tmp_path: Path) -> None:
    toml = tmp_path / "spinalsam.toml"
    toml.write_text('[sam]\ndevice = "cuda"\nembed_cache_mb = 64\nadapter = "me/lora"\n')
    env = {
        "SPINALSAM_CONFIG": str(toml),
        "SPINALSAM_DEVICE": "cpu",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    settings = settings_from(env).sam
    assert settings.device == "cpu"  # env wins
    assert settings.embed_cache_bytes == 64 * 2**20  # from the file
    assert settings.adapter == "me/lora"
    assert settings.hf_cache_dir == str(tmp_path / "hf" / "hub")
    assert settings.offline and settings.backend == "auto"
    assert settings.sam_checkpoint == DEFAULT_CHECKPOINT


def test_invalid_settings_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"SPINALSAM_DEVICE='gpu'.*`cuda`"):
        settings_from({"SPINALSAM_DEVICE": "gpu"})
    with pytest.raises(SettingsError, match="not found"):
        settings_from({"SPINALSAM_CONFIG": str(tmp_path / "absent.toml")})
    (tmp_path / "bad.toml").write_text("[sam\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        settings_from({"SPINALSAM_CONFIG": str(tmp_path / "bad.toml")})
    (tmp_path / "typo.toml").write_text('[sam]\ndevise = "cpu"\n')
    with pytest.raises(SettingsError, match=r"unknown \[sam\] keys devise"):
        settings_from({"SPINALSAM_CONFIG": str(tmp_path / "typo.toml")})
    (tmp_path / "wrong.toml").write_text('[sam]\ndevice = "gpu"\n')
    with pytest.raises(
        SettingsError, match=r"SPINALSAM_DEVICE='gpu'.*`device` in the \[sam\] table"
    ):
        settings_from({"SPINALSAM_CONFIG": str(tmp_path / "wrong.toml")})


def test_specs_and_model_types(checkpoint: Path) -> None:
    assert parse_checkpoint_spec(DEFAULT_CHECKPOINT) == HubFile(
        "ybelkada/segment-anything", "checkpoints/sam_vit_b_01ec64.pth"
    )
    assert parse_checkpoint_spec(str(checkpoint)) == checkpoint
    assert parse_checkpoint_spec("checkpoints/sam_vit_h_4b8939.pth") == Path(
        "checkpoints/sam_vit_h_4b8939.pth"
    )
    assert infer_model_type("sam_vit_l_0b3195.pth") == "vit_l"
    assert infer_model_type(checkpoint.name) == "vit_tiny"
    assert infer_model_type("mobile_sam.pt") == "vit_t"  # MobileSAM (docs/sam.md)
    with pytest.raises(SamError, match="SPINALSAM_SAM_MODEL_TYPE"):
        infer_model_type("weights.pth")
    assert "hf download ybelkada/segment-anything" in download_hint(DEFAULT_CHECKPOINT)


def test_checkpoint_comes_from_the_prefilled_cache_offline(
    tmp_path: Path, checkpoint: Path
) -> None:
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    settings = settings_from(env).sam
    pointer = prefill_hf_cache(Path(settings.hf_cache_dir), TINY_REPO, TINY_FILE, checkpoint)
    spec = f"{TINY_REPO}:{TINY_FILE}"
    found = fetch_checkpoint(spec, cache_dir=settings.hf_cache_dir, offline=settings.offline)
    assert found == pointer and found.read_bytes() == checkpoint.read_bytes()
    model = build_spinalsam(SamConfig(infer_model_type(found.name)), found)
    assert model.key_check.ok and model.key_check.loaded > 100


def test_missing_weights_offline_say_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(SamError, match=r"no network .* no cached checkpoint for ybelkada/"):
        fetch_checkpoint(DEFAULT_CHECKPOINT, cache_dir=str(tmp_path), offline=True)
    with pytest.raises(SamError, match="checkpoint not found"):
        fetch_checkpoint(str(tmp_path / "sam_vit_b.pth"))
    with pytest.raises(SamError, match="no cached adapter for me/lora"):
        fetch_adapter("me/lora", cache_dir=str(tmp_path), offline=True)
    with pytest.raises(SamError, match="adapter folder not found"):
        fetch_adapter(str(tmp_path / "nowhere" / "adapter"))


def test_adapter_from_a_folder_and_from_a_cached_snapshot(tmp_path: Path, checkpoint: Path) -> None:
    model = build_spinalsam(SamConfig("vit_tiny", lora_rank=2), checkpoint)
    folder = save_adapter(model, tmp_path / "adapter", str(checkpoint), model.key_check.sha256)
    assert fetch_adapter(str(folder)) == folder
    cache = tmp_path / "hub"
    for file in folder.iterdir():
        prefill_hf_cache(cache, "me/lora", file.name, file)
    snapshot = fetch_adapter("me/lora", cache_dir=str(cache), offline=True)
    loaded = build_spinalsam(SamConfig("vit_tiny"), checkpoint, adapter=snapshot)
    assert loaded.config.lora_rank == 2


def test_unreachable_hub_fails_fast_with_a_clear_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # closed
    start = time.monotonic()
    with pytest.raises(SamError, match="cannot be reached"):
        fetch_checkpoint(f"{TINY_REPO}:{TINY_FILE}", cache_dir=str(tmp_path), offline=False)
    assert time.monotonic() - start < 5  # no half-minute of retries


def test_weights_on_disk_looks_only_at_disk(tmp_path: Path, checkpoint: Path) -> None:
    cache = tmp_path / "hub"
    spec = f"{TINY_REPO}:{TINY_FILE}"
    assert not weights_on_disk(spec, str(cache))
    prefill_hf_cache(cache, TINY_REPO, TINY_FILE, checkpoint)
    assert weights_on_disk(spec, str(cache))
    assert weights_on_disk(str(checkpoint)) and not weights_on_disk(str(tmp_path / "x.pth"))
