"""The engine interface and the two graphs every engine runs.

The codec calls `analyze` (E and the quantizer: RGB frames → integer symbols) and `synthesize`
(G: dequantized symbols → RGB frames) and never asks which engine runs them. Inputs and outputs
are numpy arrays with declared shapes and dtypes, so an engine may be eager torch,
torch.compile, ONNX Runtime or TensorRT.

Only the entropy-coded integer symbols cross the channel, so a stream decodes to the same
symbols on every engine; the pixels G makes differ between engines by float rounding only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from ..models.gc import GCModel
from ..models.registry import LoadedModel

#: The networks' stride: frame sizes are multiples of it inside the codec.
STRIDE = 16
GRAPHS = ("analyze", "synthesize")


class Backend(ABC):
    """E+Q and G of one model on one runtime."""

    name: str
    #: Frames one call may take (the batch dimension B); exported engines have a fixed B of 1.
    max_batch: int = 1

    @abstractmethod
    def analyze(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """Frames (B, H, W, 3) uint8, H and W multiples of 16 → symbols (B, C, H/16, W/16) int64."""

    @abstractmethod
    def synthesize(self, w_hat: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Dequantized bottleneck (B, C, h, w) float32 → frames (B, 16h, 16w, 3) uint8."""


def build_torch_model(model: LoadedModel) -> GCModel:
    """The GC network of a loaded model in eval mode, channels-last."""
    net = GCModel(model.config)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.params.items()})
    # channels_last runs the convolutions about twice as fast on CPU (oneDNN).
    return net.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]


class TorchGraphs(torch.nn.Module):
    """The two graphs every engine runs, with uint8 conversion inside the graph."""

    def __init__(self, net: GCModel) -> None:
        super().__init__()
        self.net = net

    def analyze(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2).float().div(255.0).contiguous(memory_format=torch.channels_last)
        return self.net.Q.symbols(self.net.E(x))

    def synthesize(self, w_hat: torch.Tensor) -> torch.Tensor:
        x_hat = self.net.G(w_hat.contiguous(memory_format=torch.channels_last))
        return x_hat.float().mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class Graph(torch.nn.Module):
    """One of the two graphs as a module, for export."""

    def __init__(self, graphs: TorchGraphs, which: str) -> None:
        super().__init__()
        self.graphs, self.which = graphs, which

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graphs.analyze(x) if self.which == "analyze" else self.graphs.synthesize(x)


def example_inputs(model: LoadedModel, which: str, height: int = 64, width: int = 64) -> torch.Tensor:
    """A zero input of graph `which` for a height x width frame (multiples of 16)."""
    if which == "analyze":
        return torch.zeros(1, height, width, 3, dtype=torch.uint8)
    return torch.zeros(1, model.config.channels, height // STRIDE, width // STRIDE)


def dynamic_shapes(which: str, max_size: tuple[int, int]) -> dict[str, dict[int, object]]:
    """torch.export dynamic shapes: H and W any multiple of 16 up to `max_size` (W, H)."""
    h16 = torch.export.Dim("h16", min=1, max=max(2, max_size[1] // STRIDE))
    w16 = torch.export.Dim("w16", min=1, max=max(2, max_size[0] // STRIDE))
    if which == "analyze":
        return {"x": {1: STRIDE * h16, 2: STRIDE * w16}}
    return {"x": {2: h16, 3: w16}}


def engines_dir() -> Path:
    """Where compiled artifacts live: $STREAMCODEC_ENGINES, the checkout's engines/, or a user cache."""
    if os.environ.get("STREAMCODEC_ENGINES"):
        return Path(os.environ["STREAMCODEC_ENGINES"])
    checkout = Path(__file__).resolve().parent.parent.parent / "engines"
    if checkout.is_dir() and os.access(checkout, os.W_OK):
        return checkout
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamcodec" / "engines"


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporters log and warn about things irrelevant here (e.g. torchvision ops)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
