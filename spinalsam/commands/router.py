"""Offline first, LLM only when needed: the one entry point the chat panel calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from spinalsam.commands.llm import LLMConfig, LLMParser
from spinalsam.commands.offline import parse_offline
from spinalsam.commands.result import ParseResult

__all__ = ["Router", "parse_command"]

_NO_LLM_HINT = "Set DEEPSEEK_API_KEY to let DeepSeek-R1 interpret free-form requests."


class Router:
    """Answer confident offline parses instantly; ask the LLM (if configured) otherwise.

    The offline grammar handles the common commands in well under a millisecond, so the LLM's
    seconds of latency are only paid for messages it could not understand.
    """

    def __init__(self, llm: LLMParser | None = None) -> None:
        self.llm = llm

    @classmethod
    def from_env(cls) -> Router:
        config = LLMConfig.from_env()
        return cls(LLMParser(config) if config else None)

    def parse(self, text: str, *, image_size: tuple[int, int] | None = None) -> ParseResult:
        offline = parse_offline(text)
        if offline.confident:
            return offline
        if self.llm is None:
            return _with_hint(offline)
        return self.llm.parse(text, image_size=image_size)

    def stream(
        self, text: str, *, image_size: tuple[int, int] | None = None
    ) -> Iterator[str | ParseResult]:
        """Like `parse`, but yields the LLM's reasoning chunks before the final ParseResult."""
        offline = parse_offline(text)
        if offline.confident:
            yield offline
        elif self.llm is None:
            yield _with_hint(offline)
        else:
            yield from self.llm.stream_parse(text, image_size=image_size)


def parse_command(
    text: str, llm: LLMParser | None = None, *, image_size: tuple[int, int] | None = None
) -> ParseResult:
    """Parse one chat message: offline when confident, else the LLM, else offline with a note."""
    return Router(llm).parse(text, image_size=image_size)


def _with_hint(result: ParseResult) -> ParseResult:
    return replace(result, note=f"{result.note} {_NO_LLM_HINT}".strip())
