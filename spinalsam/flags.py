"""Collaborators' flags and feedback, kept in one SQLite file (standard library, WAL mode).

Why not Gradio's CSVLogger: one row with a > 128 KB field made every later read of the CSV fail
("field larger than field limit"), and nothing bounded what a request could append. Here every
field is bounded before it is written (a long comment is truncated and the caller is told so),
each flag is one transaction, WAL lets flags be written while a collaborator exports, and
`export_csv` writes the CSV collaborators want (`python -m spinalsam.flags flags.sqlite3 out.csv`).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from spinalsam.limits import DEFAULT_BUDGET, Budget
from spinalsam.plaintext import spreadsheet_row

__all__ = ["FlagStore", "SavedFlag", "export_csv"]

DB_NAME = "flags.sqlite3"
MAX_RECORD_CHARS = 64_000  # prompts, metrics and names of one flag, as JSON
MAX_MASK_BYTES = 4 << 20  # a mask PNG of the largest slice compresses far below this
MAX_SHORT_CHARS = 100  # the rating

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    rating TEXT NOT NULL,
    comment TEXT NOT NULL,
    record TEXT NOT NULL,
    mask_png BLOB
)
"""


@dataclass(frozen=True)
class SavedFlag:
    """What `FlagStore.add` stored; `truncated` says the comment was cut to the budget."""

    id: int
    truncated: bool


@dataclass(frozen=True)
class FlagStore:
    """One SQLite file under `folder`; a connection per call, so every thread may use it."""

    folder: Path
    budget: Budget = DEFAULT_BUDGET

    @property
    def path(self) -> Path:
        return self.folder / DB_NAME

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
            yield db

    def add(self, rating: str, comment: str, record: dict, mask_png: bytes | None) -> SavedFlag:
        """Store one flag; over-long comments are truncated, over-large records refused."""
        limit = self.budget.max_flag_comment_chars
        truncated = len(comment) > limit
        text = json.dumps(record, ensure_ascii=False, default=str)
        if len(text) > MAX_RECORD_CHARS:
            raise ValueError("This result's record is too large to flag.")
        if mask_png is not None and len(mask_png) > MAX_MASK_BYTES:
            mask_png = None  # the record still names the image, slice and prompts
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO flags (created, rating, comment, record, mask_png) "
                "VALUES (?, ?, ?, ?, ?)",
                (time.time(), rating[:MAX_SHORT_CHARS], comment[:limit], text, mask_png),
            )
        return SavedFlag(int(cursor.lastrowid or 0), truncated)

    def rows(self) -> list[dict]:
        """All flags, oldest first, without mask bytes (whether a mask is stored is a flag)."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            found = db.execute(
                "SELECT id, created, rating, comment, record, mask_png IS NOT NULL AS has_mask "
                "FROM flags ORDER BY id"
            ).fetchall()
        return [dict(row) for row in found]


def export_csv(store: FlagStore, target: Path) -> Path:
    """The flags as a CSV for collaborators; masks are written beside it as PNG files."""
    target.parent.mkdir(parents=True, exist_ok=True)
    masks = target.parent / f"{target.stem}_masks"
    with closing(sqlite3.connect(store.path)) as db, target.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "created_utc", "rating", "comment", "record", "mask_file"])
        for fid, created, rating, comment, record, mask in db.execute(
            "SELECT id, created, rating, comment, record, mask_png FROM flags ORDER BY id"
        ):
            mask_file = ""
            if mask is not None:
                masks.mkdir(exist_ok=True)
                mask_file = str((masks / f"flag{fid}.png").relative_to(target.parent))
                (target.parent / mask_file).write_bytes(mask)
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
            writer.writerow(spreadsheet_row([fid, when, rating, comment, record, mask_file]))
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m spinalsam.flags FLAG_DIR OUT.csv", file=sys.stderr)
        return 2
    print(export_csv(FlagStore(Path(argv[0])), Path(argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
