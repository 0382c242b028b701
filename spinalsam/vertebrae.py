"""Vertebra level names (L1, T12, 腰1, 第一腰椎) as users type them, in one canonical form.

Both the chat parser and the label set read names, so the rules live in this low layer (it
imports only the numerals) where `labels`, `dicomseg`, the UI and `commands` can all reach them.
"""

from __future__ import annotations

import re

from spinalsam.numerals import parse_chinese_numeral

__all__ = ["VERTEBRA_NAMES", "parse_vertebra_name"]

VERTEBRA_NAMES: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    "S1",
)

_REGION_ALIASES: dict[str, str] = {
    "c": "C",
    "t": "T",
    "th": "T",
    "l": "L",
    "s": "S",
    "颈": "C",
    "胸": "T",
    "腰": "L",
    "骶": "S",
}
_REGION_COUNTS = {"C": 7, "T": 12, "L": 5, "S": 1}
# 节 counts vertebrae as segments: "第三节腰椎", "胸椎第十二节" are L3 and T12.
_NAME_RE = re.compile(
    r"^\s*(?:第\s*)?(?P<num1>\d+|[一二两三四五六七八九十]+)?\s*(?:节\s*)?"
    r"(?P<region>th|[ctls]|[颈胸腰骶])(?:椎|椎体|vertebra)?\s*[-_ ]?\s*(?:第\s*)?"
    r"(?P<num2>\d+|[一二两三四五六七八九十]+)?\s*(?:椎|椎体|vertebra|号|节)?\s*$",
    re.IGNORECASE,
)


def _parse_number(text: str) -> int | None:
    """Digits or Chinese numerals (一 … 十九 is enough for vertebra levels)."""
    return int(text) if text.isdigit() else parse_chinese_numeral(text)


def parse_vertebra_name(text: str) -> str | None:
    """Canonical vertebra name ("L1", "T12") for what a user typed, or None if it is not one.

    Accepts "L1", "l 2", "L-3", "Th12", "腰1", "腰椎1", "胸12", "第一腰椎", "胸椎第十二节"; returns
    None for free text and for levels that do not exist (e.g. "L9"), so callers can keep it as
    free text.
    """
    match = _NAME_RE.match(text)
    if match is None:
        return None
    number_text = match["num2"] or match["num1"]
    if number_text is None or (match["num1"] and match["num2"]):
        return None
    region = _REGION_ALIASES[match["region"].lower()]
    number = _parse_number(number_text)
    if number is None or not 1 <= number <= _REGION_COUNTS[region]:
        return None
    return f"{region}{number}"
