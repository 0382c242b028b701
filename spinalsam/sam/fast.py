"""Make SAM's image encoder fast enough for a new slice on a small CPU, without changing masks.

A click only runs SAM's light prompt decoder (tens of ms); the cost a user feels is the ViT image
encoder, which runs once per new slice. This module swaps in faster but numerically equivalent
ways of running that encoder; `spinalsam.sam.fidelity` measures how far each one drifts from
the fp32 reference so that callers pick only Dice-preserving speed-ups (docs/speed.md).

Methods (combine with "+", e.g. "sdpa+int8"):

* ``sdpa``: fused ``scaled_dot_product_attention`` with the decomposed relative-position bias as
  ``attn_mask``; exact up to float rounding.
* ``int8``: dynamic int8 quantization of the encoder's Linear layers (CPU).
* ``onnx`` / ``onnx-int8``: the encoder exported to ONNX and run by ONNX Runtime (CPU), the
  second with ONNX Runtime's dynamic int8 weight quantization.
* ``openvino`` / ``openvino-int8``: the encoder converted to OpenVINO IR and compiled for the CPU
  with fp32 inference precision, the second with NNCF's INT8_ASYM weight compression
  (int8 weights; OpenVINO's CPU plugin then quantizes activations per call to use VNNI).
  With ``+bf16`` OpenVINO runs in bfloat16 inference precision (CPU with native bf16).
* ``bf16``: bfloat16 autocast (GPU; on CPU only where the CPU has native bf16).
* ``compile``: ``torch.compile`` (GPU only: on CPU the first compile costs minutes).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.modeling.image_encoder import Attention, get_rel_pos
from torch import nn

from spinalsam.sam.methods import RUNTIMES, FastEncoderError, parse_methods

__all__ = [
    "SdpaAttention",
    "auto_method",
    "build_mobile_sam",
    "cached_export",
    "configure_threads",
    "default_cache_dir",
    "optimize_encoder",
    "settle_threads",
]

ONNX_OPSET = 17
# Largest attention bias materialised at once (float32 elements, 128 MiB). ViT-B's global blocks
# would otherwise need a 12 x 4096 x 4096 bias (805 MB) per call, which blows the RSS budget.
_MAX_BIAS_ELEMENTS = 1 << 25


def configure_threads(num_threads: int | None = None) -> int:
    """Use every core for intra-op work and one inter-op thread.

    SAM's encoder is one long chain of big matmuls, so inter-op parallelism only oversubscribes
    the cores; intra-op threads are where the speed is.
    """
    n = num_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    # Only settable before the first parallel op; harmless if a caller already fixed it.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return n


def settle_threads(methods: tuple[str, ...]) -> int:
    """torch's intra-op threads once `methods` are applied: 1 when another runtime encodes.

    ONNX Runtime and OpenVINO size their own thread pools when the encoder is compiled, after
    which torch only runs a click's small ops (prompt encoding, positional encoding, mask
    upscaling, CBAM). There a second thread saves nothing and costs a sync per op: on 2 shared
    cores under the AVX2 emulation those ops took 78 CPU ms per click on 2 threads and 5.5 on 1
    (docs/speed.md). Returns the threads now in use.
    """
    if any(m in RUNTIMES for m in methods):
        torch.set_num_threads(1)
    return torch.get_num_threads()


# --------------------------------------------------------------------------- SDPA attention


def _rel_pos_terms(
    attn: Attention, q: torch.Tensor, h: int, w: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decomposed relative-position terms exactly as `add_decomposed_rel_pos` builds them."""
    rh = get_rel_pos(h, h, attn.rel_pos_h)
    rw = get_rel_pos(w, w, attn.rel_pos_w)
    r_q = q.reshape(q.shape[0], h, w, q.shape[-1])
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh.to(q.dtype))
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw.to(q.dtype))
    return rel_h.reshape(q.shape[0], h * w, h), rel_w.reshape(q.shape[0], h * w, w)


