"""Turn a free-text command (English, Chinese or mixed) into a flat list of concept tokens.

Everything language-specific happens here — normalisation, coordinates, number words, Chinese
longest-match, run-together words, typos — so the grammar sees one uniform stream whatever the
user typed.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import combinations

from spinalsam.commands.chinese_typos import correct_chinese_verb
from spinalsam.commands.coords import COORD_PATTERNS, coords_of, name_listed_values, xywh_box
from spinalsam.commands.lexicon import (
    CHINESE,
    ENGLISH_PHRASES,
    ENGLISH_WORDS,
    FUZZY_CANDIDATES,
    MAX_CHINESE_LEN,
    MAX_PHRASE_WORDS,
    Concept,
)
from spinalsam.commands.simplified import to_simplified
from spinalsam.commands.window_values import MARK, take_window_values
from spinalsam.numerals import (
    CARDINAL_PATTERN,
    CHINESE_NUMERAL_CHARS,
    ENGLISH_CARDINALS,
    ENGLISH_NUMBERS,
    ENGLISH_REPEATS,
    HUNDRED,
    combine_english,
    parse_chinese_numeral,
)
from spinalsam.vertebrae import parse_vertebra_name

__all__ = ["Kind", "Token", "normalise", "tokenize", "tokenize_normal"]


class Kind:
    """Token kinds besides lexicon concepts (plain strings so they compare cheaply)."""

    CONCEPT = "concept"
    NUMBER = "number"
    COORDS = "coords"  # x, y pairs (or 4 numbers of a box)
    BOX = "box"  # a box given as origin and size: coords already are the two corners
    TIMES = "times"  # repetition: "twice", "3 times", "x2", "三次"
    WINDOW_VALUES = "window_values"  # coords = (level, width)
    UNKNOWN = "unknown"
    HUGE = "huge"  # a digit run too long to be any count, index or coordinate
    NUMBERISH = "numberish"  # one typo away from a number word ("thre"): never read as one
    GUESSED = "guessed"  # a Chinese verb read through a one-character typo ("分隔"): ask first


@dataclass(frozen=True)
class Token:
    """One unit of meaning: a concept, a number, a coordinate group or an unknown word."""

    kind: str
    text: str
    concept: Concept | None = None
    number: int | None = None
    coords: tuple[int, ...] = ()
    typed: str = ""  # what the user typed, when `text` is a correction or a completion of it

    @property
    def as_typed(self) -> str:
        """The word as the user wrote it: a free-text name keeps "later", never "layer"."""
        return self.typed or self.text


# Chinese and typographic punctuation that NFKC leaves alone.
_PUNCT = str.maketrans(
    {"。": ".", "、": ",", "～": "~", "【": "[", "】": "]", "「": " ", "」": " "}
    | {"’": "'", "‘": "'"}
)
# Decoration at either end of a message ("下一层～", "next one ♪", "thanks :)") carries no
# meaning, yet "~" or "^" would otherwise read as code to the gate. Non-ASCII symbols of any kind
# (emoji, stars, notes) go by category; ASCII only as tildes, "!" and emoticons.
_DECOR_PIECE = r"(?:\s|~|!|\.{3}|[:;=]-?[)(dpo3]|\^_*\^|<3)"
_DECOR_HEAD = re.compile(rf"^{_DECOR_PIECE}+")
_DECOR_TAIL = re.compile(rf"{_DECOR_PIECE}+$")
_DECOR_CATEGORIES = frozenset({"So", "Sk", "Sm", "Cf", "Mn", "Zs"})
# "label: spinal canal", "名称：椎管": a colon after the name field links it to the name.
_NAME_FIELD = re.compile(r"(?<![a-z])(label|name)\s*[:=]\s*|(名称|名字|标签)\s*[:=]\s*")
# "this one's C7", "that's L3": the verb "is" after a pronoun (a possessive "'s" stays).
_IS_CONTRACTION = re.compile(r"\b(this|that|it|one|here|there|what|who|which)'s\b")
# Texting shorthand for the person addressed: "what can u do", "can u segment", "ur mask".
_TEXTING = {"u": "you", "ur": "your"}
_TEXTING_WORD = re.compile(r"(?<![\w'])(u|ur)(?![\w'])")
_HYPHEN_BETWEEN_LETTERS = re.compile(r"(?<=[a-z])[-_/.](?=[a-z])")
_SLICE_NO = re.compile(r"\bno\.?\s*(?=\d)|#\s*(?=\d)")  # "slice no. 7", "#33": a number
# ".nii.gz", "as .png": a file extension, not the end of a sentence.
_EXTENSION_DOT = re.compile(r"(?<![a-z0-9])\.(?=[a-z])")
_DOZEN = ((re.compile(r"\bhalf\s+a\s+dozen\b"), " 6 "), (re.compile(r"\b(?:a\s+)?dozen\b"), " 12 "))
# "T 12", "l 5": a spaced vertebra level, joined when the result is a real level.
_SPACED_LEVEL = re.compile(
    r"(?<![a-z0-9])([ctls])(?:\s+|\s*[-_]\s*)(\d{1,2})(?![\d,.]|\s*[,;]?\s*\d)"
)

# "lumbar 2", "thoracic twelve", "the 3rd lumbar vertebra", "first sacral": a level spelled out
# with its region's English name, written like "l2" when the result is a real level. The number
# comes after the region or as an ordinal before it; a plain count before it ("2 lumbar points")
# is a count.
_REGION_LETTERS = {"cervical": "c", "thoracic": "t", "lumbar": "l", "sacral": "s"}
_LEVEL_ORDINALS = {
    word: n
    for n, word in enumerate(
        (
            "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
            "tenth", "eleventh", "twelfth",
        ),
        start=1,
    )
}  # fmt: skip
_WORDED_LEVEL = re.compile(
    rf"(?<![a-z0-9])(?:(?P<ord>\d{{1,2}})(?:st|nd|rd|th)\s+"
    rf"|(?P<ordw>{'|'.join(_LEVEL_ORDINALS)})\s+)?"
    rf"(?P<region>{'|'.join(_REGION_LETTERS)})(?:\s+(?:vertebra[el]?|vertebral\s+body|level))?"
    rf"(?:\s*[-#]?\s*(?P<num>\d{{1,2}}|{CARDINAL_PATTERN})(?![a-z0-9]|\s*[,;]?\s*\d))?"
)

_TOKEN = re.compile(
    rf"""
    (?P<wl>{MARK})
  | {COORD_PATTERNS}
  | (?P<times>(?<![a-z0-9])[x×]\s?(?P<tn>\d{{1,3}})(?![\d,]))
  | (?P<anatomy>(?<![a-z])[ctls]\d{{1,2}}(?!\d))
  | (?P<ordinal>\d+)(?:st|nd|rd|th)\b
  | (?P<num>-?\d+)
  | (?P<word>[a-z]+(?:'[a-z]+)?)
  | (?P<cjk>[\u3400-\u9fff]+)
  | (?P<sep>[,;.!?\n])
    """,
    re.VERBOSE,
)
# Longer digit runs are no count, slice or coordinate anyone types: "5000-digit numbers" stay
# out of int() and out of every operation.
_MAX_DIGITS = 6
# 腰1, 腰椎3, 胸12, 第一腰椎: rewritten to "l1" … so that one token rule reads both languages.
# 第三节腰椎, 胸椎第十二节: 节 counts vertebrae (after the region only with 第 … 节 around the
# number, so "腰椎第3层" stays a slice).
_CHINESE_VERTEBRA = re.compile(
    r"(?:第\s*)?[一二两三四五六七八九十\d]+\s*(?:节\s*)?[颈胸腰骶]椎(?:体)?"
    r"|[颈胸腰骶]椎?\s*第\s*[一二两三四五六七八九十\d]+\s*节"
    r"|[颈胸腰骶]椎?\s*[一二两三四五六七八九十\d]+"
)
# Longer "words" are not run-together commands or typos but pasted junk: leave them unknown.
_MAX_REPAIRABLE = 40


def normalise(text: str) -> str:
    """One spelling for what users type many ways: width, script, case, punctuation, dozens,
    levels."""
    normal = to_simplified(unicodedata.normalize("NFKC", text)).translate(_PUNCT).lower()
    normal = _IS_CONTRACTION.sub(r"\1 is", _strip_decoration(normal))
    normal = _TEXTING_WORD.sub(lambda m: _TEXTING[m[1]], normal)
    normal = _NAME_FIELD.sub(lambda m: f" {m[1]} as " if m[1] else f"{m[2]}改为", normal)
    normal = name_listed_values(_EXTENSION_DOT.sub(" ", normal))
    normal = _SLICE_NO.sub(" number ", _HYPHEN_BETWEEN_LETTERS.sub(" ", normal))
    for pattern, value in _DOZEN:
        normal = pattern.sub(value, normal)
    normal = _SPACED_LEVEL.sub(_joined_level, _WORDED_LEVEL.sub(_worded_level, normal))
    return _CHINESE_VERTEBRA.sub(_ascii_vertebra, normal)


def _strip_decoration(text: str) -> str:
    """The text without decorative symbols and emoticons at its start and end."""
    previous = None
    while text != previous:
        previous = text
        text = _DECOR_TAIL.sub("", _DECOR_HEAD.sub("", text))
        if text and _is_decoration(text[0]):
            text = text[1:]
        if text and _is_decoration(text[-1]):
            text = text[:-1]
    return text


def _is_decoration(char: str) -> bool:
    return not char.isascii() and unicodedata.category(char) in _DECOR_CATEGORIES


def tokenize(text: str) -> list[Token]:
    """Concept tokens of a command, in order; unknown words are kept as UNKNOWN tokens."""
    return tokenize_normal(normalise(text))


def tokenize_normal(normal: str) -> list[Token]:
    """`tokenize` for text already passed through `normalise` (the gate reads it too)."""
    normal, window = take_window_values(normal)
    tokens: list[Token] = []
    words: list[str] = []  # pending run of ASCII words, resolved together for phrases
    for match in _TOKEN.finditer(normal):
        kind = match.lastgroup
        if kind == "word":
            words.append(match.group())
            continue
        tokens.extend(_resolve_words(words))
        words = []
        if kind == "wl" and window is not None:
            tokens.append(Token(Kind.WINDOW_VALUES, "window values", coords=window))
        elif kind == "xywh":
            box = xywh_box(*(int(match[g]) for g in ("bx", "by", "bw", "bh")))
            tokens.append(Token(Kind.BOX, match.group(), coords=box))
        elif kind == "corners":
            corners = tuple(int(match[g]) for g in ("c0", "c1", "c2", "c3"))
            tokens.append(Token(Kind.COORDS, match.group(), coords=corners))
        elif kind in ("xy", "group"):
            tokens.append(_coords_token(match.group()))
        elif kind == "times":
            tokens.append(Token(Kind.TIMES, match.group(), number=int(match["tn"])))
        elif kind == "anatomy":  # "l9" is no level: a word like any other, not a name
            level = Concept.VERTEBRA if parse_vertebra_name(match.group()) else Concept.FILLER
            tokens.append(Token(Kind.CONCEPT, match.group(), concept=level))
        elif kind in ("ordinal", "num"):
            tokens.append(_number_token(match.group(), match.group(kind)))
        elif kind == "cjk":
            tokens.extend(_scan_chinese(match.group()))
        else:
            tokens.append(Token(Kind.CONCEPT, match.group(), concept=Concept.SEPARATOR))
    tokens.extend(_resolve_words(words))
    return _merge_numbers(tokens)


def _ascii_vertebra(match: re.Match[str]) -> str:
    name = parse_vertebra_name(match.group())
    return f" {name.lower()} " if name else match.group()


def _joined_level(match: re.Match[str]) -> str:
    joined = match[1] + match[2]
    return f" {joined} " if parse_vertebra_name(joined) else match.group()


def _worded_level(match: re.Match[str]) -> str:
    ordinal = int(match["ord"]) if match["ord"] else _LEVEL_ORDINALS.get(match["ordw"] or "")
    number = match["num"]
    if (ordinal is None) == (number is None):
        return match.group()  # no number, or two of them: not one level
    value = ordinal or (int(number) if number.isdigit() else ENGLISH_CARDINALS[number])
    level = f"{_REGION_LETTERS[match['region']]}{value}"
    return f" {level} " if parse_vertebra_name(level) else match.group()


def _number_token(text: str, digits: str) -> Token:
    if len(digits.lstrip("-")) > _MAX_DIGITS:
        return Token(Kind.HUGE, text[:12] + "…")
    return Token(Kind.NUMBER, text, number=int(digits))


def _coords_token(text: str) -> Token:
    if any(len(n) > _MAX_DIGITS for n in re.findall(r"\d+", text)):
        return Token(Kind.HUGE, text[:12] + "…")
    return Token(Kind.COORDS, text, coords=coords_of(text))


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
    return _read_statistics(out)


# "mean HU", "mean area of the mask": before a quantity "mean" is the statistic; anywhere else it
# is the verb of a question about meaning ("what does L1 mean"), which no operation answers.
_STATISTIC = "mean"
_QUANTITIES = frozenset({Concept.MEASURE, Concept.VOLUME})


def _read_statistics(tokens: list[Token]) -> list[Token]:
    return [
        replace(tok, concept=Concept.MEASURE)
        if tok.text == _STATISTIC and i + 1 < len(tokens) and tokens[i + 1].concept in _QUANTITIES
        else tok
        for i, tok in enumerate(tokens)
    ]


def _word_tokens(word: str) -> list[Token]:
    """One word: known word, number word, run-together words, or a corrected typo."""
    single = _known_word(word)
    if single is None and word.endswith("'s"):
        single = _known_word(word[:-2])  # "the next patient's scan": a possessive of a known noun
    if single is not None:
        return [single]
    pieces = _split_run_together(word)
    if pieces:
        return [tok for piece in pieces if (tok := _known_word(piece)) is not None]
    corrected = _correct_typo(word)
    # Before typo repair: "thre" must not become "there" either. Only a vocabulary word with
    # exactly the same letters ("opne" → open, not "one") is the closer reading.
    if _near_number_word(word) and not (corrected and sorted(corrected) == sorted(word)):
        return [Token(Kind.NUMBERISH, word)]
    if (full := _ABBREVIATIONS.get(word)) is not None:
        return [_repaired(word, full)]
    if corrected is not None:
        return [_repaired(word, corrected)]
    return [Token(Kind.UNKNOWN, word)]


def _repaired(word: str, repair: str) -> Token:
    known = _known_word(repair)
    return replace(known, typed=word) if known is not None else Token(Kind.UNKNOWN, word)


_NUMBER_WORDS = tuple(w for w in ENGLISH_NUMBERS if len(w) >= 3)


def _build_abbreviations() -> dict[str, str]:
    """ "nex" → next, "meas" → measure: a cut-off word that starts only words of one meaning.

    A prefix shared by words of different meanings ("pre": previous, predict, preset) is no
    abbreviation and stays unknown; fillers and number words are never targets.
    """
    meanings: dict[str, set[Concept]] = {}
    target: dict[str, str] = {}
    for word, concept in ENGLISH_WORDS.items():
        if len(word) < 4 or not word.isalpha():
            continue
        # Most of the word must be there: "nex" is next, "bro" is no "browse".
        for end in range(max(4, math.ceil(0.6 * len(word))), len(word)):
            prefix = word[:end]
            meanings.setdefault(prefix, set()).add(concept)
            target.setdefault(prefix, word)
    return {
        prefix: target[prefix]
        for prefix, concepts in meanings.items()
        if len(concepts) == 1
        and concepts <= _ABBREVIABLE
        and prefix not in ENGLISH_WORDS
        and prefix not in ENGLISH_NUMBERS
    }


@lru_cache(maxsize=1024)
def _near_number_word(word: str) -> bool:
    """ "thre", "sevn": probably a count, but guessing which would invent a number — the
    parser reports it as unsure instead ("height" is a word of its own and stays unknown)."""
    if not 2 <= len(word) <= 9:
        return False
    return any(w[0] == word[0] and _osa_distance(word, w) == 1 for w in _NUMBER_WORDS)


def _known_word(word: str) -> Token | None:
    if word in ENGLISH_REPEATS:
        return Token(Kind.TIMES, word, number=ENGLISH_REPEATS[word])
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


# On a tie, a typo is more likely a command word than a filler.
_WEAK_CORRECTIONS = (Concept.FILLER, Concept.OFFTOPIC, Concept.ALIEN, Concept.SEPARATOR)
# Only actions, objects and settings are abbreviated; never a negation, a count or small talk.
_ABBREVIABLE = frozenset(Concept) - {
    Concept.FILLER,
    Concept.OFFTOPIC,
    Concept.ALIEN,
    Concept.SEPARATOR,
    Concept.NEGATION,
    Concept.TIMES,
    Concept.NAMING,
    Concept.ALL,
    Concept.LAST,
    Concept.FIRST,
    Concept.UP,
    Concept.DOWN,
    Concept.OTHER_FORMAT,
}
_ABBREVIATIONS = _build_abbreviations()


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
        # Typos keep the first letter ("segmentt", "poitns"); a different first letter is
        # another word ("height" is no "weight" and no "eight").
        if cand[0] == word[0]
        and (dist := _osa_distance(word, cand)) <= _allowed_distance(word, cand)
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
            out.extend(_unknown_chinese(run[unknown_start:i]))
            unknown_start = None
        if word_len >= num_len:
            out.append(Token(Kind.CONCEPT, run[i : i + word_len], concept=concept))
            i += word_len
        else:
            out.append(Token(Kind.NUMBER, run[i : i + num_len], number=value))
            i += num_len
    if unknown_start is not None:
        out.extend(_unknown_chinese(run[unknown_start:]))
    return out


def _unknown_chinese(text: str) -> list[Token]:
    """Characters the lexicon does not know, with a mistyped verb at their start read as one."""
    guess = correct_chinese_verb(text)
    if guess is None:
        return [Token(Kind.UNKNOWN, text)]
    verb, concept = guess
    rest = text[len(verb) :]
    return [Token(Kind.GUESSED, text[: len(verb)], concept=concept)] + (
        [Token(Kind.UNKNOWN, rest)] if rest else []
    )


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
    """Combine number words into one value and counts into repetitions.

    "a couple" → 2 (the article is no count), "twenty one" → 21, "two hundred and five" → 205,
    "3 times" / "三次" → a repetition of 3.
    """
    out: list[Token] = []
    for i, tok in enumerate(tokens):
        prev = out[-1] if out else None
        if prev is not None and prev.kind == Kind.NUMBER and prev.number is not None:
            if tok.concept == Concept.TIMES:
                out[-1] = Token(Kind.TIMES, f"{prev.text} {tok.text}", number=prev.number)
                continue
            if tok.kind == Kind.NUMBER and tok.number is not None:
                if prev.text in ("a", "an"):
                    out[-1] = tok
                    continue
                value = _english_value(prev, tok)
                if value is not None:
                    out[-1] = Token(Kind.NUMBER, f"{prev.text} {tok.text}", number=value)
                    continue
            if tok.text == "and" and HUNDRED in prev.text and _next_small(tokens, i):
                continue  # "one hundred and twenty": the "and" joins the number
        out.append(tok)
    return out


def _english_value(prev: Token, tok: Token) -> int | None:
    if tok.text not in ENGLISH_NUMBERS or not prev.text[:1].isalpha():
        return None
    return combine_english((prev.text, prev.number or 0), tok.text, tok.number or 0)


def _next_small(tokens: list[Token], i: int) -> bool:
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    return bool(nxt and nxt.text in ENGLISH_NUMBERS and 0 < (nxt.number or 0) < 100)
