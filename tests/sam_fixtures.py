"""Helpers for the SAM tests: a tiny checkpoint, a pre-filled Hugging Face cache, test images.

The cache is laid out exactly as `huggingface_hub` writes it (blobs named by content hash,
snapshots linking to them, `refs/main` naming the commit), so `hf_hub_download` finds the file
through its real offline code path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from spinalsam.sam.tiny import save_tiny_checkpoint
from spinalsam.segmenters.base import SliceImage
from spinalsam.settings import ENV_VARS, SamSettings, Settings, load_settings

TINY_REPO = "spinalsam-test/tiny-sam"
TINY_FILE = "checkpoints/sam_vit_tiny_test.pth"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def prefill_hf_cache(cache_dir: Path, repo_id: str, filename: str, source: Path) -> Path:
    """Place `source` in `cache_dir` (an HF hub cache) as `repo_id`'s `filename` at `main`."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, blob)
    pointer = repo_dir / "snapshots" / COMMIT / filename
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return pointer


def slice_image(height: int = 48, width: int = 64, seed: int = 0) -> SliceImage:
    """A small bright blob on noise: a stand-in CT slice with its 8-bit display render."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    blob = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) < (min(height, width) / 4) ** 2
    display = np.clip(rng.normal(60, 20, (height, width)) + 150 * blob, 0, 255).astype(np.uint8)
    return SliceImage(pixels=display.astype(np.float32), display=display, is_hu=False)


def settings_from(env: Mapping[str, str]) -> Settings:
    """The settings start-up would read with exactly `env` set (every other variable unset)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ENV_VARS:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        return load_settings()


def tiny_sam_settings(hf_home: Path, **extra: str) -> SamSettings:
    """SAM settings serving a freshly saved tiny checkpoint from a pre-filled, offline Hub
    cache under `hf_home`, on the CPU with the plain encoder; `extra` adds or overrides."""
    checkpoint = save_tiny_checkpoint(hf_home / "source" / "sam_vit_tiny.pth")
    prefill_hf_cache(hf_home / "hub", TINY_REPO, TINY_FILE, checkpoint)
    env = {
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "SPINALSAM_SAM_CHECKPOINT": f"{TINY_REPO}:{TINY_FILE}",
        "SPINALSAM_DEVICE": "cpu",
        "SPINALSAM_ENCODER_OPT": "none",
        **extra,
    }
    return settings_from(env).sam
