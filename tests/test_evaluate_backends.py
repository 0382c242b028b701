"""`python -m spinalsam.evaluate` comparing backends side by side, SAM from a pre-filled cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sam_fixtures import TINY_FILE, TINY_REPO, prefill_hf_cache

from spinalsam.phantom import make_spine_phantom
from spinalsam.sam.tiny import save_tiny_checkpoint
from spinalsam.windowing import PRESETS, apply_window

REPO = Path(__file__).resolve().parents[1]


def test_default_and_sam_side_by_side(tmp_path: Path) -> None:
    volume, labels = make_spine_phantom(shape=(12, 96, 96), n_vertebrae=1)
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for z in (3, 6, 8):
        render = apply_window(volume[z], PRESETS["bone"])
        Image.fromarray(render).save(tmp_path / "images" / f"s{z}.png")
        Image.fromarray((labels[z] > 0).astype(np.uint8) * 255).save(
            tmp_path / "masks" / f"s{z}.png"
        )
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    prefill_hf_cache(tmp_path / "hf" / "hub", TINY_REPO, TINY_FILE, checkpoint)
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "SPINALSAM_SAM_CHECKPOINT": f"{TINY_REPO}:{TINY_FILE}",
        "SPINALSAM_DEVICE": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "spinalsam.evaluate", "--images", str(tmp_path / "images"),
         "--masks", str(tmp_path / "masks"), "--prompt", "box+point", "--backend", "default,sam",
         "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    by_name = {r["backend"]: r for r in result["backends"]}
    assert set(by_name) == {"default", "sam"}
    assert by_name["default"]["n"] == by_name["sam"]["n"] == 3
    assert by_name["default"]["per_vertebra_dice"]["mean"] > 0.85
    assert 0.0 <= by_name["sam"]["per_vertebra_dice"]["mean"] <= 1.0  # random tiny weights
    assert "default" in result["table"] and "sam" in result["table"]
