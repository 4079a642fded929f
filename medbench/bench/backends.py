"""Inference backends, one registry: the same network prepared by each runtime and precision.

Every backend turns a PyTorch model (eval mode, on the CPU) and an example
input of a fixed shape ``(N, C, i, j, k)`` into a :class:`Prepared` predictor:
a callable taking a float32 CPU tensor of that shape and returning float32
CPU logits. The predictor hides the runtime (torch, ONNX Runtime, OpenVINO,
TensorRT) so the harness times and checks every backend the same way.

=========================  ==========  =========  ======  ==================================================
name                       runtime     precision  device  how
=========================  ==========  =========  ======  ==================================================
``eager_fp32``             torch       fp32       cpu     the model as it is (the reference)
``eager_bf16``             torch       bf16       cpu     ``torch.autocast("cpu", bfloat16)``; only where the
                                                          CPU computes bf16 natively (AVX512-BF16 / AMX)
``torchscript``            torch       fp32       cpu     ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``
``torch_compile``          torch       fp32       cpu     ``torch.compile`` (inductor; needs a C++ compiler)
``onnxruntime_fp32``       onnxruntime fp32       cpu     ONNX export (dynamo exporter, legacy fallback), CPU EP
``onnxruntime_int8_dynamic`` onnxruntime int8     cpu     ``quantize_dynamic`` (weights int8, activations at run time)
``onnxruntime_int8_static``  onnxruntime int8     cpu     ``quantize_static`` QDQ, per-channel, calibrated
``openvino_fp32``          openvino    fp32       cpu     ``openvino.convert_model`` from torch, f32 inference
``openvino_int8``          openvino    int8       cpu     NNCF post-training quantisation, calibrated
``cuda_eager_fp32``        torch       fp32       cuda    the model on the GPU
``cuda_amp_fp16``/``bf16`` torch       fp16/bf16  cuda    ``torch.autocast("cuda", ...)``
``cuda_compile``           torch       fp32       cuda    ``torch.compile`` on the GPU
``onnxruntime_cuda``       onnxruntime fp32       cuda    CUDA execution provider
``onnxruntime_tensorrt``   onnxruntime fp16       cuda    TensorRT execution provider (fp16 enabled)
``tensorrt_fp32``/``fp16`` tensorrt    fp32/fp16  cuda    Torch-TensorRT (dynamo)
``tensorrt_int8``          tensorrt    int8       cuda    Torch-TensorRT with NVIDIA ModelOpt PTQ (calibrated)
=========================  ==========  =========  ======  ==================================================

:func:`unavailable` says why a backend cannot run here (a missing library,
no GPU, no C++ compiler, no native bf16) — the harness writes that reason in
the backend's row instead of failing. Calibration data for the INT8
backends is a list of real input tensors of the example's shape (the
harness uses training patches, never the test cases it scores).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medbench.errors import ConfigError

Predict = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass
class Context:
    """What building a backend may use: threads, calibration inputs, a scratch folder, a shared ONNX cache."""

    threads: int = 1
    calibration: Sequence[torch.Tensor] = ()
    workdir: Path | None = None
    onnx_opset: int = 18
    _onnx: dict[tuple[int, tuple[int, ...]], tuple[Path, str]] = dataclasses.field(default_factory=dict)

    def scratch(self) -> Path:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="medbench-backends-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir


@dataclasses.dataclass
class Prepared:
    """A built backend: ``predict(x)`` -> logits (float32, CPU), the build seconds and notes (e.g. the exporter used)."""

    predict: Predict
    build_s: float
    notes: str = ""
    synchronize: Callable[[], None] | None = None


@dataclasses.dataclass(frozen=True)
class Backend:
    """One registry entry (see the module table)."""

    name: str
    runtime: str
    precision: str
    device: str
    description: str
    requires: tuple[str, ...]
    build: Callable[[torch.nn.Module, torch.Tensor, Context], tuple[Predict, str]]
    check: Callable[[], str | None] = lambda: None

    @property
    def int8(self) -> bool:
        return self.precision == "int8"


# -- availability -------------------------------------------------------------------------------------
def _missing(modules: Sequence[str]) -> str | None:
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        return f"{', '.join(absent)} not installed"
    return None


def _no_cuda() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA device"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (oneDNN's check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_bf16() -> str | None:
    if os.environ.get("MEDBENCH_FORCE_CPU_BF16") or cpu_has_native_bf16():
        return None
    return ("CPU has no native bf16 (no AVX512-BF16/AMX): autocast emulates it, ~25x slower than fp32 "
            "(set MEDBENCH_FORCE_CPU_BF16=1 to time it anyway)")


def compiler_problem() -> str | None:
    """Why torch.compile's inductor cannot build CPU kernels here (None when a C++ compiler is found)."""
    cxx = os.environ.get("CXX") or next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
    if cxx is None or (os.path.sep in cxx and not Path(cxx).exists()):
        return "no C++ compiler found (inductor compiles CPU kernels with g++/clang++)"
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    return None


