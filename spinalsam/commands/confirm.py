"""Which parses must be confirmed before they run, and how to say what they would do.

Two reasons to ask: the parser is unsure ("Did you mean …?" — better one click than a wrong
action), or the operation throws work away (clear everything, open another image, propagate
over masks that already exist). Both are decided here from the operations alone (plus one fact
about the session), so the rule is the same for the offline parser and the LLM.
"""

from __future__ import annotations

from itertools import groupby

from spinalsam import ops
from spinalsam.commands.result import ParseResult

__all__ = ["describe_operations", "needs_confirmation"]

_MAX_SHOWN = 4


def needs_confirmation(result: ParseResult, *, masks_elsewhere: bool = False) -> str:
    """The question to ask before applying `result`, or "" when it may run at once."""
    if not result.operations:
        return ""
    what = describe_operations(result.operations)
    if not result.confident:
        return f"Did you mean: {what}?"
    if any(_destroys(op, masks_elsewhere) for op in result.operations):
        return f"{what[:1].upper()}{what[1:]} — this replaces or removes work. Apply?"
    return ""


def _destroys(op: ops.Operation, masks_elsewhere: bool) -> bool:
    if isinstance(op, ops.Clear):
        return op.target == "all"
    if isinstance(op, ops.OpenImage):
        return True
    return isinstance(op, ops.Propagate) and masks_elsewhere


def describe_operations(operations: list[ops.Operation]) -> str:
    """A short English summary: "previous slice ×5, then segment (box)"."""
    parts = []
    for text, group in groupby(_describe(op) for op in operations):
        count = len(list(group))
        parts.append(f"{text} ×{count}" if count > 1 else text)
    shown = parts[:_MAX_SHOWN] + (["…"] if len(parts) > _MAX_SHOWN else [])
    return ", then ".join(shown)


def _describe(op: ops.Operation) -> str:
    if isinstance(op, ops.AddPoints):
        where = f" at {[list(p) for p in op.points]}" if op.points else ""
        noun = "point" if op.count == 1 else "points"
        return f"add {op.count} {op.label} {noun}{where}"
    if isinstance(op, ops.AddBox):
        return f"add a box {list(op.box)}" if op.box else "add a box"
    if isinstance(op, ops.Segment):
        return f"segment ({op.prompt})"
    if isinstance(op, ops.Clear):
        return "clear everything" if op.target == "all" else f"clear the {op.target}"
    if isinstance(op, ops.GotoSlice):
        return f"go to slice {op.index}"
    if isinstance(op, ops.SetWindow):
        if op.preset:
            return f"{op.preset.replace('_', ' ')} window"
        return f"window level {op.level}, width {op.width}"
    if isinstance(op, ops.SetLabel):
        return f"label it {op.name}"
    if isinstance(op, ops.Export):
        return f"export as {op.format.replace('_', '-').upper()}"
    return _PLAIN.get(op.op, op.op.replace("_", " "))


_PLAIN = {
    "open_image": "open another image",
    "next_image": "next slice",
    "previous_image": "previous slice",
    "check_gpu": "check the GPU",
    "check_parameters": "check the model parameters",
    "propagate": "propagate the mask through the volume",
}
