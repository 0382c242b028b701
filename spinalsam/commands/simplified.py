"""Traditional Chinese typed in the chat, read in the simplified script the lexicon is written in.

Users in Taiwan and Hong Kong type 打開影像, 撤銷, 腦窗; the lexicon, the gate's question and
injection patterns and the vertebra names are all written once, in simplified characters. One
conversion at the door lets every rule read both scripts, instead of each word being listed
twice. OpenCC's character table does it: traditional → simplified is (nearly) one-to-one, so
text that is already simplified, ASCII or digits passes through unchanged.
"""

from __future__ import annotations

from functools import lru_cache

import opencc

__all__ = ["to_simplified"]

# Characters only, no regional vocabulary: the words stay the ones the user typed.
_CONFIG = "t2s.json"


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC(_CONFIG)


def to_simplified(text: str) -> str:
    """`text` with traditional Chinese characters written in their simplified form."""
    if text.isascii():
        return text  # nothing to convert: keep the common case free
    return _converter().convert(text)
