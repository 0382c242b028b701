"""The names of SAM's encoder speed-ups and which may be combined — without importing torch.

The settings validate `SPINALSAM_ENCODER_OPT` at start-up with `parse_methods`, long before (and
often without) `spinalsam.sam.fast`, which applies the methods, is imported.
"""

from __future__ import annotations

from spinalsam.sam.errors import SamError

__all__ = ["METHODS", "RUNTIMES", "FastEncoderError", "parse_methods"]

METHODS = ("sdpa", "int8", "onnx", "onnx-int8", "openvino", "openvino-int8", "bf16", "compile")
# Methods that replace the torch encoder with another runtime (CPU only, exclusive with each
# other and with every method that changes how torch runs the same Linear layers).
RUNTIMES = frozenset({"onnx", "onnx-int8", "openvino", "openvino-int8"})
# Mutually exclusive: each of these replaces how the same Linear layers / graph are executed.
_EXCLUSIVE = (
    *(frozenset({a, b}) for a in RUNTIMES for b in RUNTIMES if a < b),
    *(frozenset({a, b}) for a in RUNTIMES for b in ("int8", "compile")),
    # OpenVINO takes bf16 as its inference precision; ONNX Runtime's CPU kernels have none.
    frozenset({"bf16", "onnx"}),
    frozenset({"bf16", "onnx-int8"}),
    frozenset({"bf16", "int8"}),
)


class FastEncoderError(SamError):
    """An encoder speed-up was asked for that cannot be applied here (shown in the UI as is)."""


def parse_methods(spec: str) -> tuple[str, ...]:
    """Split "sdpa+int8" into known, compatible method names (empty spec / "none" = reference)."""
    names = tuple(p.strip().lower() for p in spec.split("+") if p.strip())
    if names in ((), ("none",), ("fp32",)):
        return ()
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise FastEncoderError(
            f"unknown encoder speed-up {', '.join(unknown)}; choose from {', '.join(METHODS)}"
        )
    chosen = frozenset(names)
    for pair in _EXCLUSIVE:
        if pair <= chosen:
            a, b = sorted(pair)
            raise FastEncoderError(f"encoder speed-ups {a} and {b} cannot be combined")
    return tuple(m for m in METHODS if m in chosen)
