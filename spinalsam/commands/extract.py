"""Pull the operation list out of whatever an LLM wrote around it.

R1-style models wrap answers in <think>…</think>, ```json fences, prose, or a
{"operations": [...]} envelope; this accepts all of them and returns raw, not yet validated data.
"""

from __future__ import annotations

import json
import re
from typing import Any

from spinalsam.commands.prompt import KNOWN_OPS

__all__ = ["AnswerError", "extract_operations", "split_known", "strip_thinking"]

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_MAX_ANSWER_CHARS = 50_000  # a protocol answer is tiny; cap the work on a runaway reply
_OP_NAME = re.compile(r"[a-z_]{1,32}")


class AnswerError(ValueError):
    """The reply holds no usable operation list; the message is safe to show and to send back."""


def strip_thinking(content: str | None) -> str:
    """The answer without <think> blocks (R1 wants no reasoning sent back in later turns)."""
    return _THINK.sub("", content or "").strip()


def extract_operations(content: str | None) -> list[Any]:
    """The first top-level JSON array/object in `content`, as a list of raw operation items."""
    text = strip_thinking(content)[:_MAX_ANSWER_CHARS]
    if not text:
        raise AnswerError("the answer was empty")
    fenced = _FENCE.search(text)
    data = _first_json(fenced.group(1) if fenced else text)
    if isinstance(data, dict):
        if isinstance(data.get("operations"), list):
            return data["operations"]
        if "op" in data:
            return [data]
        raise AnswerError('the JSON object has no "operations" list')
    return data


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


def _first_json(text: str) -> list[Any] | dict[str, Any]:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, list | dict):
            return value
    raise AnswerError("the answer contained no valid JSON array or object")
