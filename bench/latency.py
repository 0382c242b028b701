"""SAM latency benchmark on this machine: new-slice embedding, click -> overlay, memory, error.

Prints one JSON object. Each method runs in its own subprocess so that peak RSS is per method and
one method's allocations or thread pools never flatter or penalise the next. The reference is
plain `SamPredictor.set_image` with fp32 eager PyTorch; every optimized embedding is compared to
the reference embedding saved by that first worker (same seed, same random weights).

    python bench/latency.py --model vit_b                      # default methods, ~8 min
    python bench/latency.py --model mobile_sam --methods int8,onnx,onnx-int8
    python bench/latency.py --model vit_b --methods onnx-int8,openvino,openvino-int8

Every optimized method also serves clicks through the exact OpenVINO mask decoder, as the app
does (`--decoder pytorch` keeps SAM's own). A CPU without bf16 can be emulated on one that has
it by capping the kernels' instruction sets (the report records the caps and, for OpenVINO, the
kernels it really picked):

    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 \
        python bench/latency.py --model vit_b --methods openvino,openvino-int8,onnx-int8

Random weights (no checkpoints can be downloaded here) cost exactly the same compute as real
ones. SAM resizes every slice to 1024 px on its long side, so `--size` changes the prompt/overlay
cost but not the encoder's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from segment_anything import SamPredictor

    from spinalsam.segmenters.base import Prompt

REPO = Path(__file__).resolve().parents[1]
DEFAULT_METHODS = "sdpa,int8,sdpa+int8,sdpa+bf16,onnx,onnx-int8"
WORKER_TIMEOUT_S = 900
# What caps the instruction sets of torch (ATen, oneDNN, MKL) and OpenVINO (its oneDNN fork) to
# emulate an older CPU. ONNX Runtime's MLAS kernels read CPUID themselves and ignore all of them.
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_description() -> dict[str, object]:
    """The CPU model, its bf16/AMX/VNNI flags, and any instruction-set caps in force."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return {
        "model": model,
        "flags": [f for f in wanted if f in flags],
        "isa_caps": {name: os.environ[name] for name in ISA_CAPS if name in os.environ},
    }


