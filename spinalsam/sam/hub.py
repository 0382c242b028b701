"""Finding SAM checkpoints and adapters: a local path, or the Hugging Face Hub via its cache.

The local cache is always tried first (`local_files_only=True`), so a machine that downloaded
the weights once keeps working offline; the network is used only when that fails and
`HF_HUB_OFFLINE` is not set. Every failure becomes a `SamError` whose message says what was
looked for, where, and how to make it available.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import huggingface_hub.constants
from huggingface_hub import hf_hub_download, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from tqdm.auto import tqdm

from spinalsam.sam.config import ModelType
from spinalsam.sam.errors import SamError

__all__ = [
    "HubFile",
    "ProgressCallback",
    "download_hint",
    "fetch_adapter",
    "fetch_checkpoint",
    "infer_model_type",
    "parse_checkpoint_spec",
    "weights_on_disk",
]

ProgressCallback = Callable[[float | None, str], None]
"""Called with (fraction done or None, message) while weights download or load."""

_HUB_FILE = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+):(?P<file>[^:]+)$")
_HUB_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
_MODEL_TYPES: tuple[tuple[str, ModelType], ...] = (
    ("vit_b", "vit_b"),
    ("vit_l", "vit_l"),
    ("vit_h", "vit_h"),
    ("tiny", "vit_tiny"),
    ("mobile_sam", "vit_t"),
    ("vit_t", "vit_t"),
)


@dataclass(frozen=True)
class HubFile:
    """One file in a Hub model repository."""

    repo_id: str
    filename: str

    def __str__(self) -> str:
        return f"{self.repo_id}:{self.filename}"


def parse_checkpoint_spec(spec: str) -> Path | HubFile:
    """`owner/name:path/in/repo.pth` -> `HubFile`; anything else (or an existing file) -> Path."""
    path = Path(spec).expanduser()
    match = _HUB_FILE.match(spec.strip())
    if path.exists() or match is None:
        return path
    return HubFile(match["repo"], match["file"])


def infer_model_type(name: str) -> ModelType:
    """The SAM variant from a checkpoint's file name, e.g. `sam_vit_b_01ec64.pth` -> vit_b."""
    stem = Path(name).name.lower()
    for marker, model_type in _MODEL_TYPES:
        if marker in stem:
            return model_type
    raise SamError(
        f"cannot tell the SAM model type from {Path(name).name!r}; "
        "set SPINALSAM_SAM_MODEL_TYPE to vit_b, vit_l, vit_h, vit_t (MobileSAM) or vit_tiny"
    )


def download_hint(spec: str) -> str:
    """How a user makes `spec` available, for messages shown when it is not."""
    target = parse_checkpoint_spec(spec)
    if isinstance(target, HubFile):
        return (
            f"pre-download it with `hf download {target.repo_id} {target.filename}` "
            "(or `huggingface-cli download …`), or set SPINALSAM_SAM_CHECKPOINT to a local .pth"
        )
    return "set SPINALSAM_SAM_CHECKPOINT to an existing .pth file or to `repo_id:filename`"


def weights_on_disk(spec: str, cache_dir: str | None = None) -> bool:
    """Whether the checkpoint `spec` names is a local file or already in the Hub cache.

    No network and no torch: the app asks this before deciding to import the SAM stack.
    """
    target = parse_checkpoint_spec(spec)
    if isinstance(target, Path):
        return target.is_file()
    found = try_to_load_from_cache(target.repo_id, target.filename, cache_dir=cache_dir)
    return isinstance(found, str)


def fetch_checkpoint(
    spec: str,
    *,
    cache_dir: str | None = None,
    offline: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """A local path to the checkpoint `spec` names: the file itself, or the cached Hub file."""
    target = parse_checkpoint_spec(spec)
    if isinstance(target, Path):
        if not target.is_file():
            raise SamError(f"SAM checkpoint not found: {target}")
        return target
    try:
        return Path(
            hf_hub_download(
                target.repo_id, target.filename, cache_dir=cache_dir, local_files_only=True
            )
        )
    except LocalEntryNotFoundError:
        if offline:
            raise SamError(
                f"no network (HF_HUB_OFFLINE=1) and no cached checkpoint for {target}"
            ) from None
    _require_hub(f"checkpoint for {target}")
    try:
        return Path(
            hf_hub_download(
                target.repo_id,
                target.filename,
                cache_dir=cache_dir,
                tqdm_class=_reporting_tqdm(progress, f"downloading {target.filename}"),
            )
        )
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise SamError(f"could not download the SAM checkpoint {target}: {exc}") from exc


def fetch_adapter(
    spec: str,
    *,
    cache_dir: str | None = None,
    offline: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """A local folder holding the adapter `spec` names: the folder itself, or a Hub snapshot."""
    path = Path(spec).expanduser()
    if path.is_dir() or not _HUB_REPO.match(spec.strip()):
        if not path.is_dir():
            raise SamError(f"adapter folder not found: {path}")
        return path
    try:
        return Path(snapshot_download(spec, cache_dir=cache_dir, local_files_only=True))
    except LocalEntryNotFoundError:
        if offline:
            raise SamError(
                f"no network (HF_HUB_OFFLINE=1) and no cached adapter for {spec}"
            ) from None
    _require_hub(f"adapter {spec}")
    try:
        return Path(
            snapshot_download(
                spec,
                cache_dir=cache_dir,
                tqdm_class=_reporting_tqdm(progress, f"downloading adapter {spec}"),
            )
        )
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise SamError(f"could not download the adapter {spec}: {exc}") from exc


def _require_hub(what: str, timeout_s: float = 3.0) -> None:
    """Fail fast when the Hub cannot be reached at all (no network, no DNS).

    huggingface_hub retries unreachable hosts with back-off for about half a minute, which would
    hold up the app's start on every offline machine before it falls back.
    """
    endpoint = urlsplit(huggingface_hub.constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise SamError(
            f"the Hugging Face Hub ({endpoint.hostname}) cannot be reached ({exc}) "
            f"and there is no cached {what}"
        ) from None


def _reporting_tqdm(progress: ProgressCallback | None, message: str) -> type[tqdm] | None:
    """A tqdm class that also forwards each update to `progress` (huggingface_hub takes a class)."""
    if progress is None:
        return None

    class _Reporting(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            progress(self.n / self.total if self.total else None, message)
            return shown

    return _Reporting
