"""The engine interface: a model's graphs, named entry points with declared inputs and outputs.

Every engine (eager torch, torch.compile, ONNX Runtime, TensorRT) is a `Backend`: the caller runs
an entry point by name, `backend.run("synthesize", *inputs)`, and never asks which engine runs
it. A model declares its entry points once, in a `Signature` (after TFC's `input_signature`):

    GC model (GC_SIGNATURE)   analyze:    x (B, H, W, 3) uint8            → symbols (B, C, H/16, W/16) int64
                              synthesize: x (B, C, h, w) float32          → frames (B, 16h, 16w, 3) uint8
    SC model (engines.sc)     synthesize: w_hat (1, C, h, w) float32,
                                          labels (1, rh, rw) int64        → frames (1, 16h, 16w, 3) uint8

and hands engines a `Program`: those entry points as torch modules, with the example inputs and
dynamic shapes an exporter needs. Inputs are made contiguous in their declared dtype before an
engine sees them, outputs leave in theirs.

Only the entropy-coded integer symbols cross the channel, so a stream decodes to the same
symbols on every engine; the pixels G makes differ between engines by float rounding only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..errors import BackendUnavailableError, ModelError
from ..models.gc import GCModel
from ..models.registry import LoadedModel, ModelEntry

#: The networks' stride: frame sizes are multiples of it inside the codec.
STRIDE = 16
GRAPHS = ("analyze", "synthesize")
#: Every engine that can run a GC model.
ALL_ENGINES = ("torch", "compile", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of an entry point: name, shape (ints fixed, strings symbolic) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: type[np.generic]

    def prepare(self, array: npt.ArrayLike) -> npt.NDArray[Any]:
        """`array` contiguous in this dtype; ModelError when its rank or a fixed dimension differs."""
        out = np.ascontiguousarray(array, dtype=self.dtype)
        fixed = all(isinstance(want, str) or want == got for want, got in zip(self.shape, out.shape, strict=False))
        if out.ndim != len(self.shape) or not fixed:
            raise ModelError(f"{self.name} has shape {out.shape}, not {self.shape}")
        return out


@dataclass(frozen=True)
class EntryPoint:
    """A graph's declared inputs (in call order) and its one output."""

    inputs: tuple[TensorSpec, ...]
    output: TensorSpec


Signature = Mapping[str, EntryPoint]

GC_SIGNATURE: Signature = {
    "analyze": EntryPoint(
        (TensorSpec("x", ("B", "H", "W", 3), np.uint8),), TensorSpec("symbols", ("B", "C", "H/16", "W/16"), np.int64)
    ),
    "synthesize": EntryPoint(
        (TensorSpec("x", ("B", "C", "h", "w"), np.float32),), TensorSpec("frames", ("B", "16h", "16w", 3), np.uint8)
    ),
}


