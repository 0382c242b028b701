"""Number words in English and Chinese, so "three", "3" and "三" mean the same count.

Kept apart from the grammar because the tokenizer (to recognise a number), the vertebra names
(腰一) and the tests (to check each notation) need exactly these tables and nothing else; it sits
below `commands` so that `vertebrae` and `labels` need not import the chat package.
"""

from __future__ import annotations

__all__ = [
    "CARDINAL_PATTERN",
    "CHINESE_NUMERAL_CHARS",
    "ENGLISH_CARDINALS",
    "ENGLISH_NUMBERS",
    "ENGLISH_REPEATS",
    "ENGLISH_TENS",
    "HUNDRED",
    "combine_english",
    "parse_chinese_numeral",
    "parse_english_number",
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
    "thousand": 1000,
    "dozen": 12,
}
# Words that name a number and nothing else: the rest of ENGLISH_NUMBERS counts things ("a",
# "both", "a pair"), which only makes sense before a noun.
ENGLISH_CARDINALS: dict[str, int] = {
    word: value
    for word, value in ENGLISH_NUMBERS.items()
    if word not in {"a", "an", "single", "another", "both", "pair", "couple", "dozen"}
}
# One of them in a regular expression (longest first, so "seventeen" is not "seven" + "teen").
CARDINAL_PATTERN = "|".join(sorted(ENGLISH_CARDINALS, key=len, reverse=True))

# Tens that may be followed by a unit word: "twenty one" → 21.
ENGLISH_TENS = frozenset(
    {"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
)
HUNDRED = "hundred"
THOUSAND = "thousand"
# Adverbs of repetition: "undo twice".
ENGLISH_REPEATS: dict[str, int] = {"once": 1, "twice": 2, "thrice": 3}


def combine_english(prev: tuple[str, int], word: str, value: int) -> int | None:
    """The value of two adjacent English number words read as one number, or None.

    "two hundred" → 200, "one hundred (and) five" → 105, "seventy five" → 75, "fifteen hundred"
    → 1500, "two thousand" → 2000 and "two thousand five hundred" → 2500 (window widths are
    said so). Kept as a pure rule on (text, value) pairs so the tokenizer only decides
    *whether* two tokens are adjacent.
    """
    prev_text, prev_value = prev
    scaled = HUNDRED in prev_text or THOUSAND in prev_text
    if word == HUNDRED and 1 <= prev_value <= 99 and not scaled:
        return prev_value * 100
    if word == THOUSAND and 1 <= prev_value <= 9 and not scaled:
        return prev_value * 1000
    units = prev_value % 1000  # "two thousand five" + "hundred": 2500, as widths are said
    if word == HUNDRED and THOUSAND in prev_text and HUNDRED not in prev_text and 1 <= units <= 9:
        return prev_value + units * 99
    if scaled and prev_value % 100 == 0 and 0 < value < 100 and word not in (HUNDRED, THOUSAND):
        return prev_value + value
    last = prev_text.split()[-1]
    if last in ENGLISH_TENS and 0 < value < 10:
        return prev_value + value
    return None


def parse_english_number(text: str) -> int | None:
    """Value of a run of number words ("forty", "twenty-one", "four hundred and ten", "fifteen
    hundred"), read word by word with `combine_english`, or None if they are not one number."""
    words = [w for w in text.replace("-", " ").split() if w != "and"]
    if not words or any(w not in ENGLISH_CARDINALS for w in words):
        return None
    value = ENGLISH_CARDINALS[words[0]]
    for i, word in enumerate(words[1:], start=1):
        combined = combine_english((" ".join(words[:i]), value), word, ENGLISH_CARDINALS[word])
        if combined is None:
            return None
        value = combined
    return value


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
_CHINESE_UNITS = {"十": 10, "百": 100, "千": 1000}

CHINESE_NUMERAL_CHARS = frozenset(_CHINESE_DIGITS) | frozenset(_CHINESE_UNITS)


def parse_chinese_numeral(text: str) -> int | None:
    """Value of a Chinese numeral such as 三, 两, 十, 十五, 二十, 四十二, 一百零五, 一千五百.

    A digit straight after 百 or 千 counts the next smaller unit, as people say window widths:
    三百五 is 350 and 一千五 is 1500 (一百零五 with 零 is 105). Returns None for anything that
    is not a well-formed numeral, so a stray character never silently turns into a count.
    """
    if not text or any(ch not in CHINESE_NUMERAL_CHARS for ch in text):
        return None
    total = 0
    digit: int | None = None
    last_unit = 10**4
    for ch in text:
        if ch in _CHINESE_DIGITS:
            if digit is not None and _CHINESE_DIGITS[ch] != 0:
                return None  # two digits in a row ("三四") is a range, not a number
            digit = _CHINESE_DIGITS[ch] if _CHINESE_DIGITS[ch] != 0 else None
        else:
            unit = _CHINESE_UNITS[ch]
            if unit >= last_unit:
                return None  # units only go down ("十百", "五百一千")
            total += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
    if digit and len(text) > 1 and _CHINESE_UNITS.get(text[-2], 0) >= 100:
        return total + digit * _CHINESE_UNITS[text[-2]] // 10
    return total + (digit or 0)
