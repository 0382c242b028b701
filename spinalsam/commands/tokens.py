"""Turn a free-text command (English, Chinese or mixed) into a flat list of concept tokens.

Everything language-specific happens here — normalisation, coordinates, number words, Chinese
longest-match, run-together words, typos — so the grammar sees one uniform stream whatever the
user typed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

from spinalsam.commands.lexicon import (
    CHINESE,
    ENGLISH_PHRASES,
    ENGLISH_WORDS,
    FUZZY_CANDIDATES,
    MAX_CHINESE_LEN,
    MAX_PHRASE_WORDS,
    Concept,
)
from spinalsam.commands.numbers import (
    CHINESE_NUMERAL_CHARS,
    ENGLISH_NUMBERS,
    ENGLISH_TENS,
    parse_chinese_numeral,
)
from spinalsam.commands.vertebrae import parse_vertebra_name

__all__ = ["Kind", "Token", "tokenize"]


class Kind:
    """Token kinds besides lexicon concepts (plain strings so they compare cheaply)."""

    CONCEPT = "concept"
    NUMBER = "number"
    COORDS = "coords"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Token:
    """One unit of meaning: a concept, a number, a coordinate group or an unknown word."""

    kind: str
    text: str
    concept: Concept | None = None
    number: int | None = None
    coords: tuple[int, ...] = ()


# Chinese and typographic punctuation that NFKC leaves alone.
_PUNCT = str.maketrans(
    {"。": ".", "、": ",", "～": "~", "【": "[", "】": "]", "「": " ", "」": " "}
)
_HYPHEN_BETWEEN_LETTERS = re.compile(r"(?<=[a-z])[-_/.](?=[a-z])")
_SLICE_NO = re.compile(r"\bno\.\s*(?=\d)")  # "slice no. 7": the period ends no sentence

_TOKEN = re.compile(
    r"""
    (?P<xy>\bx\s*[=:]?\s*(?P<x>\d+)\s*[,;]?\s*y\s*[=:]?\s*(?P<y>\d+))
  | (?P<anatomy>(?<![a-z])[ctls]\d{1,2}(?!\d))
  | (?P<group>\d+(?:(?:\s*[,;]\s*|\s*\)\s*,?\s*\(\s*|\s+)\d+)+)
  | (?P<ordinal>\d+)(?:st|nd|rd|th)\b
  | (?P<num>\d+)
  | (?P<word>[a-z]+(?:'[a-z]+)?)
  | (?P<cjk>[\u3400-\u9fff]+)
  | (?P<sep>[,;.!?\n])
    """,
    re.VERBOSE,
)
_INT = re.compile(r"\d+")
# 腰1, 腰椎3, 胸12, 第一腰椎: rewritten to "l1" … so that one token rule reads both languages.
_CHINESE_VERTEBRA = re.compile(
    r"(?:第\s*)?[一二两三四五六七八九十\d]+\s*[颈胸腰骶]椎(?:体)?|[颈胸腰骶]椎?\s*[一二两三四五六七八九十\d]+"
)
# Longer "words" are not run-together commands or typos but pasted junk: leave them unknown.
_MAX_REPAIRABLE = 40


def tokenize(text: str) -> list[Token]:
    """Concept tokens of a command, in order; unknown words are kept as UNKNOWN tokens."""
    normal = unicodedata.normalize("NFKC", text).translate(_PUNCT).lower()
    normal = _SLICE_NO.sub("number ", _HYPHEN_BETWEEN_LETTERS.sub(" ", normal))
    normal = _CHINESE_VERTEBRA.sub(_ascii_vertebra, normal)
    tokens: list[Token] = []
    words: list[str] = []  # pending run of ASCII words, resolved together for phrases
    for match in _TOKEN.finditer(normal):
        kind = match.lastgroup
        if kind == "word":
            words.append(match.group())
            continue
        tokens.extend(_resolve_words(words))
        words = []
        if kind in ("xy", "group"):
            tokens.append(Token(Kind.COORDS, match.group(), coords=_ints(match.group())))
        elif kind == "anatomy":  # "l9" is no level: a word like any other, not a name
            level = Concept.VERTEBRA if parse_vertebra_name(match.group()) else Concept.FILLER
            tokens.append(Token(Kind.CONCEPT, match.group(), concept=level))
        elif kind in ("ordinal", "num"):
            tokens.append(Token(Kind.NUMBER, match.group(), number=int(match.group(kind))))
        elif kind == "cjk":
            tokens.extend(_scan_chinese(match.group()))
        else:
            tokens.append(Token(Kind.CONCEPT, match.group(), concept=Concept.SEPARATOR))
    tokens.extend(_resolve_words(words))
    return _merge_numbers(tokens)


def _ascii_vertebra(match: re.Match[str]) -> str:
    name = parse_vertebra_name(match.group())
    return f" {name.lower()} " if name else match.group()


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in _INT.findall(text))


def _resolve_words(words: list[str]) -> list[Token]:
    """Phrases first (longest match), then single words."""
    out: list[Token] = []
    i = 0
    while i < len(words):
        for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 1, -1):
            phrase = tuple(words[i : i + n])
            if phrase in ENGLISH_PHRASES:
                out.append(Token(Kind.CONCEPT, " ".join(phrase), concept=ENGLISH_PHRASES[phrase]))
                i += n
                break
        else:
            out.extend(_word_tokens(words[i]))
            i += 1
    return out


def _word_tokens(word: str) -> list[Token]:
    """One word: known word, number word, run-together words, or a corrected typo."""
    single = _known_word(word)
    if single is not None:
        return [single]
    pieces = _split_run_together(word)
    if pieces:
        return [tok for piece in pieces if (tok := _known_word(piece)) is not None]
    corrected = _correct_typo(word)
    if corrected is not None:
        return [_known_word(corrected) or Token(Kind.UNKNOWN, word)]
    return [Token(Kind.UNKNOWN, word)]


def _known_word(word: str) -> Token | None:
    if word in ENGLISH_NUMBERS:
        return Token(Kind.NUMBER, word, number=ENGLISH_NUMBERS[word])
    if word in ENGLISH_WORDS:
        return Token(Kind.CONCEPT, word, concept=ENGLISH_WORDS[word])
    return None


def _is_vocab(word: str) -> bool:
    return word in ENGLISH_WORDS or word in ENGLISH_NUMBERS


@lru_cache(maxsize=4096)
def _split_run_together(word: str) -> tuple[str, ...] | None:
    """Fewest vocabulary words that concatenate to `word` ("addthreepoints"), if any.

    Only accepted when at least one piece carries meaning, so a random unknown word that happens
    to split into fillers ("atom" → "at"+"om") is not turned into a command. Memoised because
    it is a pure function of the word and users retype the same commands.
    """
    if not 5 <= len(word) <= _MAX_REPAIRABLE:
        return None
    n = len(word)
    best: list[tuple[str, ...] | None] = [None] * (n + 1)
    best[0] = ()
    for end in range(1, n + 1):
        for start in range(max(0, end - 16), end):
            prev = best[start]
            piece = word[start:end]
            if prev is None or not _is_vocab(piece):
                continue
            current = best[end]
            if current is None or len(prev) + 1 < len(current):
                best[end] = (*prev, piece)
    pieces = best[n]
    if pieces is None or len(pieces) < 2:
        return None
    meaningful = any(
        ENGLISH_WORDS.get(p) not in (None, Concept.FILLER, Concept.OFFTOPIC) for p in pieces
    )
    return pieces if meaningful else None


def _deletes(word: str, depth: int) -> set[str]:
    """All strings reachable from `word` by deleting up to `depth` letters."""
    out = {word}
    for k in range(1, depth + 1):
        for idx in combinations(range(len(word)), k):
            out.add("".join(ch for i, ch in enumerate(word) if i not in idx))
    return out


def _build_delete_index() -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for cand in FUZZY_CANDIDATES:
        for variant in _deletes(cand, 2 if len(cand) >= 8 else 1):
            index.setdefault(variant, []).append(cand)
    return {k: tuple(v) for k, v in index.items()}


# Symmetric-delete index: a typo and its correction share a deletion variant, so candidate
# lookup is a few dictionary hits instead of an edit distance against every word.
_DELETE_INDEX = _build_delete_index()


# On a tie, a typo is more likely a command word than a filler ("thre" → three, not there).
_WEAK_CORRECTIONS = (Concept.FILLER, Concept.OFFTOPIC)


def _allowed_distance(word: str, cand: str) -> int:
    if min(len(word), len(cand)) >= 8:
        return 2
    if max(len(word), len(cand)) >= 5:
        return 1
    return 1 if sorted(word) == sorted(cand) else 0  # "nxet": swapped letters only


@lru_cache(maxsize=4096)
def _correct_typo(word: str) -> str | None:
    """The vocabulary word one or two edits away ("poitns" → "points"), if unambiguous enough."""
    if not 4 <= len(word) <= _MAX_REPAIRABLE or not word.isalpha():
        return None
    found: set[str] = set()
    for variant in _deletes(word, 2 if len(word) >= 8 else 1):
        found.update(_DELETE_INDEX.get(variant, ()))
    scored = sorted(
        (dist, ENGLISH_WORDS.get(cand) in _WEAK_CORRECTIONS, cand)
        for cand in found
        if (dist := _osa_distance(word, cand)) <= _allowed_distance(word, cand)
    )
    return scored[0][2] if scored else None


def _osa_distance(a: str, b: str) -> int:
    """Edit distance where swapping two neighbouring letters counts as one typo."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _scan_chinese(run: str) -> list[Token]:
    """Longest match against the Chinese lexicon, with Chinese numerals as a competing match."""
    out: list[Token] = []
    i = 0
    unknown_start: int | None = None
    while i < len(run):
        word_len, concept = _longest_chinese_word(run, i)
        num_len, value = _longest_numeral(run, i)
        if max(word_len, num_len) == 0:
            unknown_start = i if unknown_start is None else unknown_start
            i += 1
            continue
        if unknown_start is not None:
            out.append(Token(Kind.UNKNOWN, run[unknown_start:i]))
            unknown_start = None
        if word_len >= num_len:
            out.append(Token(Kind.CONCEPT, run[i : i + word_len], concept=concept))
            i += word_len
        else:
            out.append(Token(Kind.NUMBER, run[i : i + num_len], number=value))
            i += num_len
    if unknown_start is not None:
        out.append(Token(Kind.UNKNOWN, run[unknown_start:]))
    return out


def _longest_chinese_word(run: str, start: int) -> tuple[int, Concept | None]:
    for n in range(min(MAX_CHINESE_LEN, len(run) - start), 0, -1):
        concept = CHINESE.get(run[start : start + n])
        if concept is not None:
            return n, concept
    return 0, None


def _longest_numeral(run: str, start: int) -> tuple[int, int | None]:
    end = start
    while end < len(run) and run[end] in CHINESE_NUMERAL_CHARS:
        end += 1
    for stop in range(end, start, -1):
        value = parse_chinese_numeral(run[start:stop])
        if value is not None:
            return stop - start, value
    return 0, None


def _merge_numbers(tokens: list[Token]) -> list[Token]:
    """Combine number words: "a couple" → 2 (the article is no count), "twenty one" → 21."""
    out: list[Token] = []
    for tok in tokens:
        prev = out[-1] if out else None
        if prev is not None and prev.number is not None and tok.number is not None:
            if prev.text in ("a", "an"):
                out[-1] = tok
                continue
            if prev.text in ENGLISH_TENS and 0 < ENGLISH_NUMBERS.get(tok.text, 0) < 10:
                text = f"{prev.text} {tok.text}"
                out[-1] = Token(Kind.NUMBER, text, number=prev.number + tok.number)
                continue
        out.append(tok)
    return out
