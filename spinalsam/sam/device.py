"""Which device SAM runs on, and a plain report of it for the `check_gpu` operation."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Literal

import torch

from spinalsam.sam.errors import SamError

__all__ = ["cpu_model", "describe_compute", "format_compute", "select_device"]


def select_device(preference: Literal["auto", "cpu", "cuda"] = "auto") -> torch.device:
    """`auto` takes the GPU when there is one; asking for `cuda` without one is an error."""
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if preference == "cuda":
        raise SamError("SPINALSAM_DEVICE=cuda but no CUDA GPU is available to PyTorch")
    return torch.device("cpu")


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_compute(device: torch.device | None = None) -> dict[str, Any]:
    """Device facts the chat can show: GPU name and memory, or CPU model and torch threads."""
    device = device or select_device()
    facts: dict[str, Any] = {
        "device": device.type,
        "torch_version": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
    }
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        facts |= {
            "gpu_name": torch.cuda.get_device_name(device),
            "gpu_memory_total_mb": total // 2**20,
            "gpu_memory_free_mb": free // 2**20,
            "cuda_version": torch.version.cuda,
        }
    else:
        facts |= {"cpu_model": cpu_model(), "torch_threads": torch.get_num_threads()}
    return facts


def format_compute(facts: dict[str, Any]) -> str:
    """Markdown for the chat from `describe_compute`'s dict."""
    if facts["device"] == "cuda":
        lines = [
            f"**GPU**: {facts['gpu_name']} (CUDA {facts['cuda_version']})",
            f"- memory: {facts['gpu_memory_free_mb']:,} MB free of "
            f"{facts['gpu_memory_total_mb']:,} MB",
        ]
    else:
        gpu = "no CUDA GPU visible" if not facts["cuda_available"] else "GPU not selected"
        lines = [
            f"**CPU**: {facts['cpu_model']} ({gpu})",
            f"- torch threads: {facts['torch_threads']}",
        ]
    lines.append(f"- PyTorch {facts['torch_version']}")
    return "\n".join(lines)