class SdpaAttention(Attention):
    """segment_anything's Attention, computed by the fused SDPA kernel.

    Installed by swapping `__class__` on existing instances, so weights, LoRA wrappers on
    `qkv`/`proj` and state-dict keys stay exactly as they were. The relative-position bias
    rel_h[q, kh] + rel_w[q, kw] goes in as an additive `attn_mask`; long (global) sequences are
    split into query chunks so the bias never exceeds `_MAX_BIAS_ELEMENTS`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        n = h * w
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, C) each
        if not self.use_rel_pos:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            rel_h, rel_w = _rel_pos_terms(self, q.reshape(b * self.num_heads, n, -1), h, w)
            rel_h = rel_h.view(b, self.num_heads, n, h, 1)
            rel_w = rel_w.view(b, self.num_heads, n, 1, w)
            step = max(1, _MAX_BIAS_ELEMENTS // (b * self.num_heads * n))
            chunks = []
            for i in range(0, n, step):
                bias = (rel_h[:, :, i : i + step] + rel_w[:, :, i : i + step]).flatten(3)
                chunks.append(
                    F.scaled_dot_product_attention(
                        q[:, :, i : i + step], k, v, attn_mask=bias.to(q.dtype)
                    )
                )
            out = chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=2)
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def _use_sdpa(encoder: nn.Module) -> int:
    """Swap every segment_anything Attention to SdpaAttention; returns how many were swapped."""
    swapped = 0
    for module in encoder.modules():
        if type(module) is Attention:
            module.__class__ = SdpaAttention
            swapped += 1
    return swapped


# --------------------------------------------------------------------------- int8 / bf16 / compile


def _quantize_int8(encoder: nn.Module) -> None:
    """Dynamic int8 Linear layers: weights stored int8, activations quantized per call (CPU)."""
    from torch.ao.quantization import quantize_dynamic

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's migration notice to torchao; API still works
        quantize_dynamic(encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)


class AutocastEncoder(nn.Module):
    """Runs the wrapped encoder under bf16 autocast and hands SAM's decoder fp32 features."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.img_size = encoder.img_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            return self.encoder(x).float()


