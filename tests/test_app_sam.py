"""The app end to end with SAM selected: a tiny SAM the test builds, served from a pre-filled
Hugging Face cache with HF_HUB_OFFLINE=1 through the real loading path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import running_app
from gradio_client import Client
from sam_fixtures import TINY_FILE, TINY_REPO, prefill_hf_cache

from spinalsam.sam.tiny import save_tiny_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sam_app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("sam-app")
    checkpoint = save_tiny_checkpoint(workdir / "tiny.pth")
    prefill_hf_cache(workdir / "hf" / "hub", TINY_REPO, TINY_FILE, checkpoint)
    with running_app(
        workdir,
        SPINALSAM_BACKEND="sam",
        SPINALSAM_SAM_CHECKPOINT=f"{TINY_REPO}:{TINY_FILE}",
        SPINALSAM_DEVICE="cpu",
    ) as url:
        yield url


def test_app_serves_sam_when_weights_are_cached(sam_app_url: str) -> None:
    client = Client(sam_app_url, verbose=False, download_files=False)
    client.predict("CT vertebra slice (pydicom CT_small.dcm, HU)", api_name="/load_example")
    out = client.predict("add a point at (64, 60) and generate point mask", [], api_name="/chat")
    status = out[5]
    assert "Segmented with sam" in status, status
    facts = client.predict("check parameters", [], api_name="/chat")[1][-1]["content"]
    assert "vit_tiny" in str(facts) and "sha" in str(facts).lower()


def test_default_app_says_why_sam_is_off(app_url: str, tmp_path: Path) -> None:
    client = Client(app_url, verbose=False, download_files=False)
    facts = client.predict("verify parameter matching", [], api_name="/chat")[1][-1]["content"]
    assert "embedded default segmenter" in str(facts)
    assert "SPINALSAM_BACKEND" in str(facts)
