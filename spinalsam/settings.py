"""Every setting of the app, read and validated once at start-up (pydantic-settings).

All `SPINALSAM_*`, `DEEPSEEK_*` and `HF_*` variables the app reads are fields of `Settings`; no
other module reads the environment. A bad value stops start-up with `SettingsError`, whose
message names the variable, the value and what is allowed — a clinician's demo must not come
up silently without the model or the LLM that was configured.

The SAM fields may also come from the `[sam]` table of `spinalsam.toml` (in the working
directory, or wherever `SPINALSAM_CONFIG` points), with the environment taking precedence.

This module imports neither torch nor gradio: deciding what to load must cost nothing.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ByteSize, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from spinalsam.ledger import default_cap_bytes
from spinalsam.limits import DEFAULT_BUDGET, Budget
from spinalsam.sam.config import DEFAULT_CHECKPOINT, ModelType, SamSettings
from spinalsam.sam.methods import FastEncoderError, parse_methods

if TYPE_CHECKING:  # the chat package imports the LLM client: only the app needs it
    from spinalsam.commands.llm_config import LLMConfig

__all__ = ["ENV_VARS", "Settings", "SettingsError", "load_settings", "settings_table"]

DEFAULT_DEEPSEEK_MODEL = "deepseek-v4-flash"  # DeepSeek's current V4 id (deepseek-reasoner retired)
# The SAM fields that are also keys of the TOML file's [sam] table.
_SAM_FIELDS = (
    "backend",
    "sam_checkpoint",
    "sam_model_type",
    "adapter",
    "device",
    "embed_cache_mb",
    "encoder_opt",
)


class SettingsError(ValueError):
    """A setting holds a value the app cannot use; the message is meant for the operator."""


def _env(name: str, default: Any, allowed: str, **constraints: Any) -> Any:
    """A field read from the variable `name`; `allowed` is shown when a value is refused."""
    return Field(default, validation_alias=name, description=allowed, **constraints)


class Settings(BaseSettings):
    """The whole configuration. Immutable: built once, then passed down explicitly."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        env_ignore_empty=True,  # `FOO=` means "not set", as in a shell or a Space's secrets UI
        extra="ignore",
        validate_by_name=True,  # the [sam] table uses field names, the environment the aliases
        validate_by_alias=True,
    )

    # --- segmentation backend (SAM) ---
    backend: Literal["auto", "sam", "default"] = _env(
        "SPINALSAM_BACKEND",
        "auto",
        "`auto` (SAM when its weights are found, else the embedded default), `sam`, `default`",
    )
    sam_checkpoint: str = _env(
        "SPINALSAM_SAM_CHECKPOINT",
        DEFAULT_CHECKPOINT,
        "`repo_id:path/in/repo.pth` on the Hugging Face Hub, or a local `.pth` file",
    )
    sam_model_type: ModelType | None = _env(
        "SPINALSAM_SAM_MODEL_TYPE",
        None,
        "`vit_b`, `vit_l`, `vit_h`, `vit_t` (MobileSAM), `vit_tiny`; unset: from the "
        "checkpoint's file name",
    )
    adapter: str | None = _env(
        "SPINALSAM_ADAPTER", None, "a Hub repo id or a local adapter folder; unset: none"
    )
    device: Literal["auto", "cpu", "cuda"] = _env(
        "SPINALSAM_DEVICE", "auto", "`auto` (GPU when there is one), `cpu`, `cuda`"
    )
    embed_cache_mb: int = _env(
        "SPINALSAM_EMBED_CACHE_MB", 512, "an integer ≥ 0 (MiB of SAM embeddings kept)", ge=0
    )
    encoder_opt: str = _env(
        "SPINALSAM_ENCODER_OPT",
        "auto",
        "`auto`, `none`, or methods joined by `+` from: sdpa, int8, onnx, onnx-int8, openvino, "
        "openvino-int8, bf16, compile (docs/speed.md)",
    )
    config_file: Path | None = _env(
        "SPINALSAM_CONFIG", None, "a TOML file with a `[sam]` table; unset: `./spinalsam.toml`"
    )
    export_cache_dir: Path | None = _env(
        "SPINALSAM_CACHE",
        None,
        "a folder for exported ONNX/OpenVINO encoders; unset: `~/.cache/spinalsam/onnx`",
    )
    # --- serving ---
    share: bool = _env("SPINALSAM_SHARE", False, "`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`")
    auth: SecretStr | None = _env(
        "SPINALSAM_AUTH",
        None,
        "`user:password[,user2:password2]`; unset: no login. 5 wrong passwords in a row lock the "
        "user name for 30 s, doubling up to 15 min",
    )
    flag_dir: Path = _env(
        "SPINALSAM_FLAG_DIR",
        Path("flagged"),
        "a folder for flagged results: one SQLite file; `python -m spinalsam.flags DIR out.csv` "
        "exports CSV + mask PNGs",
    )
    max_file_size: ByteSize = _env(
        "SPINALSAM_MAX_FILE_SIZE",
        ByteSize(DEFAULT_BUDGET.max_upload_bytes),
        "a size > 0 such as `500mb`, `2gib` or a number of bytes (1 GiB by default)",
        gt=0,
    )
    max_image_memory: ByteSize = _env(
        "SPINALSAM_MAX_IMAGE_MEMORY",
        ByteSize(default_cap_bytes()),
        "a size > 0 such as `8gib`: images all sessions may hold together; an upload past it "
        "is refused with a message",
        gt=0,
    )
    concurrency: int = _env(
        "SPINALSAM_CONCURRENCY", 2, "an integer from 1 to 16 (requests run at once)", ge=1, le=16
    )
    session_ttl_s: int = _env(
        "SPINALSAM_SESSION_TTL_S",
        DEFAULT_BUDGET.session_ttl_s,
        "seconds ≥ 10 a session's state and files are kept after its last change (a closed tab "
        "frees them at once)",
        ge=10,
    )
    # --- chat LLM (DeepSeek, OpenAI-compatible) ---
    deepseek_api_key: SecretStr | None = _env(
        "DEEPSEEK_API_KEY", None, "an API key; unset: offline command parser only"
    )
    deepseek_base_url: str = _env(
        "DEEPSEEK_BASE_URL", "https://api.deepseek.com", "an `http://` or `https://` URL"
    )
    deepseek_model: str = _env(
        "DEEPSEEK_MODEL",
        DEFAULT_DEEPSEEK_MODEL,
        "a model id of that endpoint (letters, digits, `.:/@+-_`)",
        pattern=r"^[\w.:/@+-]{1,120}$",
    )
    deepseek_timeout: float = _env(
        "DEEPSEEK_TIMEOUT", 20.0, "seconds, a number > 0 and ≤ 600", gt=0, le=600
    )
    deepseek_json_mode: Literal["auto", "on", "off"] = _env(
        "DEEPSEEK_JSON_MODE", "auto", "`auto`, `on`, `off` (ask for a JSON answer)"
    )
    deepseek_thinking: Literal["auto", "enabled", "disabled"] = _env(
        "DEEPSEEK_THINKING", "auto", "`auto`, `enabled`, `disabled` (the model's reasoning mode)"
    )
    # --- Hugging Face Hub (also read by huggingface_hub itself) ---
    hf_home: Path | None = _env("HF_HOME", None, "a folder; the Hub cache is `$HF_HOME/hub`")
    hf_hub_cache: Path | None = _env("HF_HUB_CACHE", None, "a folder (wins over `HF_HOME`)")
    hf_hub_offline: bool = _env(
        "HF_HUB_OFFLINE", False, "`1`/`true` (never use the network) or `0`/`false`"
    )

    @field_validator("encoder_opt")
    @classmethod
    def _known_methods(cls, value: str) -> str:
        spec = value.strip().lower()
        if spec != "auto":
            try:
                parse_methods(spec)
            except FastEncoderError as exc:
                raise ValueError(str(exc)) from None
        return spec

    @field_validator("auth")
    @classmethod
    def _auth_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _parse_auth(value.get_secret_value())
        return value

    @field_validator("deepseek_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.strip().startswith(("http://", "https://")):
            raise ValueError("not an http(s) URL")
        return value.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment, then the `[sam]` table of the TOML file."""
        toml = InitSettingsSource(settings_cls, init_kwargs=_sam_table())
        return init_settings, env_settings, toml

    # --- views handed to the layers below, so none of them reads settings itself ---

    @property
    def sam(self) -> SamSettings:
        """The hashable SAM subset the model loader and the embedding cache are keyed by."""
        if self.hf_hub_cache:
            cache: str | None = str(self.hf_hub_cache)
        elif self.hf_home:
            cache = str(self.hf_home / "hub")
        else:
            cache = None
        return SamSettings(
            **{name: getattr(self, name) for name in _SAM_FIELDS},
            export_cache_dir=str(self.export_cache_dir) if self.export_cache_dir else None,
            hf_cache_dir=cache,
            offline=self.hf_hub_offline,
        )

    @property
    def budget(self) -> Budget:
        """The resource budget with the configured upload limit (archives may unpack as much)
        and session lifetime."""
        upload = int(self.max_file_size)
        return dataclasses.replace(
            DEFAULT_BUDGET,
            max_upload_bytes=upload,
            max_decompressed_bytes=max(DEFAULT_BUDGET.max_decompressed_bytes, upload),
            session_ttl_s=self.session_ttl_s,
        )

    @property
    def llm(self) -> LLMConfig | None:
        """The chat LLM's connection, or None for the offline parser only (no key, remote URL)."""
        from spinalsam.commands.llm_config import LLMConfig

        key = self.deepseek_api_key.get_secret_value() if self.deepseek_api_key else None
        return LLMConfig.connect(
            key,
            self.deepseek_base_url,
            model=self.deepseek_model,
            timeout=self.deepseek_timeout,
            json_mode=self.deepseek_json_mode,
            thinking=self.deepseek_thinking,
        )

    @property
    def auth_pairs(self) -> list[tuple[str, str]] | None:
        return _parse_auth(self.auth.get_secret_value()) if self.auth else None


ENV_VARS: tuple[str, ...] = tuple(
    str(field.validation_alias) for field in Settings.model_fields.values()
)


def load_settings() -> Settings:
    """The settings from the environment and the TOML file; `SettingsError` names what is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


def settings_table() -> str:
    """The README's table of variables, generated from the fields so the two cannot drift."""
    rows = ["| variable | default | allowed values |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if name == "max_file_size":
            default = "1gib"
        shown = "unset" if default is None else f"`{default}`"
        if name == "max_image_memory":  # depends on the machine
            shown = "half the memory"
        rows.append(f"| `{_alias(name, field)}` | {shown} | {field.description} |")
    return "\n".join(rows)


def _alias(name: str, field: FieldInfo) -> str:
    return str(field.validation_alias or name)


def _explain(exc: ValidationError) -> str:
    names = {_alias(n, f): n for n, f in Settings.model_fields.items()}
    problems = []
    for error in exc.errors():
        alias = str(error["loc"][0]) if error["loc"] else "?"
        name = names.get(alias, alias)
        field = Settings.model_fields.get(name)
        allowed = f" Allowed: {field.description}." if field else ""
        if name in _SAM_FIELDS:
            allowed += f" (Set by {alias} or by `{name}` in the [sam] table of the TOML file.)"
        secret = alias in ("SPINALSAM_AUTH", "DEEPSEEK_API_KEY")
        shown = "(hidden)" if secret else repr(error.get("input"))
        problems.append(f"{alias}={shown} is not valid ({error['msg']}).{allowed}")
    return "invalid setting: " + " ".join(problems)


def _sam_table() -> dict[str, Any]:
    """The `[sam]` table of the config file; the default file is optional, a named one is not."""
    named = os.environ.get("SPINALSAM_CONFIG", "").strip()
    file = Path(named) if named else Path.cwd() / "spinalsam.toml"
    if not file.is_file():
        if named:
            raise SettingsError(f"SPINALSAM_CONFIG={named!r}: config file not found")
        return {}
    try:
        table = tomllib.loads(file.read_text(encoding="utf-8")).get("sam", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{file} is not valid TOML: {exc}") from exc
    if not isinstance(table, dict):
        raise SettingsError(f"{file}: [sam] must be a table")
    unknown = sorted(set(table) - set(_SAM_FIELDS))
    if unknown:
        raise SettingsError(
            f"{file}: unknown [sam] keys {', '.join(unknown)}; allowed: {', '.join(_SAM_FIELDS)}"
        )
    return table


def _parse_auth(spec: str) -> list[tuple[str, str]]:
    pairs = []
    for item in spec.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError("SPINALSAM_AUTH must look like 'user:password[,user2:password2]'")
        pairs.append((user, password))
    return pairs
