"""The offline command parser: a small grammar of intents over concept tokens (EN + 中文).

A message is split into clauses (at "and", "then", 然后, commas …), each clause is matched
against intent rules in priority order, and the result is validated through the protocol
models. It needs no network and no key, answers in well under a millisecond, and says when it
is unsure (`confident=False`) so the router can ask the LLM instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from spinalsam.commands.gate import INFO_OPS, Verdict, asks_general_knowledge, classify
from spinalsam.commands.lexicon import Concept
from spinalsam.commands.naming import free_label_name
from spinalsam.commands.result import ParseResult
from spinalsam.commands.tokens import Kind, Token, normalise, tokenize_normal
from spinalsam.ops import Operation, OperationError, parse_operations

__all__ = ["parse_offline"]

C = Concept

# fmt: off
_VERBS = frozenset({
    C.ADD, C.SELECT, C.OPEN, C.GENERATE, C.SEGMENT, C.CLEAR, C.RESET, C.UNDO, C.REDO, C.GOTO,
    C.SHOW, C.NEXT, C.PREV, C.CHECK, C.SWITCH, C.EXPORT, C.MEASURE, C.PROPAGATE, C.HELP, C.NAME,
})
# A second one of these inside a clause starts a new operation ("添加坐标框生成框掩码").
_CLAUSE_STARTERS = frozenset({
    C.ADD, C.OPEN, C.GENERATE, C.SEGMENT, C.CLEAR, C.RESET, C.UNDO, C.REDO, C.EXPORT, C.MEASURE,
    C.PROPAGATE,
})
_OBJECTS = frozenset({
    C.POINT, C.BOX, C.MASK, C.IMAGE, C.VOLUME, C.SLICE, C.WINDOW, C.GPU, C.PARAMS, C.ALL, C.CASE,
})
# "this is L1", "label it T12", "set label to L3", 标记为腰1: a vertebra named and nothing else.
_NAMING = frozenset({
    C.VERTEBRA, C.NAME, C.NAMING, C.MASK, C.ADD, C.SELECT, C.SWITCH, C.SHOW, C.OFFTOPIC,
})
# Words that say a name follows: without one, "L1" inside a sentence is a mention, not a label.
_NAMING_CUES = frozenset({C.NAME, C.NAMING, C.MASK, C.ADD, C.SELECT, C.SWITCH})
# fmt: on
# "use the points to generate a mask": these do not start an operation of their own.
_WEAK_VERBS = frozenset({C.SWITCH, C.CHECK, C.SHOW})
# Verbs a following verb-less clause shares: "clear the points and (clear) the boxes".
_SHARED_VERBS = frozenset({C.ADD, C.SELECT, C.CLEAR, C.EXPORT})
_PRESETS: dict[Concept, str] = {
    C.BONE: "bone",
    C.SOFT_TISSUE: "soft_tissue",
    C.SPINE: "spine",
    C.LUNG: "lung",
    C.BRAIN: "brain",
}
_NEUTRAL = frozenset({C.FILLER, C.OFFTOPIC, C.SEPARATOR, C.AFTER})
# "next patient", "打开下一个病例", "换一个病人的片子": a move to another case opens an image.
_CASE_MOVES = frozenset({C.NEXT, C.PREV, C.OPEN, C.SELECT, C.SWITCH, C.GOTO, C.SHOW})
# Operations that mean something more when said twice in a row; the rest are idempotent.
_REPEATABLE = frozenset({"next_image", "previous_image", "add_points", "add_box", "undo", "redo"})
# "go up 5 slices", "undo twice": at most this many steps from one clause (a volume's depth).
_MAX_REPEAT = 100
# More operations than this from one message is a pasted paragraph, not a command.
_MAX_CLAUSE_OPS = 6
_GATE_NOTES = {
    Verdict.QUESTION: "That sounds like a question, so nothing was changed.",
    Verdict.HOSTILE: "That is not a command for the image, so nothing was changed.",
    Verdict.PASTED: "That looks like pasted text, not a command, so nothing was changed.",
}
# Besides these, words that would turn "the volume" into something other than a measurement.
_OTHER_VERBS = _VERBS - {C.GENERATE, C.CHECK, C.SHOW}
_OTHER_OBJECTS = _OBJECTS - {C.MASK, C.VOLUME}
# Tokens that make an uninterpretable clause a misunderstanding rather than small talk.
_CONTENT_KINDS = (Kind.UNKNOWN, Kind.NUMBER, Kind.COORDS, Kind.NUMBERISH)
_MAX_QUOTE = 60
# This many unknown words make even a matched command suspicious enough to ask the LLM.
_MAX_UNKNOWN_WORDS = 3
# More unknown words than this, and this large a share of the tokens: not a command at all.
_UNKNOWN_SHARE = 0.25
_HUGE_NUMBER = re.compile(r"\d{7,}")
# "1e9", "2.5e3": read digit by digit, "undo 1e9 times" undid 9 steps and "level 1e400" set
# level 1. Counts, slices, coordinates and HU are typed in full; this form is refused.
_EXPONENT = re.compile(r"(?<![\d.a-z])\d+(?:\.\d+)?e[+-]?\d+(?![\d.])")


@dataclass
class _Clause:
    tokens: list[Token]
    implicit: bool = False  # split off at a verb, not at an explicit "and"/"then"

    @property
    def concepts(self) -> set[Concept]:
        return {t.concept for t in self.tokens if t.concept is not None}

    @property
    def excerpt(self) -> str:
        """The clause as the user wrote it (tokenized), short enough to quote in a note."""
        text = " ".join(t.text for t in self.tokens)
        return text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 1] + "…"

    def first(self, *concepts: Concept) -> Concept | None:
        return next((t.concept for t in self.tokens if t.concept in concepts), None)


@dataclass
class _Context:
    """What earlier clauses of the same message established."""

    prompt: str | None = None  # kind of the prompt just added: "points" or "box"
    slip: bool = False  # a clause described a mistake ("one point too many", 点错了)


def parse_offline(text: str) -> ParseResult:
    """Parse one chat message into protocol operations without any network access."""
    normal = normalise(text)
    if huge := _HUGE_NUMBER.search(normal):
        note = f"“{huge.group()[:12]}…” is too long to be a count, slice or coordinate."
        return ParseResult([], False, note=f"{note} Nothing was changed.")
    if exponent := _EXPONENT.search(normal):
        note = f"“{exponent.group()[:12]}” is in exponent notation; please type the number in full."
        return ParseResult([], False, note=f"{note} Nothing was changed.")
    verdict = classify(normal)
    if verdict in (Verdict.HOSTILE, Verdict.PASTED):
        return ParseResult([], True, note=_GATE_NOTES[verdict])
    tokens = tokenize_normal(normal)
    if numberish := [t.text for t in tokens if t.kind == Kind.NUMBERISH]:
        # Guessing "thre" = 3 could be wrong, and count 1 surely is: ask for the number.
        note = f"“{numberish[0]}” looks like a mistyped number; please type it again."
        return ParseResult([], False, note=note)
    unknown = sum(t.kind == Kind.UNKNOWN for t in tokens)
    words = sum(t.concept != C.SEPARATOR for t in tokens)
    if unknown > _MAX_UNKNOWN_WORDS and unknown >= _UNKNOWN_SHARE * words:
        # Mostly words the app does not know: prose that happens to contain command words.
        return ParseResult([], False, note="That does not look like a command I know.")
    context = _Context()
    ops: list[dict[str, Any]] = []
    operations: list[Operation] = []
    problems: list[str] = []
    offtopic = False
    # Where the last clause's operations begin: a correction ("no wait") withdraws them.
    said: tuple[int, int] | None = None
    for clause in _clauses(tokens):
        if C.CORRECTION in clause.concepts:
            if said is not None:
                del ops[said[0] :], operations[said[1] :]
            said = None
            continue
        op = _interpret(clause, context)
        if op is None:
            offtopic = offtopic or bool(clause.concepts & {C.OFFTOPIC, C.ALIEN})
            described = C.SLIP in clause.concepts  # what went wrong is understood, not asked
            if not described and (not clause.concepts <= _NEUTRAL or _has(clause, *_CONTENT_KINDS)):
                problems.append(f"did not understand “{clause.excerpt}”")
            continue
        repeat = op.pop("_repeat", 1)
        if op["op"] == "undo" and context.slip and repeat == 1 and op in ops:
            continue  # "oops, one too many, remove it": one slip, one undo
        if ops and ops[-1] == op and (clause.implicit or op["op"] not in _REPEATABLE):
            continue  # "choose a CT slice to load", "clear all and start over": said twice
        try:
            parsed = parse_operations(op) * repeat
        except OperationError as exc:  # e.g. 0 points, a flat box: explain, don't guess
            problems.append(f"“{clause.excerpt}”: {exc}")
            continue
        said = (len(ops), len(operations))
        operations.extend(parsed)
        ops.append(op)
    if len(ops) > _MAX_CLAUSE_OPS:
        return ParseResult([], True, note=_GATE_NOTES[Verdict.PASTED])
    if verdict == Verdict.QUESTION and not (
        operations and _all_info(operations) and not asks_general_knowledge(normal)
    ):
        return ParseResult([], True, note=_GATE_NOTES[Verdict.QUESTION])
    if offtopic and not ops:
        problems.clear()  # small talk: the UI answers politely, there is nothing to act on
    confident = not problems and (unknown < _MAX_UNKNOWN_WORDS if ops else offtopic or not unknown)
    if guessed := [t.text for t in tokens if t.kind == Kind.GUESSED]:
        confident = False  # a homophone typo is a guess: the user confirms it with one click
        problems.append(f"read “{guessed[0]}” as a mistyped command word")
    if verdict == Verdict.TERSE and not _all_info(operations):
        confident = False  # "next slice?": offer it, do not just do it
    note = "; ".join(problems)
    note = f"{note[:1].upper()}{note[1:]}." if note else ""
    return ParseResult(operations, confident, note=note)


def _all_info(operations: list[Operation]) -> bool:
    return all(o.op in INFO_OPS for o in operations)


def _has(clause: _Clause, *kinds: str) -> bool:
    return any(t.kind in kinds for t in clause.tokens)


def _clauses(tokens: list[Token]) -> list[_Clause]:
    """Split at separators and at a second verb, then re-attach fragments to their clause."""
    raw: list[_Clause] = []
    current: list[Token] = []
    for tok in tokens:
        if tok.concept in (C.SEPARATOR, C.CORRECTION):
            raw.extend(_split_at_verbs(current))
            current = []
            if tok.concept == C.CORRECTION:
                raw.append(_Clause([tok]))  # a clause of its own: it withdraws the one before
        else:
            current.append(tok)
    raw.extend(_split_at_verbs(current))

    out: list[_Clause] = []
    leading: list[Token] = []  # coordinates before any clause: "在(10,20)和(30,40)添加两个点"
    for clause in raw:
        meaningful = [t for t in clause.tokens if t.concept not in _NEUTRAL]
        kinds = {t.kind for t in meaningful}
        if Kind.COORDS in kinds and (
            kinds <= {Kind.COORDS, Kind.NUMBER}
            or _names_coords_of(clause, out[-1] if out else None)
        ):
            # "at (10,20) and (30,40)", "and another at …": coordinates of the nearby clause
            (out[-1].tokens if out else leading).extend(clause.tokens)
            continue
        if leading:
            clause = _Clause(leading + clause.tokens, clause.implicit)
            leading = []
        if out and not clause.concepts & _VERBS and clause.concepts & _OBJECTS:
            shared = [t for t in out[-1].tokens if t.concept in _SHARED_VERBS][:1]
            clause = _Clause(shared + clause.tokens, clause.implicit)
        out.append(clause)
    if leading:
        out.append(_Clause(leading))  # coordinates alone: reported as not understood
    return out


def _names_coords_of(clause: _Clause, previous: _Clause | None) -> bool:
    """ "添加背景点，坐标(10，20)": a verb-less "point/coordinate (x, y)" after a prompt clause
    that has no coordinates yet gives that clause its coordinates."""
    if previous is None or clause.concepts & _VERBS or _has(previous, Kind.COORDS):
        return False
    kind = clause.concepts - _NEUTRAL
    return bool(kind) and kind <= {C.POINT, C.BOX} and bool(previous.concepts & {C.POINT, C.BOX})


def _split_at_verbs(tokens: list[Token]) -> list[_Clause]:
    if not tokens:
        return []
    clauses = [_Clause([])]
    seen_verb = seen_object = step_done = False
    for tok in tokens:
        starter = tok.concept in _CLAUSE_STARTERS and tok.text != "segmentation"
        # After "分割后" / "打开图像后" any verb starts the next step, a move or a window too.
        if (starter and seen_verb and seen_object) or (step_done and tok.concept in _VERBS):
            clauses.append(_Clause([], implicit=True))
            seen_object = step_done = False
        clauses[-1].tokens.append(tok)
        if tok.concept == C.AFTER and seen_verb:
            seen_object = step_done = True  # "分割后导出": the step is done
            continue
        if tok.concept in _VERBS - _WEAK_VERBS and not seen_verb:
            # Objects before the first real verb are its instrument ("用点生成分割"): only
            # an object after it completes the clause.
            seen_verb, seen_object = True, False
            continue
        seen_object = seen_object or tok.concept in _OBJECTS
    return clauses


def _interpret(clause: _Clause, context: _Context) -> dict[str, Any] | None:
    """The operation one clause asks for, by intent priority; None when it asks for nothing.

    A repeated step ("go up 5 slices", "undo twice") carries its count in "_repeat".
    """
    cs = clause.concepts
    if C.NEGATION in cs or C.ALIEN in cs:
        return None  # never act on "don't …" or on a subject the app has nothing to do with
    context.slip = context.slip or C.SLIP in cs
    if C.REDO in cs and not _brings_back_a_place(clause):
        return _repeated({"op": "redo"}, clause)
    if C.UNDO in cs or (C.CLEAR in cs and (C.LAST in cs or _removes_slip(cs, context))):
        return _repeated({"op": "undo"}, clause)
    if C.SLIP in cs:
        return None  # "我点多了一个点": the count and noun describe the slip, they ask for nothing
    if (name := _label_name(clause) or free_label_name(clause.tokens)) is not None:
        return {"op": "set_label", "name": name}
    if C.PARAMS in cs:
        return {"op": "check_parameters"}
    if C.GPU in cs:
        return {"op": "check_gpu"}
    if C.EXPORT in cs or (cs & _FORMATS and cs <= _NEUTRAL | _FORMATS | {C.MASK}):
        return _export(clause)
    if C.PROPAGATE in cs:
        return {"op": "propagate"}
    if C.MEASURE in cs or (C.VOLUME in cs and not cs & (_OTHER_VERBS | _OTHER_OBJECTS)):
        return {"op": "measure"}  # "what is / compute the volume (of the mask)"
    if (values := _tokens_of(clause, Kind.WINDOW_VALUES)) and not cs & {C.POINT, C.BOX}:
        level, width = values[0].coords
        return {"op": "set_window", "level": level, "width": width}
    if (preset := _window_preset(clause)) is not None:
        return {"op": "set_window", "preset": preset}
    if C.CLEAR in cs or C.RESET in cs:
        if cs & {C.IMAGE, C.CASE} and not cs & {C.POINT, C.BOX, C.MASK, C.SEGMENT}:
            return None  # "delete the file": the app deletes no files; say it was not understood
        return {"op": "clear", "target": _clear_target(cs)}
    if _moves_to_case(clause):
        return {"op": "open_image"}  # another patient is another image, never a slice step
    if (index := _named_slice(clause)) is not None:
        return {"op": "goto_slice", "index": index}  # "go back to slice 5": a place, not a distance
    if (step := _step(clause)) is not None:
        return _repeated({"op": step}, clause, counts=True)
    if (index := _slice_index(clause)) is not None:
        return {"op": "goto_slice", "index": index}
    if C.FIRST in cs and cs & {C.SLICE, C.IMAGE} and not cs & {C.POINT, C.BOX, C.MASK}:
        return {"op": "goto_slice", "index": 0}  # "go to the first slice"
    prompt_kind = clause.first(C.POINT, C.BOX)
    if prompt_kind is None and _tokens_of(clause, Kind.BOX):
        prompt_kind = C.BOX
    if prompt_kind is None and _has(clause, Kind.COORDS) and cs & {C.NEGATIVE, C.POSITIVE}:
        prompt_kind = C.POINT  # "mark background at 300,40"
    if C.OPEN in cs or (C.SELECT in cs and cs & {C.IMAGE, C.VOLUME, C.SLICE} and not prompt_kind):
        return {"op": "open_image"}
    # A bare "run"/"do" means segment only when nothing unknown follows ("run rm -rf" does not).
    bare_generate = C.GENERATE in cs and prompt_kind is None and not _has(clause, Kind.UNKNOWN)
    # A bare "mask" asks for one ("box mask pls"); with unknown words around it, it is talked
    # about ("the mask has holes") unless a verb asks.
    named_mask = C.MASK in cs and (C.GENERATE in cs or not _has(clause, Kind.UNKNOWN))
    wants_mask = C.SEGMENT in cs or named_mask or bare_generate
    if prompt_kind is not None and C.GENERATE in cs and _is_instrument(clause, prompt_kind):
        wants_mask = True  # "predict from the box", "根据点生成": the prompt is what to use
    if prompt_kind is not None and (cs & {C.ADD, C.SELECT} or not wants_mask):
        return _add_prompt(clause, prompt_kind, context)
    if wants_mask:
        prompt = {C.POINT: "points", C.BOX: "box"}.get(prompt_kind) if prompt_kind else None
        return {"op": "segment", "prompt": prompt or context.prompt or "auto"}
    if C.HELP in cs:
        return {"op": "help"}
    return None


_FORMATS = frozenset({C.PNG, C.NIFTI, C.DICOM_SEG})


def _tokens_of(clause: _Clause, kind: str) -> list[Token]:
    return [t for t in clause.tokens if t.kind == kind]


# Words that make the following prompt noun the means of a mask, not a new prompt.
_INSTRUMENT_WORDS = frozenset(
    {"from", "using", "with", "by", "via", "用", "根据", "按", "按照", "以"}
)


def _is_instrument(clause: _Clause, kind: Concept) -> bool:
    """Whether the prompt noun follows "from/using/with" (skipping "the", "my", "these")."""
    for i, tok in enumerate(clause.tokens):
        if tok.concept != kind:
            continue
        before = [t for t in clause.tokens[:i] if t.text not in _DETERMINERS]
        return bool(before) and before[-1].text in _INSTRUMENT_WORDS
    return False


_DETERMINERS = frozenset({"the", "my", "these", "those", "this", "that", "a", "an", "这个", "这些"})


def _label_name(clause: _Clause) -> str | None:
    """ "this is L1", "label it T12", 标记为腰1, or a bare "L1": the vertebra named.

    Without a naming word the level must stand alone, so "fracture at L1 with height loss" is
    a mention, not a request to rename anything.
    """
    cs = clause.concepts
    if C.VERTEBRA not in cs or not cs <= _NAMING | _NEUTRAL or _has(clause, *_CONTENT_KINDS):
        return None
    meaningful = [t for t in clause.tokens if t.concept not in _NEUTRAL]
    if not cs & _NAMING_CUES and len(meaningful) > 1:
        return None
    return next(t.text for t in clause.tokens if t.concept == C.VERTEBRA).upper()


def _moves_to_case(clause: _Clause) -> bool:
    """ "next patient", "打开下一个病例": the case is what the move goes to (it follows the move
    word); in "这个病人的下一层" or "next slice of this patient" the move stays on this case."""
    if clause.concepts & {C.SLICE, C.POINT, C.BOX, C.MASK}:
        return False
    concepts = [t.concept for t in clause.tokens]
    move = next((i for i, c in enumerate(concepts) if c in _CASE_MOVES), None)
    return move is not None and C.CASE in concepts[move + 1 :]


def _removes_slip(cs: set[Concept], context: _Context) -> bool:
    """ "多点了一个，删掉", "that point was wrong, remove it": removing what a slip just added is
    taking the last step back; a named "all" or the masks are still cleared as asked."""
    return context.slip and not cs & {C.ALL, C.MASK, C.SEGMENT, C.RESET}


def _step(clause: _Clause) -> str | None:
    """next_image / previous_image for "next", "go back", "往上翻", "move up 3 slices"."""
    first = clause.first(C.NEXT, C.PREV)
    if first is not None:
        return "next_image" if first == C.NEXT else "previous_image"
    direction = clause.first(C.UP, C.DOWN)
    cs = clause.concepts
    if direction is not None and cs & {C.SLICE, C.GOTO} and not cs & {C.POINT, C.BOX}:
        return "next_image" if direction == C.DOWN else "previous_image"
    return None


def _repeated(op: dict[str, Any], clause: _Clause, *, counts: bool = False) -> dict[str, Any]:
    """Attach how often the clause asks for `op`: "twice", "3 times", or (for moves) "5 slices".

    A number after 第 / an ordinal is a slice index, never a count.
    """
    times = _tokens_of(clause, Kind.TIMES)
    numbers = [
        t.number
        for i, t in enumerate(clause.tokens)
        if t.kind == Kind.NUMBER and (i == 0 or clause.tokens[i - 1].concept != C.ORDINAL)
    ]
    if times:
        repeat = times[0].number
    elif numbers and (counts or len(numbers) == 1):
        repeat = numbers[0]
    else:
        repeat = 1
    if repeat and 1 < repeat <= _MAX_REPEAT:
        op["_repeat"] = repeat
    return op


def _export(clause: _Clause) -> dict[str, Any] | None:
    cs = clause.concepts
    if C.OTHER_FORMAT in cs:
        return None  # a format we cannot write: say so instead of silently writing PNG
    named = [fmt for concept, fmt in _FORMAT_NAMES.items() if concept in cs]
    if not named and any(t.text in _DICOM_WORDS for t in clause.tokens):
        named = ["dicom_seg"]
    return {"op": "export", "format": named[0] if named else "png"}


_FORMAT_NAMES = {C.DICOM_SEG: "dicom_seg", C.NIFTI: "nifti", C.PNG: "png"}
# "export as DICOM": the one DICOM object a mask is written as is a DICOM SEG. A named format
# wins ("export a PNG of the DICOM"), and outside an export the word names an image.
_DICOM_WORDS = frozenset({"dicom", "dcm"})


def _window_preset(clause: _Clause) -> str | None:
    preset = clause.first(*_PRESETS)
    if preset is None:
        return None
    cs = clause.concepts
    named_window = C.WINDOW in cs or any("窗" in t.text for t in clause.tokens)
    alone = cs <= set(_PRESETS) | _NEUTRAL | {C.GOTO, C.SHOW, C.SWITCH}
    if named_window or C.SWITCH in cs or (alone and preset != C.SPINE):
        return _PRESETS[preset]
    return None


def _clear_target(cs: set[Concept]) -> str:
    targets = {
        target
        for concept, target in (
            (C.POINT, "points"),
            (C.BOX, "boxes"),
            (C.MASK, "masks"),
            (C.SEGMENT, "masks"),
        )
        if concept in cs
    }
    return targets.pop() if len(targets) == 1 else "all"


def _brings_back_a_place(clause: _Clause) -> bool:
    """ "Bring back the previous image", "bring back slice 5": an image or slice to show again,
    not a redo (the "back" phrases read as redo only for what an undo took away)."""
    back = any(t.concept == C.REDO and t.text.endswith("back") for t in clause.tokens)
    numbered = C.SLICE in clause.concepts and any(t.kind == Kind.NUMBER for t in clause.tokens)
    return back and (C.IMAGE in clause.concepts or numbered)


def _named_slice(clause: _Clause) -> int | None:
    """The slice a move names by its number: "back to slice 5", "the 40th slice", "往上翻到第5层".

    A number after the slice noun or 第, or an ordinal before the noun, says where to go even
    after a move word, which otherwise reads the number as a distance ("back 5 slices").
    """
    if clause.concepts & {C.POINT, C.BOX}:
        return None
    toks = clause.tokens
    for i, tok in enumerate(toks):
        if tok.kind != Kind.NUMBER:
            continue
        before = next((t.concept for t in reversed(toks[:i]) if t.concept != C.FILLER), None)
        ordinal = tok.text[:1].isdigit() and tok.text.isascii() and not tok.text.isdigit()
        if before in (C.ORDINAL, C.SLICE) or (
            ordinal and toks[i + 1 : i + 2] and toks[i + 1].concept == C.SLICE
        ):
            return tok.number
    return None


def _slice_index(clause: _Clause) -> int | None:
    """Slice number of "跳到40张", "show image 3", "jump to 40" (a slice named after its noun or
    第, or by an ordinal, is `_named_slice`'s, asked first)."""
    toks = clause.tokens
    cs = clause.concepts
    if cs & {C.POINT, C.BOX}:
        return None
    concepts = [t.concept for t in toks]
    for i, tok in enumerate(toks):
        if tok.kind != Kind.NUMBER:
            continue
        before = next((c for c in reversed(concepts[:i]) if c != C.FILLER), None)
        after = concepts[i + 1 : i + 3]
        # "40张" is slice 40, but "一张图" is "a picture" (张 as a measure word).
        classifier = after[:1] == [C.SLICE] and C.IMAGE not in after[1:]
        # "move 2 slices", "move two slices": a count of slices (a distance), never slice 2;
        # "the 40th slice" is an ordinal and stays an index.
        cardinal = tok.text.isdigit() or (tok.text.isascii() and tok.text[:1].isalpha())
        if classifier and toks[i + 1].text.isascii() and cardinal:
            return None
        if classifier and cs & {C.GOTO, C.SHOW}:
            return tok.number
        if before == C.IMAGE and cs & {C.GOTO, C.SHOW}:
            return tok.number
    numbers = [t.number for t in toks if t.kind == Kind.NUMBER]
    if C.GOTO in cs and len(numbers) == 1 and not cs & (_OBJECTS - {C.IMAGE, C.SLICE}):
        return numbers[0]
    return None


def _add_prompt(clause: _Clause, kind: Concept, context: _Context) -> dict[str, Any] | None:
    coords = [n for t in clause.tokens if t.kind == Kind.COORDS for n in t.coords]
    if kind == C.BOX:
        context.prompt = "box"
        sized = _tokens_of(clause, Kind.BOX)
        if sized and not coords:
            return {"op": "add_box", "box": list(sized[0].coords)}
        if not coords:
            return {"op": "add_box"}
        if len(coords) != 4:
            return None
        x0, y0, x1, y1 = coords
        # "from (200,220) to (50,60)" names the same rectangle: order the corners.
        return {"op": "add_box", "box": [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]}
    context.prompt = "points"
    label = "negative" if clause.first(C.NEGATIVE, C.POSITIVE) == C.NEGATIVE else "positive"
    if coords:
        if len(coords) % 2:
            return None
        points = [[coords[i], coords[i + 1]] for i in range(0, len(coords), 2)]
        return {"op": "add_points", "count": len(points), "label": label, "points": points}
    counted = [t.number for t in clause.tokens if t.kind in (Kind.NUMBER, Kind.TIMES)]
    return {"op": "add_points", "count": counted[0] if counted else 1, "label": label}
