"""Eager torch and torch.compile engines, on the CPU or a CUDA GPU."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy.typing as npt
import torch

from ..errors import BackendUnavailableError
from ..models.registry import LoadedModel
from .base import Backend, Program, as_program

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: On CUDA: Inductor's autotuned kernels without CUDA graphs (shapes change with every frame size);
#: "reduce-overhead" adds CUDA graphs, worth it when one size streams for long (a webcam).
CUDA_COMPILE_MODE = "max-autotune-no-cudagraphs"


def check_device(device: str) -> None:
    """Refuse a CUDA device on a machine without one, in one line."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} needs a CUDA GPU and a CUDA build of torch")


class TorchBackend(Backend):
    """PyTorch on the CPU or a GPU; `compile=True` wraps every graph in torch.compile.

    Args:
        model: a loaded GC model, or any model's Program (e.g. selective mode's SC generator).
        device: "cpu" or "cuda[:N]".
        compile: run both graphs through torch.compile (dynamic shapes).
        compile_mode: torch.compile mode (default: Inductor's default on CPU, CUDA_COMPILE_MODE on CUDA).
        precision: "fp32", or "fp16"/"bf16" autocast (E's symbols may then differ from fp32's at
            quantization boundaries; any stream still decodes to the same symbols everywhere).
    """

    def __init__(
        self,
        model: LoadedModel | Program,
        device: str = "cpu",
        compile: bool = False,
        compile_mode: str | None = None,
        precision: str = "fp32",
    ) -> None:
        check_device(device)
        if precision not in PRECISIONS:
            raise BackendUnavailableError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.max_batch = 8  # eager and compiled graphs take any B; 8 is where CUDA throughput levels off
        self.name = ("compile" if compile else "torch") + ("" if device == "cpu" else f"-{device}")
        self.device, self.precision = torch.device(device), precision
        program = as_program(model)
        self.signature = program.signature
        mode = compile_mode or (None if device == "cpu" else CUDA_COMPILE_MODE)
        self._graphs: dict[str, Callable[..., torch.Tensor]] = {}
        for which, module in program.modules.items():
            module = module.to(self.device)
            self._graphs[which] = torch.compile(module, dynamic=True, mode=mode) if compile else module

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    def _execute(self, graph: str, inputs: tuple[npt.NDArray[Any], ...]) -> npt.NDArray[Any]:
        with torch.inference_mode(), self._autocast():
            out = self._graphs[graph](*(torch.from_numpy(array).to(self.device) for array in inputs))
        return out.cpu().numpy()
