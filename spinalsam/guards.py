"""Process-level guards of the public service: a per-session job limit, a login back-off and a
request size limit.

Why: Gradio's queue is first-in first-out across all users, so one session queueing 100 jobs
made another user wait 13 s instead of 0.4 s; and password login had no limit (300 wrong
passwords at 40/s, then the right one was accepted). Both guards hold process-wide state by
necessity (they protect users from each other); it lives in one object each, behind a lock.
And Gradio parses and validates a request's whole JSON body before any handler or validator
can look at it, so the size of bodies is bounded before they reach Gradio (`RequestSizeLimit`).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import shutil
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

__all__ = [
    "DiskReserve",
    "LoginGuard",
    "RequestSizeLimit",
    "SessionJobLimit",
    "limit_jobs_per_session",
]


@dataclass
class SessionJobLimit:
    """Admits a job only while its session has fewer than `max_jobs` waiting or running.

    `pending(session_hash)` is the queue's own count. A job admitted in the last `window_s`
    seconds may not be counted there yet (the queue adds it after the check), so those are
    added: a burst of simultaneous requests cannot slip past the limit.
    """

    max_jobs: int
    pending: Callable[[str], int]
    # The check-to-enqueue gap is milliseconds; a longer window would count a user's quick,
    # already answered clicks as waiting and refuse the next one.
    window_s: float = 0.05
    _recent: dict[str, deque[float]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def admit(self, session_hash: str) -> str:
        """'' when admitted, else the message to show."""
        now = time.monotonic()
        with self._lock:
            recent = self._recent.setdefault(session_hash, deque())
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            waiting = self.pending(session_hash) + len(recent)
            if waiting >= self.max_jobs:
                if not recent:
                    del self._recent[session_hash]
                return (
                    f"You already have {waiting} requests waiting; please wait for them to "
                    "finish (the server is shared with other users)."
                )
            recent.append(now)
            return ""


def limit_jobs_per_session(demo: gr.Blocks, max_jobs: int) -> SessionJobLimit:
    """Check every queued event of `demo` against one `SessionJobLimit` before it is queued.

    Uses Gradio's event validators, which run when a request arrives (before it joins the
    queue); a refused request gets the message and nothing of the session changes.
    """

    def pending(session_hash: str) -> int:
        queue = demo._queue  # Gradio's queue keeps the waiting/running event ids per session
        return len(queue.pending_event_ids_session.get(session_hash, ()))

    limit = SessionJobLimit(max_jobs, pending)
    for fn in demo.fns.values():
        # A validator gets preprocessed inputs, and preprocessing an upload of a refused file
        # type fails before the validator runs, turning Gradio's clear "Invalid file type" into
        # a bare HTTP 400: uploads are left to the queue's overall bound and the upload budget.
        uploads = any(isinstance(block, gr.File) for block in fn.inputs)
        if fn.queue and fn.inputs and fn.validator is None and not uploads:
            fn.validator = _validator(limit, len(fn.inputs))
    return limit


def _validator(limit: SessionJobLimit, n_inputs: int) -> Callable[..., Any]:
    """A validator taking the event's `n_inputs` inputs plus the request (Gradio injects it)."""

    def validate(*args: Any) -> Any:
        request = args[-1]
        message = limit.admit(getattr(request, "session_hash", None) or "")
        verdict = gr.validate(not message, message)
        return [verdict] * n_inputs if n_inputs > 1 else verdict

    # Gradio passes inputs positionally and finds the request parameter by its annotation.
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(f"input_{i}", kind) for i in range(n_inputs)]
    params.append(inspect.Parameter("request", kind, annotation=gr.Request))
    validate.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    validate.__annotations__ = {"request": gr.Request}
    return validate


@dataclass
class LoginGuard:
    """Password check with per-user back-off and lockout, for `demo.launch(auth=guard.check)`.

    Every failure costs the caller `delay_s` (an async sleep: the server keeps serving others);
    after `max_failures` failures in a row a user name is locked for a time that doubles with
    each further failure (up to `max_lockout_s`), during which even the right password fails.
    Gradio's auth callback receives only the user name and password, not the client address,
    so the back-off is per user name; unknown names are tracked too, in a bounded table.
    """

    users: dict[str, str]
    max_failures: int = 5
    delay_s: float = 1.0
    base_lockout_s: float = 30.0
    max_lockout_s: float = 900.0
    max_tracked: int = 10_000
    _failures: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    async def check(self, username: str, password: str) -> bool:
        """Gradio awaits this (it is a coroutine function) for every login attempt."""
        verdict = self.attempt(username, password, time.monotonic())
        if not verdict:
            await asyncio.sleep(self.delay_s)
        return verdict

    def attempt(self, username: str, password: str, now: float) -> bool:
        """The decision without the delay: True only for the right password of an unlocked user."""
        key = username[:200]
        with self._lock:
            count, locked_until = self._failures.get(key, (0, 0.0))
            if now < locked_until:
                return False
            expected = self.users.get(username)
            ok = expected is not None and hmac.compare_digest(password.encode(), expected.encode())
            if ok:
                self._failures.pop(key, None)
                return True
            count += 1
            lockout = 0.0
            if count >= self.max_failures:
                doublings = min(count - self.max_failures, 20)
                lockout = min(self.base_lockout_s * 2**doublings, self.max_lockout_s)
            self._failures[key] = (count, now + lockout)
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_tracked:
                self._failures.popitem(last=False)
            return False


class RequestSizeLimit:
    """ASGI middleware: a request body over `max_bytes` is answered with HTTP 413 unread.

    File uploads (Gradio's `/upload` route) are left to Gradio's own `max_file_size`. Other
    bodies are read here up to the limit and handed on whole, so no body larger than the limit
    is ever held, whether it announces its length or not.
    """

    def __init__(self, app: Callable[..., Any], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable[..., Any], send: Callable) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/").endswith("/upload"):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        whole = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replay() -> dict:
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Callable) -> None:
        error = (
            f"This request is larger than {self.max_bytes >> 20} MB, the most the server "
            "accepts; nothing was changed."
        )
        await _answer(send, 413, error)


class DiskReserve:
    """ASGI middleware: an upload that would leave less than `min_free_bytes` free in `folder`
    (Gradio's upload cache) is answered with HTTP 507 unread.

    Uploads stay on disk for a session's lifetime and Gradio has no quota per user, so a client
    sending 1 GiB files could fill the disk every session's exports and bundles are written to.
    """

    def __init__(self, app: Callable[..., Any], folder: Callable[[], str], min_free_bytes: int):
        self.app = app
        self.folder = folder  # looked up per request: Gradio reads its folder from the environment
        self.min_free_bytes = min_free_bytes

    async def __call__(self, scope: dict, receive: Callable[..., Any], send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/upload"):
            length = dict(scope["headers"]).get(b"content-length", b"0")
            incoming = int(length) if length.isdigit() else 0
            if _free_bytes(self.folder()) - incoming < self.min_free_bytes:
                error = (
                    "The server is short of disk space for uploads right now; please try again "
                    "later. Your current work is unchanged."
                )
                await _answer(send, 507, error)
                return
        await self.app(scope, receive, send)


def _free_bytes(folder: str) -> int:
    """Free bytes on the disk of `folder`, or of its nearest existing parent (Gradio makes the
    folder on the first upload)."""
    path = Path(folder)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    return shutil.disk_usage(existing).free


async def _answer(send: Callable, status: int, error: str) -> None:
    """A JSON error answer, as Gradio's own routes give them."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})
