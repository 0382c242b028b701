"""Process-level set-up from the validated settings: one backend and one command router per
process, and Gradio's launch options.

Sharing and authentication are opt-in (a clinician demo must never be public by accident); every
variable is a field of `spinalsam.settings.Settings` and listed in the README. Every session may
have at most `Budget.max_jobs_per_session` requests waiting, the queue holds at most
`QUEUE_MAX_SIZE`, logins back off per user name and request bodies are bounded
(`spinalsam.guards`).
`GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` are read by Gradio itself.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from spinalsam.assets import APP_CSS
from spinalsam.backends import load_backend
from spinalsam.commands import Router
from spinalsam.commands.llm import LLMParser
from spinalsam.guards import DiskReserve, LoginGuard, RequestSizeLimit, limit_jobs_per_session
from spinalsam.ledger import ImageLedger
from spinalsam.limits import Budget
from spinalsam.settings import Settings
from spinalsam.ui import build_app

__all__ = ["QUEUE_MAX_SIZE", "create_demo", "guarded_queue", "launch_options"]

QUEUE_MAX_SIZE = 64  # requests of all users waiting at once; more get "queue full"


def create_demo(settings: Settings) -> gr.Blocks:
    """The app for `settings`: the backend is chosen (and SAM loaded) before the UI is built."""
    budget = settings.budget
    ledger = ImageLedger(int(settings.max_image_memory))
    demo = build_app(
        load_backend(settings.sam), _router(settings), settings.flag_dir, budget, ledger
    )
    return guarded_queue(demo, budget, settings.concurrency)


def guarded_queue(demo: gr.Blocks, budget: Budget, concurrency: int) -> gr.Blocks:
    """Gradio's queue, bounded overall and per session, so no user can starve the others."""
    limit_jobs_per_session(demo, budget.max_jobs_per_session)
    return demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_MAX_SIZE)


def _router(settings: Settings) -> Router:
    """DeepSeek when a key is configured, else the offline parser only."""
    config = settings.llm
    return Router(LLMParser(config) if config else None)


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `demo.launch`."""
    budget = settings.budget
    size_limit = Middleware(RequestSizeLimit, max_bytes=budget.max_request_bytes)
    reserve = Middleware(
        DiskReserve, folder=get_upload_folder, min_free_bytes=budget.min_free_disk_bytes
    )
    options: dict[str, Any] = {
        "share": settings.share,
        "max_file_size": settings.budget.max_upload_bytes,
        "show_error": True,
        "css": APP_CSS,  # layout only; the image panel brings its own CSS and JS
        "app_kwargs": {"middleware": [size_limit, reserve]},
    }
    if settings.auth_pairs:
        # A coroutine function: Gradio awaits it, so back-off delays never block the server.
        options["auth"] = LoginGuard(dict(settings.auth_pairs)).check
    return options
