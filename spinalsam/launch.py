"""Process-level set-up: one backend and one command router per process, launch options from env.

Sharing and authentication are opt-in (a clinician demo must never be public by accident):
- `SPINALSAM_SHARE=1` creates a public gradio.live link;
- `SPINALSAM_AUTH="user:password[,user2:password2]"` requires a login;
- `SPINALSAM_FLAG_DIR` is where collaborators' flags are stored (default `./flagged`);
- `SPINALSAM_MAX_FILE_SIZE` caps uploads (default `1gb`), `SPINALSAM_CONCURRENCY` the number of
  requests that run at once (default 2: the model is shared, the CPU has two cores);
- `SPINALSAM_SESSION_TTL_S` overrides the budget's session lifetime (seconds after the last
  change; default `spinalsam.limits.DEFAULT_BUDGET.session_ttl_s`).
Every session may have at most `Budget.max_jobs_per_session` requests waiting, the queue holds
at most `QUEUE_MAX_SIZE`, and logins back off per user name (`spinalsam.guards`).
`GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` are read by Gradio itself.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr

from spinalsam.backends import load_backend
from spinalsam.commands import Router
from spinalsam.commands.llm import LLMConfigError
from spinalsam.guards import LoginGuard, limit_jobs_per_session
from spinalsam.limits import DEFAULT_BUDGET, Budget
from spinalsam.ui import build_app

__all__ = ["create_demo", "launch_options"]

log = logging.getLogger(__name__)

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

_TRUE = {"1", "true", "yes", "on"}
QUEUE_MAX_SIZE = 64  # requests of all users waiting at once; more get "queue full"


def create_demo() -> gr.Blocks:
    flag_dir = Path(os.environ.get("SPINALSAM_FLAG_DIR", "flagged"))
    budget = session_budget(os.environ.get("SPINALSAM_SESSION_TTL_S"))
    demo = build_app(load_backend(), _router(), flag_dir, budget)
    concurrency = int(os.environ.get("SPINALSAM_CONCURRENCY", "2"))
    return guarded_queue(demo, budget, concurrency)


def session_budget(ttl_s: str | None, base: Budget = DEFAULT_BUDGET) -> Budget:
    """The budget, with the session lifetime overridden when a value is given (tests, demos)."""
    if not ttl_s:
        return base
    return dataclasses.replace(base, session_ttl_s=int(ttl_s))


def guarded_queue(demo: gr.Blocks, budget: Budget, concurrency: int) -> gr.Blocks:
    """Gradio's queue, bounded overall and per session, so no user can starve the others."""
    limit_jobs_per_session(demo, budget.max_jobs_per_session)
    return demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_MAX_SIZE)


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
        "css": CSS,
        "js": KEYS_JS,
    }
    if env.get("SPINALSAM_AUTH"):
        # A coroutine function: Gradio awaits it, so back-off delays never block the server.
        options["auth"] = LoginGuard(dict(_parse_auth(env["SPINALSAM_AUTH"]))).check
    return options


def _parse_auth(spec: str) -> list[tuple[str, str]]:
    pairs = []
    for item in spec.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError("SPINALSAM_AUTH must look like 'user:password[,user2:password2]'")
        pairs.append((user, password))
    return pairs
