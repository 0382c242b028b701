"""Traditional Chinese typed in the chat, read in the simplified script the lexicon is written in.

Users in Taiwan and Hong Kong type 打開影像, 撤銷, 腦窗, 匯出; the lexicon, the gate's question
and injection patterns and the vertebra names are all written once, in simplified characters and
mainland words. One conversion at the door lets every rule read both, instead of each word being
listed twice. OpenCC does it: a message written in traditional characters also gets the mainland
word for a Taiwan one (匯出 → 导出 "export", 檔案 → 文件 "file", 顯示卡 → 显卡 "graphics card");
a message already in simplified characters is left as typed, because there the same phrase
table would rewrite mainland words (文件 → 文档).
"""

from __future__ import annotations

from functools import lru_cache

import opencc

__all__ = ["to_simplified"]

_CHARACTERS = "t2s.json"  # traditional → simplified characters only
_TAIWAN_TO_MAINLAND = "tw2sp.json"  # characters, then Taiwan words → mainland words


@lru_cache(maxsize=2)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """`text` in simplified characters; in mainland words when it was typed in traditional."""
    if text.isascii():
        return text  # nothing to convert: keep the common case free
    if _converter(_CHARACTERS).convert(text) == text:
        return text  # already simplified: its words are the user's own
    return _converter(_TAIWAN_TO_MAINLAND).convert(text)
