"""Coordinates as people type them, read into plain integer tuples.

Kept apart from the tokenizer because the notations are many and each needs its own test:
pairs "(10, 20)", "10,20", "10 20", "[10, 20]"; corner lists "(5,5)-(60,90)", "(10,20)，(200,220)";
named "x=64,y=128" (also right after a CJK character, "点x=64,y=128"); and boxes given as
origin and size "x=20 y=30 w=100 h=80"; corners by name "x0=30 y0=40 x1=130 y1=140",
"xmin=… ymin=… xmax=… ymax=…"; and names listed before their values "x1,y1,x2,y2 = 1,2,3,4",
"(x, y, w, h) = (…)". The text reaching here is already NFKC-normalised and
lower-case, so full-width digits, brackets and the Chinese comma arrive as ASCII.
"""

from __future__ import annotations

import re

__all__ = ["COORD_PATTERNS", "coords_of", "name_listed_values", "xywh_box"]

_SEP = r"\s*[=:]?\s*"
_GAP = r"\s*[,;]?\s*"
# Named values: x/y and optional w/h (a box as origin and size). "(?<![a-z])" rather than
# "\b" so that "点x=64" (a CJK character is a word character) still starts a coordinate.
_XYWH = (
    rf"(?<![a-z])x{_SEP}(?P<bx>\d+){_GAP}y{_SEP}(?P<by>\d+){_GAP}"
    rf"w(?:idth)?{_SEP}(?P<bw>\d+){_GAP}h(?:eight)?{_SEP}(?P<bh>\d+)(?![a-z0-9])"
)
_XY = rf"(?<![a-z])x{_SEP}(?P<x>\d+){_GAP}y{_SEP}(?P<y>\d+)(?![a-z0-9])"
# A corner coordinate named with an index or min/max ("x0", "y_1", "xmax"); its value follows
# "=", ":" or a space ("x0 30"), never directly (is "x130" x1 = 30?).
_CORNER_VALUE = r"(?:_?\d|[\s_]?(?:min|max))(?:\s*[=:]\s*|\s+)(?P<{}>\d+)"
_CORNERS = _GAP.join(
    f"{axis}{_CORNER_VALUE.format(group)}"
    for axis, group in (("x", "c0"), ("y", "c1"), ("x", "c2"), ("y", "c3"))
)
_CORNERS = rf"(?<![a-z]){_CORNERS}(?![a-z0-9])"
# Names first, values after: "x1,y1,x2,y2 = 10,20,30,40", "(x, y, w, h): (5, 5, 50, 50)".
_NAME = r"\s*([xywh])(?:_?(?:\d|min|max)|idth|eight)?\s*"
_NAME_LIST = re.compile(
    rf"(?<![a-z])[(\[]?{_NAME},{_NAME},{_NAME},{_NAME}[)\]]?\s*[=:]\s*"
    r"[(\[]?\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*[)\]]?"
)
# Numbers joined by commas/semicolons/spaces, or by ")(" "), (" ")-(" "] [" between groups.
_JOIN = r"(?:\s*[,;]\s*|\s*[)\]]\s*[,;-]?\s*(?:to\s*)?[(\[]\s*|\s+)"
_GROUP = rf"\d+(?:{_JOIN}\d+)+"

# Named groups in priority order, for the tokenizer's one big alternation.
COORD_PATTERNS = rf"(?P<xywh>{_XYWH})|(?P<corners>{_CORNERS})|(?P<xy>{_XY})|(?P<group>{_GROUP})"
_INT = re.compile(r"\d+")


def coords_of(text: str) -> tuple[int, ...]:
    """Every integer of a matched coordinate group, in order."""
    return tuple(int(n) for n in _INT.findall(text))


def xywh_box(x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """Corners of a box given as origin and size, the form the protocol uses."""
    return (x, y, x + w, y + h)


def name_listed_values(text: str) -> str:
    """Rewrite "x1,y1,x2,y2 = 1,2,3,4" as "x0=1 y0=2 x1=3 y1=4" (and x,y,w,h likewise), the
    named forms the token patterns read; lists whose names are not x,y,x,y or x,y,w,h stay."""

    def rewrite(match: re.Match[str]) -> str:
        names = "".join(match.group(i) for i in range(1, 5))
        values = [match.group(i) for i in range(5, 9)]
        labels = {"xyxy": ("x0", "y0", "x1", "y1"), "xywh": ("x", "y", "w", "h")}.get(names)
        if labels is None:
            return match.group()
        return " " + " ".join(f"{n}={v}" for n, v in zip(labels, values, strict=True)) + " "

    return _NAME_LIST.sub(rewrite, text)
