"""Inference backends behind one small interface.

The codec calls `analyze` (E and the quantizer: RGB frames → integer symbols) and `synthesize`
(G: dequantized symbols → RGB frames) and never asks which backend runs them. Inputs and
outputs are numpy arrays with declared shapes and dtypes, so a backend may be eager torch,
torch.compile, ONNX Runtime or TensorRT.

Only the entropy-coded integer symbols cross the channel, so a stream decodes to the same
symbols on every backend; the pixels G makes differ between backends by float rounding only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch

from .errors import BackendUnavailableError
from .models.gc import GCModel
from .models.registry import LoadedModel


class Backend(ABC):
    """E+Q and G of one model on one runtime."""

    name: str

    @abstractmethod
    def analyze(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """Frames (B, H, W, 3) uint8, H and W multiples of 16 → symbols (B, C, H/16, W/16) int64."""

    @abstractmethod
    def synthesize(self, w_hat: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Dequantized bottleneck (B, C, h, w) float32 → frames (B, 16h, 16w, 3) uint8."""


def build_torch_model(model: LoadedModel) -> GCModel:
    net = GCModel(model.config)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.params.items()})
    # channels_last runs the convolutions about twice as fast on CPU (oneDNN).
    return net.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]


class _TorchModules(torch.nn.Module):
    """The two graphs every backend runs, with uint8 conversion inside the graph."""

    def __init__(self, net: GCModel) -> None:
        super().__init__()
        self.net = net

    def analyze(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2).float().div(255.0).contiguous(memory_format=torch.channels_last)
        return self.net.Q.symbols(self.net.E(x))

    def synthesize(self, w_hat: torch.Tensor) -> torch.Tensor:
        x_hat = self.net.G(w_hat.contiguous(memory_format=torch.channels_last))
        return x_hat.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class TorchBackend(Backend):
    """Eager PyTorch on the CPU or a GPU; `compile=True` wraps both graphs in torch.compile."""

    def __init__(self, model: LoadedModel, device: str = "cpu", compile: bool = False) -> None:
        self.name = ("compile" if compile else "torch") + ("" if device == "cpu" else f"-{device}")
        self.device = torch.device(device)
        modules = _TorchModules(build_torch_model(model)).to(self.device)
        self._analyze: Callable[[torch.Tensor], torch.Tensor] = modules.analyze
        self._synthesize: Callable[[torch.Tensor], torch.Tensor] = modules.synthesize
        if compile:
            self._analyze = torch.compile(modules.analyze, dynamic=True)
            self._synthesize = torch.compile(modules.synthesize, dynamic=True)

    def analyze(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        with torch.inference_mode():
            out = self._analyze(torch.from_numpy(rgb).to(self.device))
        return out.cpu().numpy()

    def synthesize(self, w_hat: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        with torch.inference_mode():
            out = self._synthesize(torch.from_numpy(w_hat).to(self.device))
        return out.cpu().numpy()


def _torch_cuda(model: LoadedModel) -> Backend:
    if not torch.cuda.is_available():
        raise BackendUnavailableError("backend 'cuda' needs a CUDA GPU and a CUDA build of torch")
    return TorchBackend(model, "cuda", compile=True)


BACKENDS: dict[str, Callable[[LoadedModel], Backend]] = {
    "torch": TorchBackend,
    "compile": lambda model: TorchBackend(model, compile=True),
    "cuda": _torch_cuda,
}


def create_backend(name: str, model: LoadedModel) -> Backend:
    """Instantiate backend `name` ("auto" picks the fastest one available here)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "torch"
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise BackendUnavailableError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})") from None
    return factory(model)
