"""Model text shown in the chat panel as inert text.

The model's reasoning is hostile input like any other: rendered as Markdown, an image link in
it makes every viewer's browser fetch a remote URL, and HTML could do worse. Inside a code
fence Markdown and HTML are not interpreted; the fence is made longer than any backtick run in
the text, so the text cannot close it.
"""

from __future__ import annotations

import re

__all__ = ["inert_block"]

_BACKTICKS = re.compile(r"`+")
_MAX_SHOWN = 4000  # the tail of a long reasoning is what the user is waiting on


def inert_block(text: str) -> str:
    """`text` as a fenced block that the Markdown renderer shows verbatim."""
    if len(text) > _MAX_SHOWN:
        text = "…" + text[-_MAX_SHOWN:]
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"
