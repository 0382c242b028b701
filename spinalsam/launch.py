"""Process-level set-up from the validated settings: one backend and one command router per
process, and Gradio's launch options.

Sharing and authentication are opt-in (a clinician demo must never be public by accident); every
variable is a field of `spinalsam.settings.Settings` and listed in the README.
`GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` are read by Gradio itself.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from spinalsam.assets import APP_CSS
from spinalsam.backends import load_backend
from spinalsam.commands import Router
from spinalsam.commands.llm import LLMParser
from spinalsam.settings import Settings
from spinalsam.ui import build_app

__all__ = ["create_demo", "launch_options"]


def create_demo(settings: Settings) -> gr.Blocks:
    """The app for `settings`: the backend is chosen (and SAM loaded) before the UI is built."""
    demo = build_app(load_backend(settings.sam), _router(settings), settings.flag_dir)
    return demo.queue(default_concurrency_limit=settings.concurrency, max_size=64)


def _router(settings: Settings) -> Router:
    """DeepSeek when a key is configured, else the offline parser only."""
    config = settings.llm
    return Router(LLMParser(config) if config else None)


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `demo.launch`."""
    options: dict[str, Any] = {
        "share": settings.share,
        "max_file_size": settings.budget.max_upload_bytes,
        "show_error": True,
        "css": APP_CSS,  # layout only; the image panel brings its own CSS and JS
    }
    if settings.auth_pairs:
        options["auth"] = settings.auth_pairs
    return options
