"""One streamed chat completion under one wall-clock deadline.

Why not the client's timeout: an HTTP read timeout restarts with every byte, and DeepSeek sends
keep-alive lines while it is busy, so a request could be held for minutes. Here the request
runs in a worker thread that passes deltas through a queue; the caller waits on the queue for at
most the time left. When the deadline passes the request is cancelled — the stream is closed
and anything the worker still receives is dropped — so a late answer is either used (it
arrived in time) or never seen, never both.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx

if TYPE_CHECKING:  # the client is imported where it is built (llm.py), not at start-up
    import openai

__all__ = ["Deadline", "Delta", "TransportError", "stream_completion"]

_END = object()
# Fields a streamed delta may carry the model's reasoning in: DeepSeek and vLLM use
# `reasoning_content`, Ollama and OpenRouter `reasoning`.
_REASONING_FIELDS = ("reasoning_content", "reasoning")
_MODEL_MISSING = ("model not exist", "model_not_found", "does not exist", "not found", "no such")


class TransportError(Exception):
    """Why no answer came; `kind` lets the caller react (retry without JSON mode, say which
    variable to fix). The message is fixed text, never the provider's, which may echo data."""

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


class Deadline:
    """A point in monotonic time that every step of one user request shares."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())


@dataclass(frozen=True)
class Delta:
    kind: Literal["reasoning", "content"]
    text: str


def stream_completion(
    client: openai.OpenAI, request: dict[str, Any], deadline: Deadline, *, max_chars: int
) -> Iterator[Delta]:
    """Yield reasoning and content deltas until the answer ends; raise TransportError on any
    failure, on the deadline, or when the answer grows past `max_chars`."""
    inbox: queue.Queue[Any] = queue.Queue()
    cancel = threading.Event()
    holder: list[Any] = []  # the open stream, so the caller can close it on cancel
    worker = threading.Thread(
        target=_pump, args=(client, request, deadline, inbox, cancel, holder), daemon=True
    )
    worker.start()
    received = 0
    try:
        while True:
            try:
                item = inbox.get(timeout=deadline.remaining())
            except queue.Empty:
                raise TransportError(
                    f"no answer within {deadline.seconds:g} s", "timeout"
                ) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise describe(item, request.get("model", "")) from None
            received += len(item.text)
            if received > max_chars:
                raise TransportError(f"the answer was longer than {max_chars} characters")
            yield item
    finally:
        cancel.set()
        if holder:  # closing may block on the socket: never in the caller's thread
            threading.Thread(target=_close_quietly, args=(holder[0],), daemon=True).start()


def _pump(
    client: openai.OpenAI,
    request: dict[str, Any],
    deadline: Deadline,
    inbox: queue.Queue[Any],
    cancel: threading.Event,
    holder: list[Any],
) -> None:
    """Worker: run the request, forward deltas until done or cancelled."""
    try:
        # Each read may wait at most the whole budget; the deadline above is the real bound.
        timeout = httpx.Timeout(max(deadline.remaining(), 0.01))
        stream = client.chat.completions.create(**request, stream=True, timeout=timeout)
        holder.append(stream)
        for chunk in stream:
            if cancel.is_set():
                return
            for delta in _deltas(chunk):
                inbox.put(delta)
        inbox.put(_END)
    except BaseException as exc:  # handed to the caller, who decides what the user sees
        if not cancel.is_set():
            inbox.put(exc)


def _deltas(chunk: Any) -> Iterator[Delta]:
    if not getattr(chunk, "choices", None):
        return
    delta = chunk.choices[0].delta
    extra = delta.model_extra or {}
    for name in _REASONING_FIELDS:
        text = extra.get(name)
        if isinstance(text, str) and text:
            yield Delta("reasoning", text)
    if isinstance(delta.content, str) and delta.content:
        yield Delta("content", delta.content)


def _close_quietly(stream: Any) -> None:
    # The worker may be mid-read; the socket is going away either way.
    with contextlib.suppress(Exception):
        stream.close()


def describe(exc: BaseException, model: str) -> TransportError:
    """A fixed, secret-free description per failure kind."""
    if isinstance(exc, TransportError):
        return exc
    import openai  # already loaded: a client exists whenever a request failed

    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return TransportError("the server did not answer in time", "timeout")
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return TransportError("could not connect to the DeepSeek server", "connect")
    if isinstance(exc, openai.AuthenticationError):
        return TransportError("the API key was rejected (HTTP 401)", "auth")
    if isinstance(exc, openai.APIStatusError):
        return _describe_status(exc, model)
    if isinstance(exc, UnicodeDecodeError):
        return TransportError("the server sent text that is not valid UTF-8", "stream")
    if isinstance(exc, json.JSONDecodeError | ValueError):
        return TransportError("the server sent stream data that is not JSON", "stream")
    return TransportError("the request failed")


def _describe_status(exc: openai.APIStatusError, model: str) -> TransportError:
    message = _provider_message(exc).lower()
    if (
        exc.status_code in (400, 404)
        and "model" in message
        and any(marker in message for marker in _MODEL_MISSING)
    ):
        shown = model if len(model) <= 60 else model[:59] + "…"
        return TransportError(
            f"the server has no model “{shown}”: set DEEPSEEK_MODEL to one it serves "
            "(DeepSeek: deepseek-v4-flash or deepseek-v4-pro; Ollama: e.g. deepseek-r1:7b)",
            "model",
        )
    if exc.status_code == 400 and ("response_format" in message or "json" in message):
        return TransportError("the server does not support JSON mode (HTTP 400)", "json_mode")
    return TransportError(f"the server answered HTTP {exc.status_code}", f"http_{exc.status_code}")


def _provider_message(exc: openai.APIStatusError) -> str:
    """The provider's error text, for classification only (never shown to the user)."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message", ""))[:500]
        return str(inner)[:500]
    return str(exc.message)[:500]
