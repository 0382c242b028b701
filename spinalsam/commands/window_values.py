"""Window level and width typed as numbers: "W1500 L300", "wl 40 ww 400", "窗宽400窗位50".

Both values must be present: a lone "L4" is a vertebra and a lone "w 2" means nothing, so
reading one value without the other would invent a window the user did not ask for. The
values are taken out of the text before tokenizing, so their digits are never read again as a
count, a slice number or a coordinate.
"""

from __future__ import annotations

import re

from spinalsam.numerals import (
    CARDINAL_PATTERN,
    CHINESE_NUMERAL_CHARS,
    parse_chinese_numeral,
    parse_english_number,
)

__all__ = ["MARK", "take_window_values"]

# A private-use character the tokenizer reads as "the window values were here".
MARK = "\ue000"
# A value in digits or words, as it is said: "-600", "four hundred", "fifteen hundred", "minus six
# hundred", 四百, 一千五, 负六百. Whole words only, so "weight" is never "w" + "eight".
_SPOKEN = (
    rf"(?<![a-z])(?:{CARDINAL_PATTERN})(?:[\s-]+(?:and\s+)?(?:{CARDINAL_PATTERN}))*(?![a-z])"
    rf"|[{''.join(sorted(CHINESE_NUMERAL_CHARS))}]+"
)
_SIGN = re.compile(r"^(?:minus\s+|负\s*|[-−]\s?)")
# "W1500", "ww: 400", "width is 400", "窗宽设为400": the value follows a short connector.
_NUM = (
    r"\s*(?:[:=]|is|to|at|of|设为|设置为|设成|调为|调到|改为|为|是)?\s*"
    rf"(?P<value>(?:minus\s+|负\s*|[-−]\s?)?(?:\d+|{_SPOKEN}))"
)
# A bare "window 400" is the width, as radiologists say it ("window 400 level 40"); it only
# counts when a level is given too, like every other width here.
_WIDTH = re.compile(rf"(?<![a-z])(?:window\s*width|window|ww|width|w|窗宽){_NUM}")
_LEVEL = re.compile(
    rf"(?<![a-z])(?:window\s*level|window\s*cent(?:er|re)|wl|wc|level|cent(?:er|re)|l|c|窗位){_NUM}"
)


# "W/L 400/40", "ww/wl: 1500/300", "窗宽窗位400/40": width first; "L/W 40/400": level first.
_PAIR = re.compile(
    r"(?<![a-z])(?:(?P<wl>w\s*[/ ]\s*l|ww\s*[/ ]\s*wl|窗宽\s*/?\s*窗位|window)"
    r"|(?P<lw>l\s*[/ ]\s*w|wl\s*[/ ]\s*ww|窗位\s*/?\s*窗宽))"
    r"\s*(?:[:=]|is|to|设为|为)?\s*(?P<a>[-−]?\d+)\s*/\s*(?P<b>[-−]?\d+)"
)


def take_window_values(text: str) -> tuple[str, tuple[int, int] | None]:
    """(text with both values replaced by MARK, (level, width)), or (text, None) if not both
    (or a value in words is not one number)."""
    pair = _PAIR.search(text)
    if pair is not None:
        a, b = (int(pair[g].replace("−", "-")) for g in ("a", "b"))
        values = (b, a) if pair["wl"] else (a, b)
        return f"{text[: pair.start()]} {MARK} {text[pair.end() :]}", values
    width = _WIDTH.search(text)
    level = _LEVEL.search(text)
    if width is None or level is None or _overlap(width, level):
        return text, None
    values = (_value(level), _value(width))
    if None in values:
        return text, None
    first, second = sorted((width, level), key=lambda m: m.start())
    text = (
        text[: first.start()]
        + f" {MARK} "
        + text[first.end() : second.start()]
        + " "
        + text[second.end() :]
    )
    return text, values


def _value(match: re.Match[str]) -> int | None:
    """The value typed in digits or words, or None for words that are not one number."""
    sign = _SIGN.match(match["value"])
    magnitude = match["value"][sign.end() if sign else 0 :]
    if magnitude.isdigit():
        value: int | None = int(magnitude)
    elif magnitude[:1] in CHINESE_NUMERAL_CHARS:
        value = parse_chinese_numeral(magnitude)
    else:
        value = parse_english_number(magnitude)
    return None if value is None else (-value if sign else value)


def _overlap(a: re.Match[str], b: re.Match[str]) -> bool:
    return a.start() < b.end() and b.start() < a.end()