def _openvino_kernels(module: object) -> dict[str, int] | None:
    """How many nodes of a compiled OpenVINO model run which kernel (`primitiveType` with its
    precision, e.g. `brgemm_avx512_amx_bf16`, `jit_avx2_f32`): what an ISA cap really did."""
    compiled = getattr(module, "compiled", None)
    if compiled is None:
        return None
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kernel = info["primitiveType"].astype(str) if "primitiveType" in info else "unknown"
        if not kernel.startswith("unknown"):  # inputs, constants, reshapes: no kernel
            counts[kernel] = counts.get(kernel, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _click_latency(
    predictor: SamPredictor, prompts: tuple[Prompt, ...], image: np.ndarray, clicks: int
) -> dict[str, float]:
    """Decoder-only and decoder + overlay times in ms over `clicks` alternating prompts."""
    from spinalsam.prompts import PromptSet
    from spinalsam.render import compose_view
    from spinalsam.sam.fidelity import decode_prompt

    decode_ms, click_ms, click_cpu_ms = [], [], []
    for i in range(clicks):
        prompt = prompts[i % len(prompts)]
        t0, c0 = time.perf_counter(), time.process_time()
        mask = decode_prompt(predictor, prompt)
        t1 = time.perf_counter()
        compose_view(image[:, :, 0], mask.astype(np.uint8), PromptSet())  # what the UI draws
        t2, c2 = time.perf_counter(), time.process_time()
        decode_ms.append((t1 - t0) * 1e3)
        click_ms.append((t2 - t0) * 1e3)
        click_cpu_ms.append((c2 - c0) * 1e3)
    stats = {
        "decoder_p50_ms": _percentile(decode_ms, 50),
        "decoder_p95_ms": _percentile(decode_ms, 95),
        "click_overlay_p50_ms": _percentile(click_ms, 50),
        "click_overlay_p95_ms": _percentile(click_ms, 95),
        "click_overlay_cpu_p50_ms": _percentile(click_cpu_ms, 50),
    }
    return {k: round(v, 1) for k, v in stats.items()}


def worker(args: argparse.Namespace) -> dict[str, object]:
    """Build the seeded model, apply one method, and time it; runs inside a subprocess.

    torch and SpinalSAM are imported here, not at module level, so the parent process that only
    orchestrates stays small and never initialises torch's thread pools.
    """
    import torch
    from segment_anything import SamPredictor

    from spinalsam.sam.fast import configure_threads, optimize_encoder, settle_threads
    from spinalsam.sam.fast_decoder import optimize_decoder, wants_fast_decoder
    from spinalsam.sam.fidelity import (
        mask_agreement,
        random_sam,
        synthetic_vertebra,
        vertebra_prompts,
    )

    threads = configure_threads(args.threads)
    sam = random_sam(args.model, seed=0)
    t0 = time.perf_counter()
    applied = optimize_encoder(sam, args.method, Path(args.cache_dir))
    fast_decoder = bool(args.method) and (
        args.decoder == "openvino"
        or (args.decoder == "auto" and wants_fast_decoder(sam.device, applied))
    )
    if fast_decoder:  # what the app serves clicks with (spinalsam.sam.loader)
        optimize_decoder(sam, Path(args.cache_dir))
    torch_threads = settle_threads(applied)  # as the app does
    setup_s = time.perf_counter() - t0
    result: dict[str, object] = {"method": args.method or "reference", "threads": threads}
    result["decoder"] = "openvino" if fast_decoder else "pytorch"
    result["torch_threads_serving"] = torch_threads
    result["setup_s"] = round(setup_s, 3)
    for part in ("image_encoder", "mask_decoder"):
        kernels = _openvino_kernels(getattr(sam, part))
        if kernels is not None:
            result[f"openvino_kernels_{part}"] = kernels
    if args.prepare_only:  # ONNX export / quantization, kept out of the serving process's RSS
        result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        return result

    predictor = SamPredictor(sam)
    image = synthetic_vertebra(args.size)
    times, cpu_times = [], []
    with torch.inference_mode():
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            predictor.set_image(image)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        prompts = vertebra_prompts(args.size)
        result.update(_click_latency(predictor, prompts, image, args.clicks))
        if applied:
            reference = torch.load(args.reference, weights_only=True)
            fidelity = mask_agreement(predictor, reference, predictor.features, prompts)
            result.update(fidelity.as_dict())
        else:
            torch.save(predictor.features, args.reference)
    result["embed_s"] = [round(t, 3) for t in times]
    result["embed_median_s"] = round(_percentile(times, 50), 3)
    # CPU seconds of all this process's threads: stable when other jobs share the cores, and
    # about `threads` x the wall time on a quiet machine.
    result["embed_cpu_median_s"] = round(_percentile(cpu_times, 50), 3)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


def _run_worker(args: argparse.Namespace, method: str, prepare_only: bool = False) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--method",
        method,
        "--model",
        args.model,
        "--size",
        str(args.size),
        "--repeats",
        str(args.repeats),
        "--clicks",
        str(args.clicks),
        "--cache-dir",
        args.cache_dir,
        "--reference",
        args.reference,
        "--decoder",
        args.decoder,
    ]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--prepare-only"] if prepare_only else []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=WORKER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return {"method": method, "error": f"timed out after {WORKER_TIMEOUT_S} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"method": method, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="vit_b", choices=["vit_b", "vit_l", "vit_h", "vit_tiny", "mobile_sam"]
    )
    parser.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help="comma-separated, e.g. reference,sdpa,int8 (the reference always runs)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed set_image calls per method")
    parser.add_argument("--clicks", type=int, default=20, help="timed clicks per method")
    parser.add_argument("--size", type=int, default=512, help="slice size in pixels")
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: all cores)"
    )
    parser.add_argument("--cache-dir", default=None, help="ONNX cache (default: fresh temp dir)")
    parser.add_argument(
        "--decoder",
        default="auto",
        choices=["auto", "pytorch", "openvino"],
        help="click decoder of the optimized methods (auto: as the app, OpenVINO with any "
        "speed-up on the CPU; the reference always uses SAM's own)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="", help=argparse.SUPPRESS)
    parser.add_argument("--reference", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return

    with tempfile.TemporaryDirectory(prefix="spinalsam-bench-") as tmp:
        args.cache_dir = args.cache_dir or tmp
        args.reference = str(Path(tmp) / "reference.pt")
        started = time.perf_counter()
        load_at_start = round(os.getloadavg()[0], 2)
        reference = _run_worker(args, "")
        print(f"[bench] {json.dumps(reference)}", file=sys.stderr, flush=True)
        runs = []
        # The reference always runs first (every error is measured against its embedding).
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        for method in [m for m in methods if m != "reference"]:
            exported = "onnx" in method or "openvino" in method or args.decoder != "pytorch"
            prepared = _run_worker(args, method, prepare_only=True) if exported else None
            run = _run_worker(args, method)
            if prepared is not None:
                run["export"] = prepared
            for key in ("embed_median_s", "embed_cpu_median_s"):
                if key in run and key in reference:
                    name = "speedup" if key == "embed_median_s" else "speedup_cpu"
                    run[name] = round(reference[key] / run[key], 2)
            print(f"[bench] {json.dumps(run)}", file=sys.stderr, flush=True)
            runs.append(run)
    report = {
        "model": args.model,
        "threads": args.threads or len(os.sched_getaffinity(0)),
        "size": args.size,
        "repeats": args.repeats,
        "cpu_count": len(os.sched_getaffinity(0)),
        "load_avg_1m": [load_at_start, round(os.getloadavg()[0], 2)],  # at start, at end
        "cpu": _cpu_description(),
        "reference": reference,
        "methods": runs,
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
