"""Inference backends behind one small interface.

The codec calls `analyze` (E and the quantizer: RGB frames → integer symbols) and `synthesize`
(G: dequantized symbols → RGB frames) and never asks which backend runs them. Inputs and
outputs are numpy arrays with declared shapes and dtypes, so a backend may be eager torch,
torch.compile, ONNX Runtime or TensorRT.

Only the entropy-coded integer symbols cross the channel, so a stream decodes to the same
symbols on every backend; the pixels G makes differ between backends by float rounding only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

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


def engines_dir() -> Path:
    """Where compiled artifacts live: $STREAMCODEC_ENGINES, the checkout's engines/, or a user cache."""
    if os.environ.get("STREAMCODEC_ENGINES"):
        return Path(os.environ["STREAMCODEC_ENGINES"])
    checkout = Path(__file__).resolve().parent.parent / "engines"
    if checkout.is_dir() and os.access(checkout, os.W_OK):
        return checkout
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamcodec" / "engines"


class _Graph(torch.nn.Module):
    """One of the two graphs as a module, for export."""

    def __init__(self, modules: _TorchModules, which: str) -> None:
        super().__init__()
        self.modules_, self.which = modules, which

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.modules_.analyze(x) if self.which == "analyze" else self.modules_.synthesize(x)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs and warns about things irrelevant here (e.g. torchvision ops)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model: LoadedModel, folder: Path) -> dict[str, Path]:
    """Export E+Q and G to ONNX with dynamic sizes (multiples of 16); cached by model id."""
    paths = {which: folder / f"{model.entry.model_id}-{which}.onnx" for which in ("analyze", "synthesize")}
    if all(p.exists() for p in paths.values()):
        return paths
    modules = _TorchModules(build_torch_model(model))
    h16, w16 = torch.export.Dim("h16", min=1, max=4096), torch.export.Dim("w16", min=1, max=4096)
    examples = {
        "analyze": ((torch.zeros(1, 64, 64, 3, dtype=torch.uint8),), {"x": {1: 16 * h16, 2: 16 * w16}}),
        "synthesize": ((torch.zeros(1, model.config.channels, 4, 4),), {"x": {2: h16, 3: w16}}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    print(f"streamcodec: building ONNX engines for {model.entry.name} in {folder} (once)", file=sys.stderr)
    for which, path in paths.items():
        args, shapes = examples[which]
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            staged = Path(tmp) / path.name
            with _quiet_exporter():
                torch.onnx.export(
                    _Graph(modules, which),
                    args,
                    str(staged),
                    dynamo=True,
                    dynamic_shapes=shapes,
                    external_data=False,
                    verbose=False,
                )
            os.replace(staged, path)  # atomic: concurrent builders never see half a file
    return paths


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on the CPU: about twice as fast as eager torch on this project's 2-core machines."""

    name = "onnxruntime"

    def __init__(self, model: LoadedModel, folder: Path | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise BackendUnavailableError("backend 'onnxruntime' needs `pip install streamcodec[onnx]`") from None
        try:
            paths = export_onnx(model, folder or engines_dir())
        except Exception as exc:  # the exporter raises many types; all mean "no engine"
            raise BackendUnavailableError(f"could not build the ONNX engine: {exc}") from exc
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._sessions = {
            which: onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for which, path in paths.items()
        }

    def _run(self, which: str, array: np.ndarray) -> np.ndarray:
        session = self._sessions[which]
        return np.asarray(session.run(None, {session.get_inputs()[0].name: array})[0])

    def analyze(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        return self._run("analyze", np.ascontiguousarray(rgb)).astype(np.int64)

    def synthesize(self, w_hat: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        return self._run("synthesize", np.ascontiguousarray(w_hat, dtype=np.float32)).astype(np.uint8)


def _auto(model: LoadedModel) -> Backend:
    if torch.cuda.is_available():
        return _torch_cuda(model)
    try:
        return OnnxRuntimeBackend(model)
    except BackendUnavailableError as exc:
        print(f"streamcodec: {exc}; using eager torch", file=sys.stderr)
        return TorchBackend(model)


def _torch_cuda(model: LoadedModel) -> Backend:
    if not torch.cuda.is_available():
        raise BackendUnavailableError("backend 'cuda' needs a CUDA GPU and a CUDA build of torch")
    return TorchBackend(model, "cuda", compile=True)


BACKENDS: dict[str, Callable[[LoadedModel], Backend]] = {
    "auto": _auto,
    "onnxruntime": OnnxRuntimeBackend,
    "torch": TorchBackend,
    "compile": lambda model: TorchBackend(model, compile=True),
    "cuda": _torch_cuda,
}


def create_backend(name: str, model: LoadedModel) -> Backend:
    """Instantiate backend `name` ("auto": cuda on an NVIDIA GPU, else onnxruntime, else torch)."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise BackendUnavailableError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})") from None
    return factory(model)
