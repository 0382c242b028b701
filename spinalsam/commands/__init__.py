"""Chat commands → protocol operations: the offline EN/中文 parser, DeepSeek-R1, and a router.

`Router.stream` is what the UI calls: the offline grammar answers at once when it is confident,
otherwise the LLM (when configured) is asked, and any LLM failure falls back to the offline
answer with a visible note. Unsure and destructive results carry a confirmation question.
"""

from spinalsam.commands.confirm import describe_operations, needs_confirmation
from spinalsam.commands.llm import LLMConfig, LLMParser
from spinalsam.commands.offline import parse_offline
from spinalsam.commands.result import ParseResult
from spinalsam.commands.router import Router, parse_command
from spinalsam.help_text import HELP_TEXT

__all__ = [
    "HELP_TEXT",
    "LLMConfig",
    "LLMParser",
    "ParseResult",
    "Router",
    "describe_operations",
    "needs_confirmation",
    "parse_command",
    "parse_offline",
]
