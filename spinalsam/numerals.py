"""Number words in English and Chinese, so "three", "3" and "三" mean the same count.

Kept apart from the grammar because the tokenizer (to recognise a number), the vertebra names
(腰一) and the tests (to check each notation) need exactly these tables and nothing else; it sits
below `commands` so that `vertebrae` and `labels` need not import the chat package.
"""

from __future__ import annotations

__all__ = [
    "CHINESE_NUMERAL_CHARS",
    "ENGLISH_NUMBERS",
    "ENGLISH_REPEATS",
    "ENGLISH_TENS",
    "HUNDRED",
    "combine_english",
    "parse_chinese_numeral",
]

ENGLISH_NUMBERS: dict[str, int] = {
    "zero": 0,
    "a": 1,
    "an": 1,
    "one": 1,
    "single": 1,
    "another": 1,
    "two": 2,
    "both": 2,
    "pair": 2,
    "couple": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "dozen": 12,
}

# Tens that may be followed by a unit word: "twenty one" → 21.
ENGLISH_TENS = frozenset(
    {"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
)
HUNDRED = "hundred"
# Adverbs of repetition: "undo twice".
ENGLISH_REPEATS: dict[str, int] = {"once": 1, "twice": 2, "thrice": 3}


def combine_english(prev: tuple[str, int], word: str, value: int) -> int | None:
    """The value of two adjacent English number words read as one number, or None.

    "two hundred" → 200, "one hundred (and) five" → 105, "seventy five" → 75. Kept as a pure
    rule on (text, value) pairs so the tokenizer only decides *whether* two tokens are adjacent.
    """
    prev_text, prev_value = prev
    if word == HUNDRED and 1 <= prev_value <= 9 and HUNDRED not in prev_text:
        return prev_value * 100
    if HUNDRED in prev_text and prev_value % 100 == 0 and 0 < value < 100 and word != HUNDRED:
        return prev_value + value
    last = prev_text.split()[-1]
    if last in ENGLISH_TENS and 0 < value < 10:
        return prev_value + value
    return None


_CHINESE_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "俩": 2,  # colloquial "two (of them)"
    "仨": 3,  # colloquial "three (of them)"
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CHINESE_UNITS = {"十": 10, "百": 100}

CHINESE_NUMERAL_CHARS = frozenset(_CHINESE_DIGITS) | frozenset(_CHINESE_UNITS)


def parse_chinese_numeral(text: str) -> int | None:
    """Value of a Chinese numeral such as 三, 两, 十, 十五, 二十, 四十二, 一百零五.

    Returns None for anything that is not a well-formed numeral, so a stray character never
    silently turns into a count.
    """
    if not text or any(ch not in CHINESE_NUMERAL_CHARS for ch in text):
        return None
    total = 0
    digit: int | None = None
    for ch in text:
        if ch in _CHINESE_DIGITS:
            if digit is not None and _CHINESE_DIGITS[ch] != 0:
                return None  # two digits in a row ("三四") is a range, not a number
            digit = _CHINESE_DIGITS[ch] if _CHINESE_DIGITS[ch] != 0 else None
        else:
            unit = _CHINESE_UNITS[ch]
            total += (1 if digit is None else digit) * unit
            digit = None
    return total + (digit or 0)