def _ort_provider(provider: str) -> Callable[[], str | None]:
    def check() -> str | None:
        missing = _missing(["onnxruntime", "onnx"])
        if missing:
            return missing
        import onnxruntime as ort

        if provider not in ort.get_available_providers():
            return f"onnxruntime has no {provider} (installed: {', '.join(ort.get_available_providers())})"
        return _no_cuda() if provider != "CPUExecutionProvider" else None

    return check


def _all(*checks: Callable[[], str | None]) -> Callable[[], str | None]:
    def check() -> str | None:
        return next((r for r in (c() for c in checks) if r), None)

    return check


def _needs(*modules: str) -> Callable[[], str | None]:
    return lambda: _missing(modules)


# -- torch backends -------------------------------------------------------------------------------------
def _eager(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x).float()

    return predict, ""


def _eager_autocast(device: str, dtype: torch.dtype) -> Callable[[torch.nn.Module, torch.Tensor, Context], tuple[Predict, str]]:
    def build(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
        net = model.to(device) if device != "cpu" else model

        def predict(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(device, dtype=dtype):
                return net(x.to(device)).float().cpu()

        return predict, f"autocast {dtype}"

    return build


def _cuda_eager(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
    import copy

    net = copy.deepcopy(model).cuda().eval()

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(x.cuda()).float().cpu()

    return predict, torch.cuda.get_device_name(0)


def _torchscript(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return frozen(x).float()

    predict(example)  # the first calls run the profiling executor's optimisation passes
    predict(example)
    return predict, "trace + freeze + optimize_for_inference"


def _compile(device: str) -> Callable[[torch.nn.Module, torch.Tensor, Context], tuple[Predict, str]]:
    def build(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
        import copy

        net = copy.deepcopy(model).to(device).eval()
        compiled = torch.compile(net, backend="inductor", dynamic=False)

        def predict(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return compiled(x.to(device)).float().cpu()

        with _deterministic_off():  # inductor refuses some kernels under deterministic mode
            predict(example)  # compiles
        return predict, "inductor, static shapes"

    return build


@contextmanager
def _deterministic_off() -> Iterator[None]:
    was = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)


# -- ONNX export + ONNX Runtime ----------------------------------------------------------------------------
def export_onnx(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Path, str]:
    """The model as ONNX (cached per model and shape): the dynamo exporter, else the legacy TorchScript one."""
    key = (id(model), tuple(example.shape))
    if key in ctx._onnx and ctx._onnx[key][0].exists():
        return ctx._onnx[key]
    path = ctx.scratch() / f"model_{len(ctx._onnx)}.onnx"
    errors = []
    how = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dynamo in (True, False):
            if dynamo and _missing(["onnxscript"]):
                errors.append("dynamo exporter: onnxscript not installed")
                continue
            try:
                extra: dict[str, Any] = {"external_data": False, "optimize": True} if dynamo else {}
                with torch.no_grad(), _quiet_export():
                    torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                                      opset_version=ctx.onnx_opset, dynamo=dynamo, **extra)
                how = "dynamo exporter" if dynamo else "legacy exporter"
                break
            except Exception as exc:  # the fallback is the point
                errors.append(f"{'dynamo' if dynamo else 'legacy'} exporter: {type(exc).__name__}: {exc}"[:300])
    if not how:
        raise RuntimeError("ONNX export failed: " + "; ".join(errors))
    ctx._onnx[key] = (path, how)
    return path, how


@contextmanager
def _quiet_export() -> Iterator[None]:
    import logging

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch._dynamo", "torch.export", "nncf")]
    loggers.append(logging.getLogger())
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextmanager
def _quiet_rich() -> Iterator[None]:
    """NNCF draws rich progress bars: in a notebook they become ipywidgets outputs; send them nowhere instead."""
    try:
        import rich
        import rich.console
    except ImportError:
        yield
        return
    import io

    previous = rich._console
    rich._console = rich.console.Console(file=io.StringIO(), force_jupyter=False, force_terminal=False)
    try:
        yield
    finally:
        rich._console = previous


def _ort_session(path: Path, ctx: Context, providers: Sequence[Any]) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = ctx.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))


def _ort_predict(session: Any) -> Predict:
    name = session.get_inputs()[0].name

    def predict(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {name: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    return predict


def _onnxruntime(providers: Sequence[Any]) -> Callable[[torch.nn.Module, torch.Tensor, Context], tuple[Predict, str]]:
    def build(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
        path, how = export_onnx(model, example, ctx)
        session = _ort_session(path, ctx, providers)
        return _ort_predict(session), f"{how}; providers {session.get_providers()[0]}"

    return build


def _ort_int8_dynamic(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path, how = export_onnx(model, example, ctx)
    out = path.with_name(path.stem + "_int8_dynamic.onnx")
    pre = _ort_preprocess(path)
    # ConvInteger (the dynamic Conv kernel) exists for uint8 weights on the CPU provider
    quantize_dynamic(str(pre), str(out), weight_type=QuantType.QUInt8)
    return _ort_predict(_ort_session(out, ctx, ["CPUExecutionProvider"])), f"{how}; quantize_dynamic (uint8 weights)"


def _ort_preprocess(path: Path) -> Path:
    """ONNX Runtime's recommended pre-processing before quantisation (shape inference + graph optimisation)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = path.with_name(path.stem + "_pre.onnx")
    if not out.exists():
        try:
            quant_pre_process(str(path), str(out), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantise the export as it is
            shutil.copyfile(path, out)
    return out


def _ort_int8_static(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if not ctx.calibration:
        raise ConfigError("onnxruntime_int8_static needs calibration inputs")
    path, how = export_onnx(model, example, ctx)
    pre = _ort_preprocess(path)
    out = path.with_name(path.stem + "_int8_static.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self, batches: Sequence[torch.Tensor]) -> None:
            self.items = iter([{"input": b.numpy().astype(np.float32)} for b in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with _quiet_export():  # the quantiser logs per-weight notes on the root logger
        quantize_static(str(pre), str(out), Reader(ctx.calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return (_ort_predict(_ort_session(out, ctx, ["CPUExecutionProvider"])),
            f"{how}; quantize_static QDQ per-channel, {len(ctx.calibration)} calibration inputs")


# -- OpenVINO ------------------------------------------------------------------------------------------------
def _openvino_model(model: torch.nn.Module, example: torch.Tensor) -> Any:
    import openvino as ov

    with torch.no_grad(), warnings.catch_warnings(), _quiet_export():
        warnings.simplefilter("ignore")
        return ov.convert_model(model, example_input=example)


def _openvino_compile(ov_model: Any, ctx: Context) -> Predict:
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": ctx.threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    compiled = ov.Core().compile_model(ov_model, "CPU", config)
    request = compiled.create_infer_request()

    def predict(x: torch.Tensor) -> torch.Tensor:
        out = request.infer({0: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})
        return torch.from_numpy(np.array(out[compiled.output(0)], dtype=np.float32))

    return predict


def _openvino_fp32(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
    return _openvino_compile(_openvino_model(model, example), ctx), "convert_model from torch; f32 precision hint"


def _openvino_int8(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
    import logging

    import nncf

    if not ctx.calibration:
        raise ConfigError("openvino_int8 needs calibration inputs")
    ov_model = _openvino_model(model, example)
    items = [b.numpy().astype(np.float32) for b in ctx.calibration]
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _quiet_export(), _quiet_rich():
            warnings.simplefilter("ignore")
            quantized = nncf.quantize(ov_model, nncf.Dataset(items), subset_size=len(items))
    finally:
        nncf_log.setLevel(level)
    return _openvino_compile(quantized, ctx), f"NNCF post-training quantisation, {len(items)} calibration inputs"


# -- TensorRT ------------------------------------------------------------------------------------------------
def _tensorrt(precision: str) -> Callable[[torch.nn.Module, torch.Tensor, Context], tuple[Predict, str]]:
    def build(model: torch.nn.Module, example: torch.Tensor, ctx: Context) -> tuple[Predict, str]:
        import copy

        import torch_tensorrt

        net = copy.deepcopy(model).cuda().eval()
        dtypes = {"fp32": {torch.float32}, "fp16": {torch.float16, torch.float32}, "int8": {torch.int8, torch.float32}}
        if precision == "int8":  # Torch-TensorRT's INT8 path: quantise with NVIDIA ModelOpt, calibrated, then compile
            import modelopt.torch.quantization as mtq

            def loop(m: torch.nn.Module) -> None:
                for batch in ctx.calibration:
                    m(batch.cuda())

            net = mtq.quantize(net, mtq.INT8_DEFAULT_CFG, forward_loop=loop)
        trt = torch_tensorrt.compile(net, ir="dynamo", inputs=[example.cuda()], enabled_precisions=dtypes[precision])

        def predict(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return trt(x.cuda()).float().cpu()

        return predict, f"Torch-TensorRT {torch_tensorrt.__version__}"

    return build


def _cuda_sync() -> None:
    torch.cuda.synchronize()


# -- the registry ---------------------------------------------------------------------------------------------
_ORT = ("onnxruntime", "onnx")
_CPU = ["CPUExecutionProvider"]

BACKENDS: dict[str, Backend] = {b.name: b for b in [
    Backend("eager_fp32", "torch", "fp32", "cpu", "PyTorch eager (the reference)", (), _eager),
    Backend("eager_bf16", "torch", "bf16", "cpu", "PyTorch eager under CPU bf16 autocast", (),
            _eager_autocast("cpu", torch.bfloat16), _cpu_bf16),
    Backend("torchscript", "torch", "fp32", "cpu", "TorchScript trace, frozen", (), _torchscript),
    Backend("torch_compile", "torch", "fp32", "cpu", "torch.compile (inductor)", (), _compile("cpu"), compiler_problem),
    Backend("onnxruntime_fp32", "onnxruntime", "fp32", "cpu", "ONNX Runtime, CPU provider", _ORT,
            _onnxruntime(_CPU), _ort_provider("CPUExecutionProvider")),
    Backend("onnxruntime_int8_dynamic", "onnxruntime", "int8", "cpu", "ONNX Runtime dynamic INT8", _ORT,
            _ort_int8_dynamic, _ort_provider("CPUExecutionProvider")),
    Backend("onnxruntime_int8_static", "onnxruntime", "int8", "cpu", "ONNX Runtime static INT8 (QDQ, calibrated)",
            _ORT, _ort_int8_static, _ort_provider("CPUExecutionProvider")),
    Backend("openvino_fp32", "openvino", "fp32", "cpu", "OpenVINO FP32", ("openvino",), _openvino_fp32,
            _needs("openvino")),
    Backend("openvino_int8", "openvino", "int8", "cpu", "OpenVINO INT8 (NNCF PTQ, calibrated)", ("openvino", "nncf"),
            _openvino_int8, _needs("openvino", "nncf")),
    Backend("cuda_eager_fp32", "torch", "fp32", "cuda", "PyTorch eager on the GPU", (), _cuda_eager, _no_cuda),
    Backend("cuda_amp_fp16", "torch", "fp16", "cuda", "PyTorch eager, CUDA fp16 autocast", (),
            _eager_autocast("cuda", torch.float16), _no_cuda),
    Backend("cuda_amp_bf16", "torch", "bf16", "cuda", "PyTorch eager, CUDA bf16 autocast", (),
            _eager_autocast("cuda", torch.bfloat16),
            lambda: _no_cuda() or (None if torch.cuda.is_bf16_supported() else "GPU has no bf16")),
    Backend("cuda_compile", "torch", "fp32", "cuda", "torch.compile (inductor) on the GPU", (), _compile("cuda"),
            _all(_no_cuda, _needs("triton"))),
    Backend("onnxruntime_cuda", "onnxruntime", "fp32", "cuda", "ONNX Runtime, CUDA provider", _ORT,
            _onnxruntime(["CUDAExecutionProvider"]), _ort_provider("CUDAExecutionProvider")),
    Backend("onnxruntime_tensorrt", "onnxruntime", "fp16", "cuda", "ONNX Runtime, TensorRT provider (fp16)", _ORT,
            _onnxruntime([("TensorrtExecutionProvider", {"trt_fp16_enable": True}), "CUDAExecutionProvider"]),
            _ort_provider("TensorrtExecutionProvider")),
    Backend("tensorrt_fp32", "tensorrt", "fp32", "cuda", "Torch-TensorRT FP32", ("torch_tensorrt",), _tensorrt("fp32"),
            _all(_needs("torch_tensorrt"), _no_cuda)),
    Backend("tensorrt_fp16", "tensorrt", "fp16", "cuda", "Torch-TensorRT FP16", ("torch_tensorrt",), _tensorrt("fp16"),
            _all(_needs("torch_tensorrt"), _no_cuda)),
    Backend("tensorrt_int8", "tensorrt", "int8", "cuda", "Torch-TensorRT INT8 (ModelOpt PTQ, calibrated)",
            ("torch_tensorrt", "modelopt"), _tensorrt("int8"), _all(_needs("torch_tensorrt", "modelopt"), _no_cuda)),
]}

#: The reference every other backend is compared against (speed and agreement).
REFERENCE = "eager_fp32"


def names(spec: str | Sequence[str] = "all") -> list[str]:
    """Backend names from ``"all"``, ``"cpu"``, ``"gpu"``, a comma-separated string or a list (unknown names fail)."""
    if isinstance(spec, str):
        if spec == "all":
            return list(BACKENDS)
        if spec in ("cpu", "gpu"):
            device = "cpu" if spec == "cpu" else "cuda"
            return [n for n, b in BACKENDS.items() if b.device == device]
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in spec if s not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown backend(s) {unknown}; available: all, cpu, gpu, {', '.join(BACKENDS)}")
    out = list(dict.fromkeys(spec))
    return out if REFERENCE in out else [REFERENCE, *out]


def unavailable(name: str | Backend) -> str | None:
    """Why backend ``name`` cannot run here, or None when it can."""
    backend = BACKENDS[name] if isinstance(name, str) else name
    return _missing(backend.requires) or backend.check()


def prepare(backend: str | Backend, model: torch.nn.Module, example: torch.Tensor, ctx: Context | None = None) -> Prepared:
    """Build ``backend`` for ``model`` at the shape of ``example`` (CPU float32); raises if it is unavailable."""
    b = BACKENDS[backend] if isinstance(backend, str) else backend
    reason = unavailable(b)
    if reason:
        raise ConfigError(f"backend {b.name} is unavailable: {reason}")
    ctx = ctx or Context(threads=torch.get_num_threads())
    model = model.eval()
    example = example.detach().float().cpu().contiguous()
    start = time.perf_counter()
    predict, notes = b.build(model, example, ctx)
    build_s = time.perf_counter() - start
    return Prepared(predict, build_s, notes, _cuda_sync if b.device == "cuda" else None)


__all__ = ["BACKENDS", "REFERENCE", "Backend", "Context", "Prepared", "compiler_problem", "cpu_has_native_bf16",
           "export_onnx", "names", "prepare", "unavailable"]
