"""How to reach the LLM: explicit values, validated by `LLMConfig.connect`.

The parser never reads the environment itself: the app's settings (`spinalsam.settings`) read the
DEEPSEEK_* variables once and pass values, so two routers in one process can talk to different
servers and tests need no environment.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from spinalsam.limits import DEFAULT_BUDGET

__all__ = ["DEFAULT_MODEL", "LLMConfig", "LLMConfigError"]

JsonMode = Literal["auto", "on", "off"]
Thinking = Literal["auto", "enabled", "disabled"]

DEFAULT_BASE_URL = "https://api.deepseek.com"
# deepseek-chat / deepseek-reasoner were retired on 2026-07-24; V4 Flash is the fast model.
DEFAULT_MODEL = "deepseek-v4-flash"
# Local servers (Ollama, vLLM, llama.cpp) accept any key; the client library needs one.
LOCAL_KEY = "local-no-key"
_MODEL_NAME = re.compile(r"[\w.:/@+-]{1,120}")


class LLMConfigError(ValueError):
    """A setting holds a value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class LLMConfig:
    """Connection settings; `api_key` is excluded from repr so it never reaches a log.

    `thinking`: "auto" sends DeepSeek's `thinking: disabled` to api.deepseek.com (a command is
    a classification: reasoning costs seconds and buys nothing here) and nothing to other
    servers, whose models decide for themselves (R1 always thinks).
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    timeout: float = 20.0
    json_mode: JsonMode = "auto"
    thinking: Thinking = "auto"
    max_answer_chars: int = DEFAULT_BUDGET.max_llm_answer_chars

    @property
    def is_deepseek(self) -> bool:
        return (urlsplit(self.base_url).hostname or "").endswith("deepseek.com")

    def thinking_body(self) -> dict[str, dict[str, str]]:
        """The request field that switches thinking, or nothing when the server decides."""
        if self.thinking == "auto":
            return {"thinking": {"type": "disabled"}} if self.is_deepseek else {}
        return {"thinking": {"type": self.thinking}}

    @classmethod
    def connect(
        cls,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        model: str = DEFAULT_MODEL,
        timeout: float = 20.0,
        json_mode: JsonMode = "auto",
        thinking: Thinking = "auto",
    ) -> LLMConfig | None:
        """The configuration for one server, or None when no LLM is configured.

        A key is required for remote servers; a local base URL (localhost, a private address)
        works without one, which is what Ollama and llama.cpp expect. Errors name the
        DEEPSEEK_* variable the value came from.
        """
        _check_url(base_url)
        if not _MODEL_NAME.fullmatch(model):
            raise LLMConfigError("DEEPSEEK_MODEL must be a model name such as deepseek-v4-flash")
        if not 0 < timeout <= 600:
            raise LLMConfigError("DEEPSEEK_TIMEOUT must be between 0 and 600 seconds")
        key = (api_key or "").strip()
        if not key:
            if not _is_local(base_url):
                return None
            key = LOCAL_KEY
        return cls(key, base_url, model, timeout, json_mode, thinking)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LLMConfigError(
            "DEEPSEEK_BASE_URL must be an http(s) URL, e.g. https://api.deepseek.com or "
            "http://localhost:11434/v1"
        )


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private
