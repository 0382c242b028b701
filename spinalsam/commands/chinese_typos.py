"""Chinese verbs typed with the wrong character of the same sound: 分隔 for 分割, 撤消 for 撤销.

An input method offers homophones and a hurried user picks the neighbour, so the word typed is
one character away from a verb the parser knows, and that character sounds the same. Edit
distance alone would also turn real words into commands (分析 "analyse" is one character from
分割), so the changed character must share a reading (pinyin, tones ignored) with the verb's.
The readings come from the single-character table that pypinyin ships; it is read as data, not
through the package, whose import also loads 50 MB of phrase data the parser never needs.
A corrected verb is still a guess: the parser marks the parse unsure and the user confirms it.
"""

from __future__ import annotations

import importlib.util
import json
import unicodedata
from functools import lru_cache
from pathlib import Path

from spinalsam.commands.lexicon import CHINESE, Concept

__all__ = ["correct_chinese_verb", "same_sound"]

C = Concept
# Only actions are corrected: a guessed object or setting would change what an action does.
_ACTIONS = frozenset(
    {
        C.OPEN, C.GENERATE, C.SEGMENT, C.CLEAR, C.RESET, C.UNDO, C.REDO, C.EXPORT, C.MEASURE,
        C.PROPAGATE,
    }
)  # fmt: skip
# One changed character leaves a word recognisable only when it has others around it.
_MIN_LEN, _MAX_LEN = 2, 4
_VERBS: dict[int, tuple[tuple[str, Concept], ...]] = {
    n: tuple((w, c) for w, c in CHINESE.items() if len(w) == n and c in _ACTIONS)
    for n in range(_MIN_LEN, _MAX_LEN + 1)
}


@lru_cache(maxsize=1)
def _reading_table() -> dict[str, str]:
    """Code point (as text) → comma-separated readings with tone marks, from pypinyin's data."""
    spec = importlib.util.find_spec("pypinyin")
    if spec is None or spec.origin is None:
        raise RuntimeError("pypinyin is not installed (see requirements.txt)")
    path = Path(spec.origin).parent / "pinyin_dict.json"
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=4096)
def _readings(char: str) -> frozenset[str]:
    raw = _reading_table().get(str(ord(char)), "")
    return frozenset(_toneless(r) for r in raw.split(",") if r)


def _toneless(reading: str) -> str:
    decomposed = unicodedata.normalize("NFKD", reading)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def same_sound(a: str, b: str) -> bool:
    """Whether two characters share a reading when tones are ignored (隔 gé, 割 gē)."""
    return bool(_readings(a) & _readings(b))


@lru_cache(maxsize=1024)
def correct_chinese_verb(run: str) -> tuple[str, Concept] | None:
    """(verb, concept) for the longest start of `run` that is a known action verb with one
    character replaced by a homophone; None when there is none or its meaning is ambiguous."""
    for n in range(min(_MAX_LEN, len(run)), _MIN_LEN - 1, -1):
        typed = run[:n]
        matches = {(word, concept) for word, concept in _VERBS[n] if _one_homophone(word, typed)}
        if len({concept for _, concept in matches}) == 1:
            return min(matches)
    return None


def _one_homophone(word: str, typed: str) -> bool:
    differing = [(a, b) for a, b in zip(word, typed, strict=True) if a != b]
    return len(differing) == 1 and same_sound(*differing[0])
