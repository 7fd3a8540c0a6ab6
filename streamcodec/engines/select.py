"""Engine names → engines, and `auto`: the fastest one available on this machine, said once on stderr."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

import torch

from ..errors import BackendUnavailableError
from ..models.registry import LoadedModel
from .base import Backend, Program, as_gc_model
from .onnx import OnnxRuntimeBackend
from .tensorrt import TensorRTBackend
from .torch_engine import TorchBackend

ENGINE_NAMES = ("auto", "torch", "compile", "onnxruntime", "tensorrt")
#: Every precision some engine runs: fp16/bf16 on torch, compile and tensorrt; int8 on onnxruntime.
ALL_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
#: Why auto chose what it chose, in the order it tries them.
AUTO_REASONS = {
    "tensorrt": "TensorRT on the GPU",
    "compile": "torch.compile on the GPU (torch-tensorrt is not installed)",
    "onnxruntime": "ONNX Runtime on the CPU",
    "torch": "eager torch on the CPU (onnxruntime is not installed: pip install streamcodec[onnx])",
}
_announced: set[str] = set()


def default_device() -> str:
    """The default device: "cuda" when torch sees a CUDA GPU, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def auto_engine(device: str | None = None) -> str:
    """The fastest engine available here: tensorrt > compile on a CUDA GPU; onnxruntime > torch on a CPU.

    Measured on this project's 2-core CPU (`streamcodec bench`): ONNX Runtime encodes 640x480 about 4x and
    decodes about 3x as fast as eager torch or torch.compile.
    """
    if device != "cpu" and torch.cuda.is_available():
        return "tensorrt" if installed("torch_tensorrt") else "compile"
    return "onnxruntime" if installed("onnxruntime") else "torch"


def split_precision(spec: str) -> tuple[str, str | None]:
    """ "NAME[:DEVICE]@PRECISION" (e.g. "onnxruntime@int8", "compile:cuda@bf16") → ("NAME[:DEVICE]", precision)."""
    base, at, precision = spec.partition("@")
    if at and precision not in ALL_PRECISIONS:
        raise BackendUnavailableError(f"unknown precision {precision!r} in engine {spec!r} ({', '.join(ALL_PRECISIONS)})")
    return base, precision or None


def parse_engine(spec: str) -> tuple[str, str | None]:
    """ "NAME" or "NAME:DEVICE" (e.g. "torch:cpu", "compile:cuda"), with an optional "@PRECISION" → (name, device)."""
    name, _, device = split_precision(spec)[0].partition(":")
    if name == "cuda":  # the old backend name: torch.compile on the GPU
        return "compile", "cuda"
    if name not in ENGINE_NAMES:
        raise BackendUnavailableError(
            f"unknown engine {spec!r} (choose from {', '.join(ENGINE_NAMES)}; NAME:cpu or NAME:cuda for torch, compile)"
        )
    if device and device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise BackendUnavailableError(f"unknown device {device!r} in engine {spec!r} (cpu or cuda)")
    return name, device or None


def _announce(name: str) -> None:
    if name not in _announced:
        _announced.add(name)
        print(f"streamcodec: engine auto → {name} ({AUTO_REASONS[name]})", file=sys.stderr)


FACTORIES: dict[str, Callable[[LoadedModel | Program, str, str, str | None], Backend]] = {
    "torch": lambda model, device, precision, mode: TorchBackend(model, device, precision=precision),
    "compile": lambda model, device, precision, mode: TorchBackend(
        model, device, compile=True, compile_mode=mode, precision=precision
    ),
    "onnxruntime": lambda model, device, precision, mode: OnnxRuntimeBackend(model, precision=precision),
    # fp32 asked (the default): a current `engines build` of any precision is used as it is.
    "tensorrt": lambda model, device, precision, mode: TensorRTBackend(
        as_gc_model(model), None if precision == "fp32" else precision
    ),
}


def create_backend(spec: str, model: LoadedModel | Program, precision: str = "fp32", compile_mode: str | None = None) -> Backend:
    """Instantiate engine `spec` for a model: a loaded GC model, or any model's Program (the SC generator).

    Args:
        spec: an engine name from ENGINE_NAMES, optionally ":cpu"/":cuda" ("cuda" alone: the old
            backend name for compile on the GPU) and "@PRECISION", which overrides `precision`.
            "auto" says on stderr, once, which it chose.
        model: a loaded GC model, or a Program (`engines.sc.sc_program`), which names the engines
            and the device that may run it.
        precision: "fp32", "fp16" or "bf16" (torch/compile autocast, TensorRT precision), or "int8"
            (onnxruntime: G in int8).
        compile_mode: torch.compile mode of engine compile (e.g. "reduce-overhead": CUDA graphs).
    Returns:
        A ready Backend; BackendUnavailableError when the engine cannot run here.
    """
    name, device = parse_engine(spec)
    precision = split_precision(spec)[1] or precision
    device = device or (model.device if isinstance(model, Program) else None)
    if name == "auto":
        name = auto_engine(device)
        _announce(name)
    if isinstance(model, Program) and name not in model.engines:
        kind = model.entry.kind.upper()
        raise BackendUnavailableError(
            f"engine {spec!r} cannot run {kind} model {model.entry.name!r} (choose from {', '.join(model.engines)})"
        )
    check_engine(name, device, precision)
    return FACTORIES[name](model, device or default_device(), precision, compile_mode)


def check_engine(name: str, device: str | None, precision: str) -> None:
    """Refuse a precision or device the engine `name` does not run, in one line."""
    if precision == "int8" and name != "onnxruntime":
        raise BackendUnavailableError(f"precision int8 runs on engine onnxruntime (the CPU) only, not {name}")
    if name == "onnxruntime" and device not in (None, "cpu"):
        raise BackendUnavailableError(f"engine 'onnxruntime' runs on the CPU here, not {device!r}")
    if name == "tensorrt" and device == "cpu":
        raise BackendUnavailableError("engine 'tensorrt' runs on an NVIDIA GPU, not the CPU")
