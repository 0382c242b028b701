"""Command corpora (one {"text", "expect"} JSON object per line) and the PROTOCOL.md score.

Shared by the accuracy test and bench/commands.py so both score exactly the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spinalsam.ops import Operation, dump_operations

__all__ = ["CorpusLine", "Score", "load_corpus", "matches", "score"]


@dataclass(frozen=True)
class CorpusLine:
    text: str
    expect: list[dict[str, Any]]
    category: str = ""  # e.g. "navigate", "offtopic" (our own corpora; dev.jsonl has none)
    lang: str = ""  # "en", "zh" or "mixed"


@dataclass(frozen=True)
class Score:
    accuracy: float
    wrong: list[dict[str, Any]]  # {"text", "expect", "got"} for each miss


def load_corpus(path: Path) -> list[CorpusLine]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [CorpusLine(**json.loads(line)) for line in lines if line.strip()]


def matches(expect: list[dict[str, Any]], got: list[dict[str, Any]]) -> bool:
    """Same length and order, same op, and every field named in the expected op equal."""
    return len(expect) == len(got) and all(
        all(g.get(key) == value for key, value in e.items())
        for e, g in zip(expect, got, strict=True)
    )


def score(corpus: list[CorpusLine], parse: Callable[[str], list[Operation]]) -> Score:
    wrong = []
    for line in corpus:
        got = dump_operations(parse(line.text))
        if not matches(line.expect, got):
            wrong.append({"text": line.text, "expect": line.expect, "got": got})
    return Score(1 - len(wrong) / len(corpus) if corpus else 0.0, wrong)
