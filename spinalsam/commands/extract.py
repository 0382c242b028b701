"""The model's answer → raw operation items, accepting only a complete JSON document.

Only a whole, well-formed JSON document may act: an answer that merely *mentions* an operation
in prose ("I could send {"op": "clear"} …") or was cut off mid-list is refused and sent back
for repair, never mined for fragments. Accepted wrappers are the ones models really produce:
R1's <think>…</think> before the answer and one ```json fence around it. Numbers are bounded
while parsing, so a 5,000-digit integer is a clear refusal, not a Python error.
"""

from __future__ import annotations

import json
import re
from typing import Any

from spinalsam.commands.prompt import KNOWN_OPS

__all__ = ["AnswerError", "extract_operations", "split_known", "strip_thinking"]

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_WHOLE_FENCE = re.compile(r"\A```(?:json)?\s*(.*?)\s*```\Z", re.DOTALL | re.IGNORECASE)
_OP_NAME = re.compile(r"[a-z_]{1,32}")
_MAX_INT_DIGITS = 9  # no count, index, coordinate or HU value needs more


class AnswerError(ValueError):
    """The reply holds no usable operation list; the message is safe to show and to send back."""


def strip_thinking(content: str | None) -> str:
    """The answer without <think> blocks (R1 wants no reasoning sent back in later turns)."""
    return _THINK.sub("", content or "").strip()


def extract_operations(content: str | None) -> list[Any]:
    """The operation items of an answer that is exactly one JSON document."""
    text = strip_thinking(content)
    if not text:
        raise AnswerError("the answer was empty")
    fenced = _WHOLE_FENCE.match(text)
    data = _whole_json(fenced.group(1) if fenced else text)
    if isinstance(data, dict):
        if isinstance(data.get("operations"), list):
            return data["operations"]
        if "op" in data:
            return [data]
        raise AnswerError('the JSON object has no "operations" list')
    if isinstance(data, list):
        return data
    raise AnswerError("the answer is not a JSON object or array")


def split_known(items: list[Any]) -> tuple[list[Any], list[str]]:
    """Items naming a protocol op, and short names of those dropped (never raw model text)."""
    known, dropped = [], []
    for item in items:
        name = item.get("op") if isinstance(item, dict) else None
        if isinstance(name, str) and name in KNOWN_OPS:
            known.append(item)
        elif isinstance(name, str) and _OP_NAME.fullmatch(name):
            dropped.append(name)
        else:
            dropped.append("an unrecognised item")
    return known, dropped


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        raise AnswerError(f"a number in the answer has {len(digits)} digits")
    return int(digits)


def _whole_json(text: str) -> Any:
    try:
        return json.loads(text, parse_int=_bounded_int)
    except AnswerError:
        raise
    except ValueError:  # JSONDecodeError, and float/recursion limits of the decoder
        raise AnswerError(
            "the answer was not one complete JSON document (no prose, nothing cut off)"
        ) from None
    except RecursionError:
        raise AnswerError("the answer nests too deeply") from None
