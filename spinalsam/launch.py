"""Process-level set-up from the validated settings: one backend and one command router per
process, and Gradio's launch options.

Sharing and authentication are opt-in (a clinician demo must never be public by accident); every
variable is a field of `spinalsam.settings.Settings` and listed in the README.
`GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` are read by Gradio itself.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from spinalsam.backends import load_backend
from spinalsam.commands import Router
from spinalsam.commands.llm import LLMConfig, LLMParser
from spinalsam.settings import Settings
from spinalsam.ui import build_app

__all__ = ["create_demo", "launch_options"]

# Small slices (a 128² DICOM, a reformatted plane) are scaled up to fill the panel; Gradio's
# select events still report original-image pixels.
CSS = "#ct-image img { width: 100%; height: 100%; object-fit: contain; }"

# Arrow up/down (or Page up/down) step through slices, as in radiology viewers, unless the user
# is typing in a text field.
KEYS_JS = """
() => {
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName);
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    const target = {ArrowUp: "next-slice", PageUp: "next-slice",
                    ArrowDown: "prev-slice", PageDown: "prev-slice"}[event.key];
    if (!target) return;
    event.preventDefault();
    document.getElementById(target)?.click();
  });
}
"""


def create_demo(settings: Settings) -> gr.Blocks:
    """The app for `settings`: the backend is chosen (and SAM loaded) before the UI is built."""
    demo = build_app(load_backend(settings.sam), _router(settings), settings.flag_dir)
    return demo.queue(default_concurrency_limit=settings.concurrency, max_size=64)


def _router(settings: Settings) -> Router:
    """DeepSeek when a key is configured, else the offline parser only."""
    if settings.deepseek_api_key is None:
        return Router(None)
    config = LLMConfig(
        api_key=settings.deepseek_api_key.get_secret_value(),
        base_url=settings.deepseek_base_url,
        model=settings.deepseek_model,
        timeout=settings.deepseek_timeout,
        json_mode=settings.deepseek_json_mode,
    )
    return Router(LLMParser(config))


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `demo.launch`."""
    options: dict[str, Any] = {
        "share": settings.share,
        "max_file_size": settings.budget.max_upload_bytes,
        "show_error": True,
        "css": CSS,
        "js": KEYS_JS,
    }
    if settings.auth_pairs:
        options["auth"] = settings.auth_pairs
    return options
