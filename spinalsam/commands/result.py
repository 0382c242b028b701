"""The answer every command parser gives, so the UI treats offline and LLM results alike."""

from __future__ import annotations

from dataclasses import dataclass

from spinalsam.ops import Operation

__all__ = ["ParseResult"]


@dataclass(frozen=True)
class ParseResult:
    """Operations parsed from one chat message.

    `confident` is False when the message looked like an instruction the parser could not fully
    understand — the router then asks the LLM. `note` is shown to the user as is (why the LLM
    was not used, what was not understood); it never contains secrets. `confirm`, when set, is
    the question the UI asks before applying anything ("Did you mean: next slice?", "Clear
    everything on this slice?"): the operations run only after one click on Confirm.
    """

    operations: list[Operation]
    confident: bool
    parser: str = "offline"
    note: str = ""
    confirm: str = ""
