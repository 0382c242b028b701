"""DeepSeek-R1 as a command parser, through the `openai` client, with the offline parser as net.

The model can only ever produce protocol operations: its answer is extracted, unknown ops are
dropped, and the rest is validated by `spinalsam.ops`. One repair round (the validation error
sent back) is allowed. Any failure — no answer in time, HTTP errors, malformed or invalid output
— returns the offline parser's answer with a note saying why, never a silent wrong action. The
API key comes from the environment only and is kept out of reprs, notes and logs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx
import openai

from spinalsam.commands.extract import (
    AnswerError,
    extract_operations,
    split_known,
    strip_thinking,
)
from spinalsam.commands.offline import parse_offline
from spinalsam.commands.prompt import SYSTEM_PROMPT, repair_message, user_message
from spinalsam.commands.result import ParseResult
from spinalsam.ops import Operation, OperationError, check_bounds, parse_operations

__all__ = ["LLMConfig", "LLMConfigError", "LLMParser"]

JsonMode = Literal["auto", "on", "off"]
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_JSON_MODES: dict[str, JsonMode] = {"auto": "auto", "on": "on", "off": "off"}


class LLMConfigError(ValueError):
    """A DEEPSEEK_* environment variable holds a value that cannot be used."""


class _LLMFailure(Exception):
    """Why the LLM answer could not be used; the message is user-facing and secret-free."""


@dataclass(frozen=True)
class LLMConfig:
    """Connection settings; `api_key` is excluded from repr so it never reaches a log."""

    api_key: str = field(repr=False)
    base_url: str = "https://api.deepseek.com"
    model: str = "deepseek-reasoner"
    timeout: float = 20.0
    json_mode: JsonMode = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMConfig | None:
        """Settings from DEEPSEEK_* variables; None when no key is set (offline only)."""
        env = os.environ if env is None else env
        key = env.get("DEEPSEEK_API_KEY", "").strip()
        if not key:
            return None
        try:
            timeout = float(env.get("DEEPSEEK_TIMEOUT", cls.timeout))
        except ValueError:
            raise LLMConfigError("DEEPSEEK_TIMEOUT must be a number of seconds") from None
        if timeout <= 0:
            raise LLMConfigError("DEEPSEEK_TIMEOUT must be positive")
        mode = _JSON_MODES.get(env.get("DEEPSEEK_JSON_MODE", "auto").strip().lower())
        if mode is None:
            raise LLMConfigError(f"DEEPSEEK_JSON_MODE must be one of {', '.join(_JSON_MODES)}")
        return cls(
            api_key=key,
            base_url=env.get("DEEPSEEK_BASE_URL", "").strip() or cls.base_url,
            model=env.get("DEEPSEEK_MODEL", "").strip() or cls.model,
            timeout=timeout,
            json_mode=mode,
        )


class LLMParser:
    """Parse chat messages with an OpenAI-compatible reasoning model (DeepSeek-R1)."""

    name = "deepseek"

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._client = openai.OpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=0,  # one attempt; our own fallback is the retry policy
        )
        self._json_rejected = False  # what this endpoint told us, not per-user state

    def __repr__(self) -> str:
        return f"LLMParser({self.config!r})"

    def parse(self, text: str, *, image_size: tuple[int, int] | None = None) -> ParseResult:
        """Operations for `text`, or the offline answer with a note when the LLM fails."""
        messages = self._messages(text, image_size)
        try:
            content = self._complete(messages)
            return self._validated(content, messages, image_size)
        except _LLMFailure as exc:
            return self._fallback(text, str(exc))

    def stream_parse(
        self, text: str, *, image_size: tuple[int, int] | None = None
    ) -> Iterator[str | ParseResult]:
        """Yield the model's reasoning as it arrives (for the chat panel), then the result.

        The final item is always a ParseResult — the validated operations, or the offline
        fallback with a note — so a consumer can simply keep the last item.
        """
        messages = self._messages(text, image_size)
        try:
            content = yield from self._stream(messages)
            yield self._validated(content, messages, image_size)
        except _LLMFailure as exc:
            yield self._fallback(text, str(exc))

    # -- one request --------------------------------------------------------------------------

    def _messages(self, text: str, image_size: tuple[int, int] | None) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_message(text, image_size)},
        ]

    def _create(self, messages: list[dict[str, str]], *, stream: bool) -> Any:
        """One chat completion. JSON mode: "on" always, "off" never, "auto" until a 400.

        Older R1 endpoints reject `response_format` with HTTP 400; in auto mode the request is
        repeated once without it and later requests skip it (the prompt alone asks for JSON).
        """
        mode = self.config.json_mode
        use_json = mode == "on" or (mode == "auto" and not self._json_rejected)
        try:
            try:
                return self._client.chat.completions.create(
                    **self._request(messages, stream=stream, json_mode=use_json)
                )
            except openai.BadRequestError:
                if not use_json or mode == "on":
                    raise
                self._json_rejected = True
                return self._client.chat.completions.create(
                    **self._request(messages, stream=stream, json_mode=False)
                )
        except openai.OpenAIError as exc:
            raise _LLMFailure(self._describe(exc)) from None

    def _request(
        self, messages: list[dict[str, str]], *, stream: bool, json_mode: bool
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "stream": stream,
        }
        if json_mode:
            request["response_format"] = {"type": "json_object"}
        return request

    def _complete(self, messages: list[dict[str, str]]) -> str:
        response = self._create(messages, stream=False)
        if not getattr(response, "choices", None):
            raise _LLMFailure("DeepSeek sent a reply without an answer")
        return response.choices[0].message.content or ""

    def _stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Yield reasoning chunks; return the answer text. Enforces the total timeout."""
        deadline = time.monotonic() + self.config.timeout
        stream = self._create(messages, stream=True)
        content = ""
        think_sent = 0  # characters of an in-content <think> block already yielded
        try:
            for chunk in stream:
                if time.monotonic() > deadline:
                    raise _LLMFailure(self._timeout_text())
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                reasoning = (delta.model_extra or {}).get("reasoning_content")
                if reasoning:
                    yield reasoning
                if delta.content:
                    content += delta.content
                    thinking = _think_so_far(content)
                    if len(thinking) > think_sent:
                        yield thinking[think_sent:]
                        think_sent = len(thinking)
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise _LLMFailure(self._describe(exc)) from None
        finally:
            stream.close()
        return content

    # -- validation and repair ----------------------------------------------------------------

    def _validated(
        self, content: str, messages: list[dict[str, str]], image_size: tuple[int, int] | None
    ) -> ParseResult:
        """Validate the answer; on a problem send it back once and validate the correction."""
        try:
            operations, dropped = self._check(content, image_size)
        except (AnswerError, OperationError) as first:
            repair = [
                *messages,
                {"role": "assistant", "content": strip_thinking(content)},
                {"role": "user", "content": repair_message(str(first))},
            ]
            try:
                operations, dropped = self._check(self._complete(repair), image_size)
            except (AnswerError, OperationError) as second:
                raise _LLMFailure(
                    f"DeepSeek's answer was not valid even after one correction ({second})"
                ) from None
        note = f"Ignored unknown operation(s): {', '.join(dropped)}." if dropped else ""
        return ParseResult(operations, True, parser=self.name, note=self._redact(note))

    def _check(
        self, content: str, image_size: tuple[int, int] | None
    ) -> tuple[list[Operation], list[str]]:
        items, dropped = split_known(extract_operations(content))
        operations = parse_operations(items)
        if image_size is not None:
            check_bounds(operations, *image_size)
        return operations, dropped

    # -- failures -------------------------------------------------------------------------

    def _fallback(self, text: str, reason: str) -> ParseResult:
        offline = parse_offline(text)
        note = f"DeepSeek not used: {reason}. Used the offline parser instead."
        if offline.note:
            note = f"{note} {offline.note}"
        return replace(offline, note=self._redact(note))

    def _timeout_text(self) -> str:
        return f"no answer within {self.config.timeout:g} s"

    def _describe(self, exc: BaseException) -> str:
        """A fixed description per failure kind: provider messages may echo request data."""
        if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
            return self._timeout_text()
        if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            return "could not connect to the DeepSeek server"
        if isinstance(exc, openai.AuthenticationError):
            return "the API key was rejected (HTTP 401)"
        if isinstance(exc, openai.APIStatusError):
            return f"the server answered HTTP {exc.status_code}"
        return "the request failed"

    def _redact(self, note: str) -> str:
        return note.replace(self.config.api_key, "***") if self.config.api_key else note


def _think_so_far(content: str) -> str:
    """Reasoning in a leading <think> block (open-weight R1 streams it inside `content`).

    While the block is open, the last few characters are held back so a closing tag split
    across chunks ("</thi" + "nk>") is never shown as reasoning.
    """
    head = content.lstrip()
    if not head.startswith(_THINK_OPEN):
        return ""
    body = head[len(_THINK_OPEN) :]
    end = body.find(_THINK_CLOSE)
    return body[:end] if end != -1 else body[: max(0, len(body) - len(_THINK_CLOSE))]
