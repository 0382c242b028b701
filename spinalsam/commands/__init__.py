"""Chat commands → protocol operations: the offline EN/中文 parser, DeepSeek-R1, and a router.

`parse_command(text, llm)` is what the UI calls: the offline grammar answers at once when it is
confident, otherwise the LLM (when configured) is asked, and any LLM failure falls back to the
offline answer with a visible note.
"""

from spinalsam.commands.help import HELP_TEXT
from spinalsam.commands.llm import LLMConfig, LLMParser
from spinalsam.commands.offline import parse_offline
from spinalsam.commands.result import ParseResult
from spinalsam.commands.router import Router, parse_command

__all__ = [
    "HELP_TEXT",
    "LLMConfig",
    "LLMParser",
    "ParseResult",
    "Router",
    "parse_command",
    "parse_offline",
]
