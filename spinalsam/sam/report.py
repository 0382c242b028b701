"""What the served model is, for the `check_parameters` operation: provenance and sizes."""

from __future__ import annotations

from typing import Any

from spinalsam.sam.loader import LoadedModel

__all__ = ["describe_parameters", "format_parameters"]


def describe_parameters(loaded: LoadedModel) -> dict[str, Any]:
    """Base weights (spec, file, SHA-256, strict key check), parameter counts and LoRA setup."""
    model, check = loaded.model, loaded.model.key_check
    config = model.config
    return {
        "model_type": config.model_type,
        "checkpoint": loaded.checkpoint_spec,
        "checkpoint_file": str(loaded.checkpoint_path),
        "sha256": check.sha256,
        "keys_loaded": check.loaded,
        "missing_keys": list(check.missing),
        "unexpected_keys": list(check.unexpected),
        "parameters_total": loaded.parameter_counts["total"],
        "parameters_trainable": loaded.parameter_counts["trainable"],
        "parameters_lora": loaded.parameter_counts["lora"],
        "parameters_cbam": loaded.parameter_counts["cbam"],
        "adapter": loaded.adapter_spec,
        "lora_rank": config.lora_rank,
        "lora_alpha": config.lora_alpha,
        "lora_targets": list(config.lora_targets),
        "lora_merged": model.lora_merged,
        "cbam": config.use_cbam,
        "encoder_speedups": list(loaded.encoder_methods),
        "decoder": loaded.decoder_runtime or "pytorch",
        "notes": list(loaded.notes),
    }


def format_parameters(facts: dict[str, Any]) -> str:
    """Markdown for the chat from `describe_parameters`'s dict."""
    keys = (
        f"all {facts['keys_loaded']} tensors loaded, strict key check passed"
        if not facts["missing_keys"] and not facts["unexpected_keys"]
        else f"missing {facts['missing_keys']}, unexpected {facts['unexpected_keys']}"
    )
    adapter = facts["adapter"] or "none (untrained LoRA/CBAM: predictions equal the base SAM)"
    lines = [
        f"**SAM {facts['model_type']}** from `{facts['checkpoint']}`",
        f"- sha256: `{facts['sha256']}`",
        f"- weights: {keys}",
        f"- parameters: {facts['parameters_total']:,} total, "
        f"{facts['parameters_lora']:,} LoRA, {facts['parameters_cbam']:,} CBAM",
        f"- LoRA: rank {facts['lora_rank']}, alpha {facts['lora_alpha']}, on "
        f"{', '.join(facts['lora_targets'])}" + (" (merged)" if facts["lora_merged"] else ""),
        f"- CBAM: {'on' if facts['cbam'] else 'off'}; adapter: {adapter}",
    ]
    if facts["encoder_speedups"]:
        lines.append(f"- encoder speed-ups: {', '.join(facts['encoder_speedups'])}")
    lines.append(f"- mask decoder: {facts['decoder']}")
    lines += [f"- note: {note}" for note in facts["notes"]]
    return "\n".join(lines)
