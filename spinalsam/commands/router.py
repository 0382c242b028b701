"""Offline first, LLM only when needed: the one entry point the chat panel calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from spinalsam.commands.confirm import needs_confirmation
from spinalsam.commands.llm import LLMParser
from spinalsam.commands.offline import parse_offline
from spinalsam.commands.result import ParseResult
from spinalsam.limits import DEFAULT_BUDGET

__all__ = ["Router", "parse_command"]

_NO_LLM_HINT = (
    "Set DEEPSEEK_API_KEY (or DEEPSEEK_BASE_URL to a local server) to let an LLM interpret "
    "free-form requests."
)


class Router:
    """Answer confident offline parses instantly; ask the LLM (if configured) otherwise.

    The offline grammar handles the common commands in about a millisecond, so the LLM's
    seconds of latency are only paid for messages it could not understand. Every result says
    whether it must be confirmed before it runs (`ParseResult.confirm`).
    """

    def __init__(self, llm: LLMParser | None = None, *, max_chars: int | None = None) -> None:
        self.llm = llm
        self.max_chars = max_chars or DEFAULT_BUDGET.max_chat_chars

    def parse(
        self,
        text: str,
        *,
        image_size: tuple[int, int] | None = None,
        masks_elsewhere: bool = False,
    ) -> ParseResult:
        *_, result = self.stream(text, image_size=image_size, masks_elsewhere=masks_elsewhere)
        assert isinstance(result, ParseResult)
        return result

    def stream(
        self,
        text: str,
        *,
        image_size: tuple[int, int] | None = None,
        masks_elsewhere: bool = False,
    ) -> Iterator[str | ParseResult]:
        """Like `parse`, but yields the LLM's reasoning chunks before the final ParseResult."""
        if len(text) > self.max_chars:
            note = (
                f"That message is {len(text)} characters long; commands are at most "
                f"{self.max_chars}. Nothing was changed."
            )
            yield ParseResult([], True, note=note)
            return
        offline = parse_offline(text)
        result: ParseResult | None = None
        if offline.confident:
            result = offline
        elif self.llm is None:
            result = _with_hint(offline)
        else:
            for item in self.llm.stream_parse(text, image_size=image_size):
                if isinstance(item, ParseResult):
                    result = item
                else:
                    yield item
        assert result is not None
        yield replace(result, confirm=needs_confirmation(result, masks_elsewhere=masks_elsewhere))


def parse_command(
    text: str, llm: LLMParser | None = None, *, image_size: tuple[int, int] | None = None
) -> ParseResult:
    """Parse one chat message: offline when confident, else the LLM, else offline with a note."""
    return Router(llm).parse(text, image_size=image_size)


def _with_hint(result: ParseResult) -> ParseResult:
    if not result.note:
        return result
    return replace(result, note=f"{result.note} {_NO_LLM_HINT}".strip())
