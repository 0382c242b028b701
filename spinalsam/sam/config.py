"""Where the SAM backend takes its settings from: environment variables over `spinalsam.toml`.

One validated, immutable settings object is built at start-up. It is hashable, so the loaded
model and the embedding cache can be shared per distinct settings without a mutable global.

`spinalsam.toml` (in the working directory, or wherever `SPINALSAM_CONFIG` points) holds a
`[sam]` table whose keys are the field names below, e.g.::

    [sam]
    sam_checkpoint = "checkpoints/sam_vit_b_01ec64.pth"
    adapter = "my-org/spinalsam-lora"
    device = "cuda"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spinalsam.sam.errors import SamError
from spinalsam.sam.model import ModelType

__all__ = ["DEFAULT_CHECKPOINT", "ENV_VARS", "SamSettings", "load_settings"]

DEFAULT_CHECKPOINT = "ybelkada/segment-anything:checkpoints/sam_vit_b_01ec64.pth"

ENV_VARS: Mapping[str, str] = {
    "backend": "SPINALSAM_BACKEND",
    "sam_checkpoint": "SPINALSAM_SAM_CHECKPOINT",
    "sam_model_type": "SPINALSAM_SAM_MODEL_TYPE",
    "adapter": "SPINALSAM_ADAPTER",
    "device": "SPINALSAM_DEVICE",
    "embed_cache_mb": "SPINALSAM_EMBED_CACHE_MB",
    "encoder_opt": "SPINALSAM_ENCODER_OPT",
}
_TRUE = {"1", "true", "yes", "on"}


class SamSettings(BaseModel):
    """Everything that decides which SAM is served, from where, and on what device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["auto", "sam", "default"] = "auto"
    sam_checkpoint: str = DEFAULT_CHECKPOINT  # `repo_id:filename` on the Hub, or a local path
    sam_model_type: ModelType | None = None  # None: inferred from the checkpoint's file name
    adapter: str | None = None  # a Hub repo id or a local folder (see adapters.py)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    embed_cache_mb: int = Field(512, ge=0)
    # A spinalsam.sam.fast method ("openvino+bf16", "sdpa+int8", …); "auto" picks the fastest
    # Dice-preserving one for the device (docs/speed.md), "none" keeps the plain encoder.
    encoder_opt: str | None = "auto"
    hf_cache_dir: str | None = None  # None: huggingface_hub's own default
    offline: bool = False  # HF_HUB_OFFLINE: never touch the network

    @property
    def embed_cache_bytes(self) -> int:
        return self.embed_cache_mb * 1024 * 1024


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> SamSettings:
    """Settings from the TOML file overridden by the environment; `SamError` if invalid.

    The Hugging Face variables are read here too (`HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE`)
    so that they are honoured even when set after `huggingface_hub` was imported.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = _read_toml(config_file or env.get("SPINALSAM_CONFIG"))
    if env.get("HF_HUB_CACHE"):
        values["hf_cache_dir"] = env["HF_HUB_CACHE"]
    elif env.get("HF_HOME"):
        values["hf_cache_dir"] = str(Path(env["HF_HOME"]) / "hub")
    if env.get("HF_HUB_OFFLINE"):
        values["offline"] = env["HF_HUB_OFFLINE"].strip().lower() in _TRUE
    values.update({field: env[var] for field, var in ENV_VARS.items() if env.get(var)})
    try:
        return SamSettings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_VARS.get(str(e['loc'][0]), e['loc'][0])}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise SamError(f"invalid SAM settings: {problems}") from exc


def _read_toml(path: str | Path | None) -> dict[str, Any]:
    """The `[sam]` table of the config file; the default file is optional, a named one is not."""
    file = Path(path) if path else Path.cwd() / "spinalsam.toml"
    if not file.is_file():
        if path:
            raise SamError(f"SpinalSAM config file not found: {file}")
        return {}
    try:
        table = tomllib.loads(file.read_text()).get("sam", {})
    except tomllib.TOMLDecodeError as exc:
        raise SamError(f"{file} is not valid TOML: {exc}") from exc
    if not isinstance(table, dict):
        raise SamError(f"{file}: [sam] must be a table")
    return table
