"""Process-level set-up: one backend and one command router per process, launch options from env.

Sharing and authentication are opt-in (a clinician demo must never be public by accident):
- `SPINALSAM_SHARE=1` creates a public gradio.live link;
- `SPINALSAM_AUTH="user:password[,user2:password2]"` requires a login;
- `SPINALSAM_FLAG_DIR` is where collaborators' flags are stored (default `./flagged`);
- `SPINALSAM_MAX_FILE_SIZE` caps uploads (default `1gb`), `SPINALSAM_CONCURRENCY` the number of
  requests that run at once (default 2: the model is shared, the CPU has two cores).
`GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` are read by Gradio itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr

from spinalsam.assets import APP_CSS
from spinalsam.backends import load_backend
from spinalsam.commands import Router
from spinalsam.commands.llm import LLMConfigError
from spinalsam.ui import build_app

__all__ = ["create_demo", "launch_options"]

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


def create_demo() -> gr.Blocks:
    flag_dir = Path(os.environ.get("SPINALSAM_FLAG_DIR", "flagged"))
    demo = build_app(load_backend(), _router(), flag_dir)
    concurrency = int(os.environ.get("SPINALSAM_CONCURRENCY", "2"))
    return demo.queue(default_concurrency_limit=concurrency, max_size=64)


def _router() -> Router:
    """DeepSeek when configured; a bad DEEPSEEK_* value must not stop a clinician's demo."""
    try:
        return Router.from_env()
    except LLMConfigError as exc:
        log.warning("DeepSeek disabled, using the offline parser only: %s", exc)
        return Router(None)


def launch_options(env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ if env is None else env)
    options: dict[str, Any] = {
        "share": env.get("SPINALSAM_SHARE", "").strip().lower() in _TRUE,
        "max_file_size": env.get("SPINALSAM_MAX_FILE_SIZE", "1gb"),
        "show_error": True,
        "css": APP_CSS,  # layout only; the image panel brings its own CSS and JS
    }
    if env.get("SPINALSAM_AUTH"):
        options["auth"] = _parse_auth(env["SPINALSAM_AUTH"])
    return options


def _parse_auth(spec: str) -> list[tuple[str, str]]:
    pairs = []
    for item in spec.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError("SPINALSAM_AUTH must look like 'user:password[,user2:password2]'")
        pairs.append((user, password))
    return pairs
