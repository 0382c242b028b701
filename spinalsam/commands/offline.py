"""The offline command parser: a small grammar of intents over concept tokens (EN + 中文).

A message is split into clauses (at "and", "then", 然后, commas …), each clause is matched
against intent rules in priority order, and the result is validated through the protocol
models. It needs no network and no key, answers in well under a millisecond, and says when it
is unsure (`confident=False`) so the router can ask the LLM instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spinalsam.commands.lexicon import Concept
from spinalsam.commands.result import ParseResult
from spinalsam.commands.tokens import Kind, Token, tokenize
from spinalsam.ops import Operation, OperationError, parse_operations

__all__ = ["parse_offline"]

C = Concept

# fmt: off
_VERBS = frozenset({
    C.ADD, C.SELECT, C.OPEN, C.GENERATE, C.SEGMENT, C.CLEAR, C.RESET, C.UNDO, C.GOTO, C.SHOW,
    C.NEXT, C.PREV, C.CHECK, C.SWITCH, C.EXPORT, C.MEASURE, C.PROPAGATE, C.HELP, C.NAME,
})
# A second one of these inside a clause starts a new operation ("添加坐标框生成框掩码").
_CLAUSE_STARTERS = frozenset({
    C.ADD, C.OPEN, C.GENERATE, C.SEGMENT, C.CLEAR, C.RESET, C.UNDO, C.EXPORT, C.MEASURE,
    C.PROPAGATE,
})
_OBJECTS = frozenset({
    C.POINT, C.BOX, C.MASK, C.IMAGE, C.VOLUME, C.SLICE, C.WINDOW, C.GPU, C.PARAMS, C.ALL,
})
# "this is L1", "label it T12", "set label to L3", 标记为腰1: a vertebra named and nothing else.
_NAMING = frozenset({C.VERTEBRA, C.NAME, C.MASK, C.ADD, C.SELECT, C.SWITCH, C.SHOW, C.OFFTOPIC})
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
_NEUTRAL = frozenset({C.FILLER, C.OFFTOPIC, C.SEPARATOR})
# Operations that mean something more when said twice in a row; the rest are idempotent.
_REPEATABLE = frozenset({"next_image", "previous_image", "add_points", "add_box", "undo"})
# Besides these, words that would turn "the volume" into something other than a measurement.
_OTHER_VERBS = _VERBS - {C.GENERATE, C.CHECK, C.SHOW}
_OTHER_OBJECTS = _OBJECTS - {C.MASK, C.VOLUME}
# Tokens that make an uninterpretable clause a misunderstanding rather than small talk.
_CONTENT_KINDS = (Kind.UNKNOWN, Kind.NUMBER, Kind.COORDS)
_MAX_QUOTE = 60
# This many unknown words make even a matched command suspicious enough to ask the LLM.
_MAX_UNKNOWN_WORDS = 3


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


def parse_offline(text: str) -> ParseResult:
    """Parse one chat message into protocol operations without any network access."""
    tokens = tokenize(text)
    context = _Context()
    ops: list[dict[str, Any]] = []
    operations: list[Operation] = []
    problems: list[str] = []
    offtopic = False
    for clause in _clauses(tokens):
        op = _interpret(clause, context)
        if op is None:
            offtopic = offtopic or C.OFFTOPIC in clause.concepts
            if not clause.concepts <= _NEUTRAL or _has(clause, *_CONTENT_KINDS):
                problems.append(f"did not understand “{clause.excerpt}”")
            continue
        if ops and ops[-1] == op and (clause.implicit or op["op"] not in _REPEATABLE):
            continue  # "choose a CT slice to load", "clear all and start over": said twice
        try:
            operations.extend(parse_operations(op))
        except OperationError as exc:  # e.g. 0 points, a flat box: explain, don't guess
            problems.append(f"“{clause.excerpt}”: {exc}")
            continue
        ops.append(op)
    if offtopic and not ops:
        problems.clear()  # small talk: the UI answers politely, there is nothing to act on
    unknown = sum(t.kind == Kind.UNKNOWN for t in tokens)
    confident = not problems and (unknown < _MAX_UNKNOWN_WORDS if ops else offtopic or not unknown)
    note = "; ".join(problems)
    note = f"{note[:1].upper()}{note[1:]}." if note else ""
    return ParseResult(operations, confident, note=note)


def _has(clause: _Clause, *kinds: str) -> bool:
    return any(t.kind in kinds for t in clause.tokens)


def _clauses(tokens: list[Token]) -> list[_Clause]:
    """Split at separators and at a second verb, then re-attach fragments to their clause."""
    raw: list[_Clause] = []
    current: list[Token] = []
    for tok in tokens:
        if tok.concept == C.SEPARATOR:
            raw.extend(_split_at_verbs(current))
            current = []
        else:
            current.append(tok)
    raw.extend(_split_at_verbs(current))

    out: list[_Clause] = []
    leading: list[Token] = []  # coordinates before any clause: "在(10,20)和(30,40)添加两个点"
    for clause in raw:
        meaningful = [t for t in clause.tokens if t.concept not in _NEUTRAL]
        kinds = {t.kind for t in meaningful}
        if Kind.COORDS in kinds and kinds <= {Kind.COORDS, Kind.NUMBER}:
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


def _split_at_verbs(tokens: list[Token]) -> list[_Clause]:
    if not tokens:
        return []
    clauses = [_Clause([])]
    seen_verb = seen_object = False
    for tok in tokens:
        starter = tok.concept in _CLAUSE_STARTERS and tok.text != "segmentation"
        if starter and seen_verb and seen_object:
            clauses.append(_Clause([], implicit=True))
            seen_object = False
        clauses[-1].tokens.append(tok)
        seen_verb = seen_verb or tok.concept in _VERBS - _WEAK_VERBS
        seen_object = seen_object or tok.concept in _OBJECTS
    return clauses


def _interpret(clause: _Clause, context: _Context) -> dict[str, Any] | None:
    """The operation one clause asks for, by intent priority; None when it asks for nothing."""
    cs = clause.concepts
    if C.NEGATION in cs:
        return None  # never act on "don't …"; the clause is reported as not understood
    if C.UNDO in cs or (C.CLEAR in cs and C.LAST in cs):
        return {"op": "undo"}
    if C.VERTEBRA in cs and cs <= _NAMING | _NEUTRAL:
        name = next(t.text for t in clause.tokens if t.concept == C.VERTEBRA)
        return {"op": "set_label", "name": name.upper()}
    if C.PARAMS in cs:
        return {"op": "check_parameters"}
    if C.GPU in cs:
        return {"op": "check_gpu"}
    if C.EXPORT in cs or (cs & {C.PNG, C.NIFTI} and cs <= _NEUTRAL | {C.PNG, C.NIFTI, C.MASK}):
        return _export(clause)
    if C.PROPAGATE in cs:
        return {"op": "propagate"}
    if C.MEASURE in cs or (C.VOLUME in cs and not cs & (_OTHER_VERBS | _OTHER_OBJECTS)):
        return {"op": "measure"}  # "what is / compute the volume (of the mask)"
    if (preset := _window_preset(clause)) is not None:
        return {"op": "set_window", "preset": preset}
    if C.CLEAR in cs or C.RESET in cs:
        return {"op": "clear", "target": _clear_target(cs)}
    if C.NEXT in cs or C.PREV in cs:
        return {"op": "next_image" if clause.first(C.NEXT, C.PREV) == C.NEXT else "previous_image"}
    if (index := _slice_index(clause)) is not None:
        return {"op": "goto_slice", "index": index}
    prompt_kind = clause.first(C.POINT, C.BOX)
    if C.OPEN in cs or (C.SELECT in cs and cs & {C.IMAGE, C.VOLUME, C.SLICE} and not prompt_kind):
        return {"op": "open_image"}
    # A bare "run"/"do" means segment only when nothing unknown follows ("run rm -rf" does not).
    bare_generate = C.GENERATE in cs and prompt_kind is None and not _has(clause, Kind.UNKNOWN)
    wants_mask = C.SEGMENT in cs or C.MASK in cs or bare_generate
    if prompt_kind is not None and (cs & {C.ADD, C.SELECT} or not wants_mask):
        return _add_prompt(clause, prompt_kind, context)
    if wants_mask:
        prompt = {C.POINT: "points", C.BOX: "box"}.get(prompt_kind) if prompt_kind else None
        return {"op": "segment", "prompt": prompt or context.prompt or "auto"}
    if C.HELP in cs:
        return {"op": "help"}
    return None


def _export(clause: _Clause) -> dict[str, Any] | None:
    cs = clause.concepts
    if C.OTHER_FORMAT in cs:
        return None  # a format we cannot write: say so instead of silently writing PNG
    return {"op": "export", "format": "nifti" if C.NIFTI in cs else "png"}


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


def _slice_index(clause: _Clause) -> int | None:
    """Slice number of "go to slice 40", "slice 40", "第40张", "40th slice", "jump to 40"."""
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
        if before in (C.ORDINAL, C.SLICE) or (classifier and C.OPEN not in cs):
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
    count = next((t.number for t in clause.tokens if t.kind == Kind.NUMBER), 1)
    return {"op": "add_points", "count": count, "label": label}
