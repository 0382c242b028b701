"""An OpenAI-compatible LLM (DeepSeek V4, or R1 on your own Ollama/vLLM/llama.cpp server) as
a command parser, with the offline parser as the net.

The model can only ever produce protocol operations: its answer must be one complete JSON
document, unknown ops are dropped, and the rest is validated by `spinalsam.ops`. One repair
round (the validation error sent back) is allowed. Everything — waiting for the first byte,
keep-alive lines, the JSON-mode retry and the repair — shares one wall-clock deadline. Any
failure returns the offline parser's answer with a note saying why, never a silent wrong action.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import replace
from typing import Any

from spinalsam.commands.extract import (
    AnswerError,
    extract_operations,
    split_known,
    strip_thinking,
)
from spinalsam.commands.llm_config import LLMConfig, LLMConfigError
from spinalsam.commands.offline import parse_offline
from spinalsam.commands.prompt import FEW_SHOT, SYSTEM_PROMPT, repair_message, user_message
from spinalsam.commands.result import ParseResult
from spinalsam.commands.transport import Deadline, TransportError, stream_completion
from spinalsam.limits import DEFAULT_BUDGET
from spinalsam.ops import Operation, OperationError, check_bounds, parse_operations

__all__ = ["LLMConfig", "LLMConfigError", "LLMParser"]

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
Messages = list[dict[str, str]]
# Reasoning chunks for the chat panel, then the answer text.
_Asking = Generator[str, None, str]


class LLMParser:
    """Parse chat messages with an OpenAI-compatible chat model."""

    name = "deepseek"

    def __init__(self, config: LLMConfig) -> None:
        # Imported here, not at start-up (≈ 0.4–1 s): only a configured LLM needs the client.
        import openai

        self.config = config
        self._client = openai.OpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=0,  # one attempt; the deadline and our fallback are the retry policy
        )
        # What this endpoint told us about JSON mode; per parser, so one server's limits never
        # change how another router talks to its server.
        self._json_mode_rejected = False

    def __repr__(self) -> str:
        return f"LLMParser({self.config!r})"

    def parse(self, text: str, *, image_size: tuple[int, int] | None = None) -> ParseResult:
        """Operations for `text`, or the offline answer with a note when the LLM fails."""
        *_, result = self.stream_parse(text, image_size=image_size)
        assert isinstance(result, ParseResult)
        return result

    def stream_parse(
        self, text: str, *, image_size: tuple[int, int] | None = None
    ) -> Iterator[str | ParseResult]:
        """Yield the model's reasoning as it arrives (for the chat panel), then the result.

        The final item is always a ParseResult — the validated operations, or the offline
        fallback with a note — so a consumer can simply keep the last item.
        """
        if len(text) > DEFAULT_BUDGET.max_chat_chars:
            yield self._fallback(
                text, f"the message is over {DEFAULT_BUDGET.max_chat_chars} characters"
            )
            return
        deadline = Deadline(self.config.timeout)
        messages: Messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            *FEW_SHOT,
            {"role": "user", "content": user_message(text, image_size)},
        ]
        try:
            content = yield from self._ask(messages, deadline)
            result = yield from self._validated(content, messages, image_size, deadline)
        except TransportError as exc:
            yield self._fallback(text, str(exc))
            return
        yield result

    # -- one request --------------------------------------------------------------------------

    def _ask(self, messages: Messages, deadline: Deadline) -> _Asking:
        """One completion; in JSON mode "auto", a server that rejects JSON mode is asked again
        without it (and never again with it) — only for that cause, not for any HTTP 400."""
        mode = self.config.json_mode
        use_json = mode == "on" or (mode == "auto" and not self._json_mode_rejected)
        try:
            return (yield from self._stream(messages, deadline, json_mode=use_json))
        except TransportError as exc:
            if exc.kind != "json_mode" or not use_json or mode == "on":
                raise
            self._json_mode_rejected = True
        return (yield from self._stream(messages, deadline, json_mode=False))

    def _stream(self, messages: Messages, deadline: Deadline, *, json_mode: bool) -> _Asking:
        request: dict[str, Any] = {"model": self.config.model, "messages": messages}
        if json_mode:
            request["response_format"] = {"type": "json_object"}
        if body := self.config.thinking_body():
            request["extra_body"] = body
        content = ""
        think_sent = 0  # characters of an in-content <think> block already yielded
        deltas = stream_completion(
            self._client, request, deadline, max_chars=self.config.max_answer_chars
        )
        for delta in deltas:
            if delta.kind == "reasoning":
                yield delta.text
                continue
            content += delta.text
            thinking = _think_so_far(content)
            if len(thinking) > think_sent:
                yield thinking[think_sent:]
                think_sent = len(thinking)
        return content

    # -- validation and repair ----------------------------------------------------------------

    def _validated(
        self,
        content: str,
        messages: Messages,
        image_size: tuple[int, int] | None,
        deadline: Deadline,
    ) -> Generator[str, None, ParseResult]:
        """Validate the answer; on a problem send it back once and validate the correction."""
        try:
            operations, dropped = self._check(content, image_size)
        except (AnswerError, OperationError) as first:
            repair = [
                *messages,
                {"role": "assistant", "content": strip_thinking(content)[:2000]},
                {"role": "user", "content": repair_message(str(first))},
            ]
            corrected = yield from self._ask(repair, deadline)
            try:
                operations, dropped = self._check(corrected, image_size)
            except (AnswerError, OperationError) as second:
                raise TransportError(
                    f"the answer was not valid even after one correction ({second})"
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
