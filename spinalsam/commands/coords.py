"""Coordinates as people type them, read into plain integer tuples.

Kept apart from the tokenizer because the notations are many and each needs its own test:
pairs "(10, 20)", "10,20", "10 20", "[10, 20]"; corner lists "(5,5)-(60,90)", "(10,20)，(200,220)";
named "x=64,y=128" (also right after a CJK character, "点x=64,y=128"); and boxes given as
origin and size "x=20 y=30 w=100 h=80". The text reaching here is already NFKC-normalised and
lower-case, so full-width digits, brackets and the Chinese comma arrive as ASCII.
"""

from __future__ import annotations

import re

__all__ = ["COORD_PATTERNS", "coords_of", "xywh_box"]

_SEP = r"\s*[=:]?\s*"
_GAP = r"\s*[,;]?\s*"
# Named values: x/y and optional w/h (a box as origin and size). "(?<![a-z])" rather than
# "\b" so that "点x=64" (a CJK character is a word character) still starts a coordinate.
_XYWH = (
    rf"(?<![a-z])x{_SEP}(?P<bx>\d+){_GAP}y{_SEP}(?P<by>\d+){_GAP}"
    rf"w(?:idth)?{_SEP}(?P<bw>\d+){_GAP}h(?:eight)?{_SEP}(?P<bh>\d+)(?![a-z0-9])"
)
_XY = rf"(?<![a-z])x{_SEP}(?P<x>\d+){_GAP}y{_SEP}(?P<y>\d+)(?![a-z0-9])"
# Numbers joined by commas/semicolons/spaces, or by ")(" "), (" ")-(" "] [" between groups.
_JOIN = r"(?:\s*[,;]\s*|\s*[)\]]\s*[,;-]?\s*(?:to\s*)?[(\[]\s*|\s+)"
_GROUP = rf"\d+(?:{_JOIN}\d+)+"

# Named groups in priority order, for the tokenizer's one big alternation.
COORD_PATTERNS = rf"(?P<xywh>{_XYWH})|(?P<xy>{_XY})|(?P<group>{_GROUP})"
_INT = re.compile(r"\d+")


def coords_of(text: str) -> tuple[int, ...]:
    """Every integer of a matched coordinate group, in order."""
    return tuple(int(n) for n in _INT.findall(text))


def xywh_box(x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """Corners of a box given as origin and size, the form the protocol uses."""
    return (x, y, x + w, y + h)