def _bf16_supported(device: torch.device) -> bool:
    """A GPU with bf16, or a CPU with native bf16 whose kernels torch may use at AVX-512 level.

    Every CPU with native bf16 arithmetic has AVX-512 (or AMX), so torch's kernel level below
    AVX512 (`ATEN_CPU_CAPABILITY=avx2`, part of how a CPU without bf16 is emulated,
    docs/speed.md) counts as no bf16: OpenVINO's bf16 compile fails under that emulation and
    torch's bf16 runs 5-9x slower.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and _cpu_has("bf16")
        and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    )


def _cpu_has(flag: str) -> bool:
    """Whether /proc/cpuinfo lists a feature containing `flag` (e.g. avx512_bf16, amx_bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(
        flag in f for line in flags.splitlines() if line.startswith("flags") for f in line.split()
    )


# --------------------------------------------------------------------------- ONNX Runtime


class OnnxEncoder(nn.Module):
    """Drop-in for `sam.image_encoder` backed by an ONNX Runtime session (CPU).

    Replacing the torch encoder also frees its weights, which is most of SAM's memory.
    """

    def __init__(self, path: Path, img_size: int, num_threads: int) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Without the arena and memory-pattern pre-planning, ViT-B peaks ~1 GB lower
        # (2.96 -> 1.90 GB fp32, 2.52 -> 1.42 GB int8) at the same speed: one call per slice
        # gains nothing from keeping every intermediate buffer alive.
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.img_size = img_size
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_np = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (out,) = self.session.run(None, {self.input_name: x_np})
        return torch.from_numpy(out).to(x.device)


def default_cache_dir(root: str | Path | None = None) -> Path:
    """Where exported ONNX/OpenVINO encoders live: `root/onnx` (SPINALSAM_CACHE), else
    ~/.cache/spinalsam/onnx.

    One folder per export, keyed by a hash of the weights, so both runtimes share it.
    """
    return (Path(root) if root else Path.home() / ".cache" / "spinalsam") / "onnx"


def _weights_key(encoder: nn.Module, extra: str) -> str:
    """Content hash of the encoder, so a re-trained LoRA never reuses a stale export."""
    digest = hashlib.sha256(f"{extra}|{torch.__version__}|{ONNX_OPSET}".encode())
    for name, tensor in encoder.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def _export_onnx(encoder: nn.Module, cache_dir: Path, quantize: bool) -> Path:
    """Export once per weights (fp32, opset >= 17), optionally int8-quantize, and cache.

    Each artefact is its own folder, so the external weight files of >2 GB models (ViT-H) never
    mix between models; it is written under a temporary name and renamed only when complete, so
    an interrupted export is never picked up.
    """
    try:
        import onnx  # noqa: F401  (torch's exporter and the quantizer both need it)
    except ImportError as err:
        raise FastEncoderError("onnx: install the 'onnx' package to export the encoder") from err
    # Without VNNI, ONNX Runtime's u8s8 kernels add pairs of 8-bit products in int16, which
    # saturates (rel. L2 0.091 instead of 0.005 on a tiny SAM, AMD EPYC/AVX2); 7-bit weights keep
    # every pair sum below 2^15, at a small cost in precision.
    reduce_range = not _cpu_has("vnni")
    return cached_export(
        encoder,
        cache_dir / "encoder",
        "",
        export=partial(_torch_export, encoder),
        derive=partial(_quantize_onnx, reduce_range=reduce_range) if quantize else None,
        filename="encoder.onnx",
        what="export the image encoder to ONNX",
        int8_tag="-w7" if reduce_range else "",
    )


def cached_export(
    encoder: nn.Module,
    stem: Path,
    key_extra: str,
    export: Callable[[Path], None],
    derive: Callable[[Path, Path], None] | None,
    filename: str,
    what: str,
    int8_tag: str = "",
) -> Path:
    """Build the fp32 artefact of `encoder` (any module: the image encoder or the mask decoder)
    once per weights, and its int8 variant when `derive` is given (`int8_tag` naming how it was
    quantized).

    Artefacts are folders named by a hash of the weights and attention kind, built under a
    temporary name and renamed when complete, so an interrupted build is never picked up.
    """
    kinds = ",".join(
        sorted(type(m).__name__ for m in encoder.modules() if isinstance(m, Attention))
    )
    fp32 = stem.with_name(f"{stem.name}-{_weights_key(encoder, kinds + key_extra)}")
    int8 = fp32.with_name(fp32.name + int8_tag + "-int8")
    try:
        _build_once(fp32, export)
        if derive is not None:
            _build_once(int8, partial(derive, fp32 / filename))
    except FastEncoderError:
        raise
    except Exception as err:  # exporter/converter failures name graph nodes; say what failed
        raise FastEncoderError(f"could not {what}: {err}") from err
    return (int8 if derive is not None else fp32) / filename


def _build_once(folder: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp_folder)` and rename it to `folder`, unless `folder` already exists."""
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        write(tmp)
        tmp.rename(folder)
    except OSError:
        if not folder.is_dir():  # not just another process finishing the same export first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _torch_export(encoder: nn.Module, folder: Path) -> None:
    dummy = torch.zeros(1, 3, encoder.img_size, encoder.img_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript-exporter deprecation and tracer notes
        torch.onnx.export(
            encoder.cpu().eval(),
            (dummy,),
            str(folder / "encoder.onnx"),
            input_names=["image"],
            output_names=["embedding"],
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def _quantize_onnx(source: Path, folder: Path, reduce_range: bool = False) -> None:
    """ONNX Runtime dynamic quantization: int8 weights per channel (7-bit with `reduce_range`),
    activations per call.

    Only MatMul/Gemm (the transformer's Linear layers, nearly all the FLOPs) are quantized: the
    few convolutions stay fp32, and TinyViT's folded Conv weights are not initializers anyway.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        folder / "encoder.onnx",
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=reduce_range,
        op_types_to_quantize=["MatMul", "Gemm"],
        use_external_data_format=len(list(source.parent.iterdir())) > 1,
    )


# --------------------------------------------------------------------------- OpenVINO


class OpenVinoEncoder(nn.Module):
    """Drop-in for `sam.image_encoder` backed by an OpenVINO model compiled for the CPU.

    Inference precision is always explicit (f32 unless bf16 is asked for): on CPUs with bf16
    support OpenVINO may otherwise pick bf16 by itself, silently changing the embedding.
    """

    def __init__(self, path: Path, img_size: int, num_threads: int, precision: str = "f32") -> None:
        super().__init__()
        import openvino as ov

        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": num_threads,
            "INFERENCE_PRECISION_HINT": precision,
        }
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.img_size = img_size
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_np = x.detach().to("cpu", torch.float32).contiguous().numpy()
        # A request per call: `compiled(...)` reuses one request, unsafe across the threads of
        # concurrent sessions; its memory is freed with it, as the ONNX session's is (no arena).
        request = self.compiled.create_infer_request()
        out = request.infer([x_np], share_outputs=False)[0]
        return torch.from_numpy(out).to(x.device)


def _export_openvino(encoder: nn.Module, cache_dir: Path, compress: bool) -> Path:
    """Convert once per weights to OpenVINO IR (fp32), optionally int8-compress, and cache.

    Converts from the torch module (traced), so no ONNX export is needed; the SDPA form keeps
    the attention maps chunked, as for ONNX.
    """
    try:
        import openvino as ov
    except ImportError as err:
        raise FastEncoderError("openvino: install the 'openvino' package") from err
    return cached_export(
        encoder,
        cache_dir / "openvino",
        f"|ov{ov.__version__}",
        export=partial(_convert_openvino, encoder),
        derive=_compress_openvino if compress else None,
        filename="encoder.xml",
        what="convert the image encoder to OpenVINO",
    )


def _convert_openvino(encoder: nn.Module, folder: Path) -> None:
    import openvino as ov

    dummy = torch.zeros(1, 3, encoder.img_size, encoder.img_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on SAM's shape arithmetic
        model = ov.convert_model(encoder.cpu().eval(), example_input=dummy)
    model.reshape(list(dummy.shape))  # static shapes: SAM always encodes img_size², batch 1
    ov.save_model(model, folder / "encoder.xml", compress_to_fp16=False)


def _compress_openvino(source: Path, folder: Path) -> None:
    """NNCF INT8_ASYM weight compression: int8 weights per output channel, fp32 activations.

    The IR itself keeps activations fp32; OpenVINO's CPU plugin quantizes them per call
    (dynamic quantization, groups of 32) to use VNNI. That is where the speed comes from
    (without it int8 weights run no faster than fp32) and about a quarter of the error.
    """
    try:
        import nncf
    except ImportError as err:
        raise FastEncoderError("openvino-int8: install the 'nncf' package") from err
    import openvino as ov

    model = nncf.compress_weights(
        ov.Core().read_model(source), mode=nncf.CompressWeightsMode.INT8_ASYM
    )
    ov.save_model(model, folder / "encoder.xml", compress_to_fp16=False)


# --------------------------------------------------------------------------- entry point


# Runtime name -> (export-and-cache function, encoder module that runs the export).
_RUNTIME_BUILDERS: dict[str, tuple[Callable[..., Path], Callable[..., nn.Module]]] = {
    "onnx": (_export_onnx, OnnxEncoder),
    "openvino": (_export_openvino, OpenVinoEncoder),
}


def auto_method(device: torch.device) -> str | None:
    """The default speed-up: measured ≥ 4× on 2 CPU cores with bf16, exact 2× without it.

    GPUs keep the plain encoder until the bf16 / compile paths are measured on one.
    """
    if device.type != "cpu":
        return None
    if importlib.util.find_spec("openvino") is None:
        return "sdpa"
    return "openvino+bf16" if _bf16_supported(device) else "openvino"


def optimize_encoder(sam: Sam, method: str, cache_dir: Path | None = None) -> tuple[str, ...]:
    """Apply the speed-ups named in `method` (e.g. "sdpa+int8") to `sam.image_encoder` in place.

    Returns the methods applied. Merge LoRA adapters first (peft's `merge_and_unload`) so int8
    and ONNX see plain Linear layers. Raises FastEncoderError when a method cannot run here.
    """
    methods = parse_methods(method)
    device = sam.device
    runtime = next((m for m in methods if m in RUNTIMES), None)
    if ("int8" in methods or runtime) and device.type != "cpu":
        raise FastEncoderError(
            "int8, ONNX and OpenVINO speed-ups run on the CPU; move SAM to the CPU first"
        )
    if "compile" in methods and device.type != "cuda":
        raise FastEncoderError("compile needs a GPU: on a CPU the first compile takes minutes")
    if "bf16" in methods and not _bf16_supported(device):
        raise FastEncoderError("bf16 needs a GPU or a CPU with native bfloat16 support")
    sam.eval()
    encoder = sam.image_encoder
    # ONNX/OpenVINO always export the SDPA form: its query chunks bound the attention maps the
    # runtime plans for. The plain form let ORT hold several 805 MB ViT-B maps (7.8 GB peak RSS).
    if ("sdpa" in methods or runtime) and not _use_sdpa(encoder) and "sdpa" in methods:
        raise FastEncoderError("sdpa: the image encoder has no segment_anything attention layers")
    if "int8" in methods:
        _quantize_int8(encoder)
    if "bf16" in methods and not runtime:
        encoder = AutocastEncoder(encoder)
    if "compile" in methods:
        compiled = torch.compile(encoder, mode="max-autotune-no-cudagraphs")
        compiled.img_size = encoder.img_size
        encoder = compiled
    if runtime:
        export, runner = _RUNTIME_BUILDERS[runtime.split("-")[0]]
        if "bf16" in methods:  # parse_methods allows it with OpenVINO only
            runner = partial(runner, precision="bf16")
        path = export(encoder, cache_dir or default_cache_dir(), runtime.endswith("-int8"))
        img_size = encoder.img_size
        # Drop the torch weights before the runtime loads its own copy: halves peak memory.
        sam.image_encoder = encoder = None
        try:
            encoder = runner(path, img_size, torch.get_num_threads())
        except Exception as err:  # a damaged cached export: remove it so a retry re-exports
            shutil.rmtree(path.parent, ignore_errors=True)
            raise FastEncoderError(
                f"could not load the exported encoder ({err}); reload the model to try again"
            ) from err
    sam.image_encoder = encoder
    return methods


def build_mobile_sam(checkpoint: str | Path | None = None) -> Sam:
    """MobileSAM: SAM's own prompt encoder and mask decoder behind the 5.7 M-parameter TinyViT.

    Its encoder is ~60x cheaper than ViT-B's, at some cost in mask quality, so it is the choice
    for a slow CPU. Architecture comes from the `mobilesam-mirror` package (needs `timm`); the
    modules are re-wrapped in segment_anything's `Sam` so `SamPredictor` and the rest of SpinalSAM
    see the usual type. `mobile_sam.pt` loads strictly: any missing or unexpected key is an error.
    """
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FastEncoderError(f"MobileSAM checkpoint not found: {checkpoint}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # timm's notices (old import path, registry names)
            from mobile_sam import sam_model_registry as mobile_registry
    except ImportError as err:
        raise FastEncoderError(
            "MobileSAM needs the 'mobilesam-mirror' and 'timm' packages"
        ) from err
    mobile = mobile_registry["vit_t"](checkpoint=None)
    sam = Sam(
        image_encoder=mobile.image_encoder,
        prompt_encoder=mobile.prompt_encoder,
        mask_decoder=mobile.mask_decoder,
        pixel_mean=mobile.pixel_mean.flatten().tolist(),
        pixel_std=mobile.pixel_std.flatten().tolist(),
    )
    if checkpoint is not None:
        _load_strict(sam, Path(checkpoint))
    # TinyViT caches its attention biases when switched to eval mode, so this must come after
    # loading (upstream's builder calls eval() first and keeps the zero-initialised cache).
    return sam.eval()


def _load_strict(sam: Sam, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        result = sam.load_state_dict(state, strict=False)
    except Exception as err:  # not a torch file, or right keys with wrong shapes
        raise FastEncoderError(f"{path.name} is not a MobileSAM checkpoint: {err}") from err
    if result.missing_keys or result.unexpected_keys:
        raise FastEncoderError(
            f"{path.name} does not match MobileSAM: {len(result.missing_keys)} missing keys "
            f"(e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected keys "
            f"(e.g. {result.unexpected_keys[:3]})"
        )
