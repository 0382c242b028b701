"""Publishing a trained adapter folder to the Hugging Face Hub, where the app can fetch it.

The app loads `SPINALSAM_ADAPTER=user/repo` through huggingface_hub, so pushing the adapter folder
as a model repository is all it takes to share a fine-tune.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HTTPError

from spinalsam.training.errors import TrainingError

__all__ = ["PublishError", "push_adapter"]


class PublishError(TrainingError):
    """The adapter could not be pushed; the message says why and what to do."""


def push_adapter(folder: str | Path, repo_id: str, token: str | None = None) -> str:
    """Upload `folder` to the model repository `repo_id` (created if missing); returns its URL.

    The token comes from `HF_TOKEN` unless given, so it never appears on a command line.
    """
    token = token or os.environ.get("HF_TOKEN")
    if not token:
        raise PublishError(
            "pushing to the Hub needs a write token: set HF_TOKEN (https://huggingface.co/settings/tokens)"
        )
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message="SpinalSAM adapter from spinalsam.train",
        )
    except (HTTPError, OSError) as err:
        raise PublishError(
            f"could not push {folder} to {repo_id} (offline, or the token cannot write there): "
            f"{err}. The adapter is saved locally; push it later with "
            f"`huggingface-cli upload {repo_id} {folder}`."
        ) from err
    return str(url)