class Backend:
    """A model's entry points on one runtime, run by name with the inputs its `signature` declares.

    Engines implement `_execute`; `analyze` and `synthesize` are the GC codec's names for
    `run("analyze", rgb)` and `run("synthesize", w_hat)`.
    """

    name: str
    #: Frames one call may take (the batch dimension B); exported engines have a fixed B of 1.
    max_batch: int = 1
    signature: Signature = GC_SIGNATURE

    def run(self, graph: str, *inputs: npt.ArrayLike) -> npt.NDArray[Any]:
        """Entry point `graph` of the model.

        Args:
            graph: an entry point of `signature` ("analyze", "synthesize").
            inputs: its inputs in declared order, any dtype that casts to the declared one.
        Returns:
            Its output in the declared dtype.
        """
        point = self.signature.get(graph)
        if point is None:
            raise BackendUnavailableError(f"engine {self.name!r} has no graph {graph!r} (it runs {', '.join(self.signature)})")
        if len(inputs) != len(point.inputs):
            raise ModelError(f"graph {graph!r} takes {', '.join(s.name for s in point.inputs)}, got {len(inputs)} inputs")
        arrays = tuple(spec.prepare(array) for spec, array in zip(point.inputs, inputs, strict=True))
        return np.asarray(self._execute(graph, arrays)).astype(point.output.dtype, copy=False)

    def _execute(self, graph: str, inputs: tuple[npt.NDArray[Any], ...]) -> npt.NDArray[Any]:
        """Run `graph` on inputs already in their declared dtypes; every engine implements it."""
        raise NotImplementedError(f"{type(self).__name__} does not run graphs itself")

    def analyze(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """Frames (B, H, W, 3) uint8, H and W multiples of 16 → symbols (B, C, H/16, W/16) int64."""
        return self.run("analyze", rgb)

    def synthesize(self, w_hat: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Dequantized bottleneck (B, C, h, w) float32 → frames (B, 16h, 16w, 3) uint8."""
        return self.run("synthesize", w_hat)


ShapeFn = Callable[[str, tuple[int, int]], dict[str, dict[int, object]]]


@dataclass(frozen=True)
class Program:
    """A model's entry points as torch modules: what every engine runs, compiles or exports.

    Attributes:
        entry: the registered model (its id and sha256 name the artifacts).
        signature: the entry points' declared inputs and outputs.
        modules: entry point → module taking the declared inputs as tensors.
        example: entry point → example inputs for an exporter.
        dynamic_shapes: (entry point, max (W, H)) → torch.export dynamic shapes.
        engines: the engines that can run it.
        device: where torch runs it; None: a CUDA GPU when there is one.
        gc: the GC model behind it, for the engines that need its weights (int8, TensorRT).
    """

    entry: ModelEntry
    signature: Signature
    modules: Mapping[str, torch.nn.Module]
    example: Callable[[str], tuple[torch.Tensor, ...]]
    dynamic_shapes: ShapeFn
    engines: tuple[str, ...] = ALL_ENGINES
    device: str | None = None
    gc: LoadedModel | None = None


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
        """(B, H, W, 3) uint8 → symbols (B, C, H/16, W/16) int64."""
        x = rgb.permute(0, 3, 1, 2).float().div(255.0).contiguous(memory_format=torch.channels_last)
        return self.net.Q.symbols(self.net.E(x))

    def synthesize(self, w_hat: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) float32 → frames (B, 16h, 16w, 3) uint8."""
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


def gc_program(model: LoadedModel) -> Program:
    """The GC model's two graphs (E+Q, G) as a Program."""
    graphs = TorchGraphs(build_torch_model(model))
    modules = {which: Graph(graphs, which) for which in GRAPHS}
    return Program(model.entry, GC_SIGNATURE, modules, lambda which: (example_inputs(model, which),), dynamic_shapes, gc=model)


def as_program(model: LoadedModel | Program) -> Program:
    """A Program as it is; a loaded GC model as its two graphs."""
    return model if isinstance(model, Program) else gc_program(model)


def as_gc_model(model: LoadedModel | Program) -> LoadedModel:
    """The GC model behind `model`, or BackendUnavailableError for a model that is not one."""
    loaded = model if isinstance(model, LoadedModel) else model.gc
    if loaded is None:
        raise BackendUnavailableError(f"model {model.entry.name!r} is not a GC model: this engine runs GC models only")
    return loaded


def engines_dir() -> Path:
    """Where compiled artifacts are cached: a folder the user can write, never the package's own.

    `$STREAMCODEC_ENGINES` if set; else the platform's cache folder, `$XDG_CACHE_HOME/streamcodec/engines`
    (`~/.cache/streamcodec/engines` when XDG_CACHE_HOME is unset or not absolute, as the XDG spec says).
    An installed package's folder may be read-only, and a checkout's must not fill up behind its owner's back.
    """
    override = os.environ.get("STREAMCODEC_ENGINES")
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "streamcodec" / "engines"


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
