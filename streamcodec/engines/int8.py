"""G in int8 on ONNX Runtime's CPU kernels: `--engine onnxruntime@int8`.

Two steps make G run about twice as fast on a CPU with VNNI, with the same symbols and, on the
samples, the same PSNR against the source to 0.01 dB:

1. Each `ConvTranspose2d(k=4, s=2, p=1)` of the upsampler becomes the exact equivalent: a 3x3
   convolution with four output phases and a pixel shuffle (`SubPixelUp`). ONNX Runtime has
   an int8 kernel for Conv (QLinearConv), none for ConvTranspose. The phases are ordered
   (row, column, channel) and shuffled in channels-last order, so the shuffle moves whole
   channel vectors (a plain `DepthToSpace` in ONNX Runtime costs more than the int8 saves).
2. The graph is quantized statically (QDQ, uint8 activations and int8 weights per tensor,
   MinMax ranges) on symbols of real frames shipped beside the weights (`<model>.calib.npz`,
   made by `scripts/data/make_calibration.py`).

E stays float32 (`analyze` is the fp32 artifact), so an int8 encoder writes the same stream as
an fp32 one; only the decoded pixels differ from fp32's (stated in README, Engines).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ..errors import BackendUnavailableError
from ..models.registry import WEIGHTS_DIR, LoadedModel, ModelEntry
from .base import Graph, TorchGraphs, build_torch_model, dynamic_shapes, example_inputs, quiet_exporter

#: Transposed-conv tap used by each output phase (0: even, 1: odd row or column) at input offset -1, 0 or +1.
_TAPS = {0: {-1: 3, 0: 1}, 1: {0: 2, 1: 0}}


class SubPixelUp(nn.Module):
    """`ConvTranspose2d(cin, cout, 4, stride=2, padding=1)` as a 3x3 conv to 4*cout channels + pixel shuffle.

    Exact up to float summation order: output pixel (2i+a, 2j+b) of the transposed convolution
    only reads inputs (i-1..i+1, j-1..j+1), through the taps in `_TAPS`.
    """

    def __init__(self, up: nn.ConvTranspose2d) -> None:
        super().__init__()
        shape = (up.kernel_size, up.stride, up.padding, up.output_padding, up.dilation, up.groups)
        if shape != ((4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1) or up.bias is None:
            raise ValueError(f"SubPixelUp rewrites ConvTranspose2d(k=4, s=2, p=1) with a bias only, not {up}")
        w = up.weight.detach()  # (cin, cout, 4, 4)
        cin, cout = w.shape[:2]
        kernel = torch.zeros(2, 2, cout, cin, 3, 3)
        for a, rows in _TAPS.items():
            for b, cols in _TAPS.items():
                for dr, kr in rows.items():
                    for dc, kc in cols.items():
                        kernel[a, b, :, :, dr + 1, dc + 1] = w[:, :, kr, kc].T
        self.cout = cout
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)
        self.conv.weight.data = kernel.reshape(4 * cout, cin, 3, 3)
        self.conv.bias.data = up.bias.detach().repeat(4)  # type: ignore[union-attr]  # checked above

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).permute(0, 2, 3, 1)  # channels last: (B, H, W, [a, b, c])
        batch, height, width = y.shape[:3]
        y = y.reshape(batch, height, width, 2, 2, self.cout).permute(0, 1, 3, 2, 4, 5)
        return y.reshape(batch, 2 * height, 2 * width, self.cout).permute(0, 3, 1, 2)


def subpixel_graphs(model: LoadedModel) -> TorchGraphs:
    """The model's graphs with every upsampling ConvTranspose2d of G replaced by SubPixelUp."""
    net = build_torch_model(model)  # a fresh module: rewriting it leaves nothing else changed
    layers = net.G.net
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.ConvTranspose2d):
            layers[index] = SubPixelUp(layer)
    return TorchGraphs(net)


def calibration_path(entry: ModelEntry) -> Path:
    """`<model>.calib.npz` beside the weights: symbols of real frames for static quantization."""
    return WEIGHTS_DIR / f"{entry.name}.calib.npz"


def calibration_sha256(entry: ModelEntry) -> str | None:
    """sha256 of the model's calibration set, or None when it has none."""
    path = calibration_path(entry)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@functools.cache
def has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (int8 dot products without 16-bit saturation); False when unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_vnni" in flags or " avx_vnni" in flags


def int8_kernels() -> str:
    """The kind of int8 kernels ONNX Runtime will use here; an artifact is built for one kind."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        return "x86-vnni" if has_vnni() else "x86"
    return machine


def calibration_inputs(model: LoadedModel) -> Iterator[npt.NDArray[np.float32]]:
    """Dequantized bottlenecks of the shipped calibration frames, each at its quality's channel count."""
    path = calibration_path(model.entry)
    if not path.exists():
        raise BackendUnavailableError(
            f"model {model.entry.name!r} has no int8 calibration set ({path.name}): "
            f"make one with scripts/data/make_calibration.py --model {model.entry.name}, or use fp32"
        )
    centers = np.asarray(model.config.centers, dtype=np.float32)
    with np.load(path) as data:
        symbols, keeps = data["symbols"], data["keep"]
    for sym, keep in zip(symbols, keeps, strict=True):
        w_hat = np.zeros((1, *sym.shape), dtype=np.float32)
        w_hat[0, :keep] = centers[sym[:keep]]
        yield w_hat


def quantize_synthesize(model: LoadedModel) -> Callable[[Path], None]:
    """A build step writing G as an int8 ONNX graph (see the module docstring)."""

    def build(path: Path) -> None:
        try:
            from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
            from onnxruntime.quantization.shape_inference import quant_pre_process
        except ImportError:
            raise BackendUnavailableError("engine 'onnxruntime@int8' needs `pip install streamcodec[onnx]`") from None
        inputs = list(calibration_inputs(model))

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter(inputs)

            def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
                item = next(self.items, None)
                return None if item is None else {"x": item}

        graph = Graph(subpixel_graphs(model), "synthesize")
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp, quiet_exporter():
            fp32, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
            shapes = dynamic_shapes("synthesize", (4096, 4096))
            args = (example_inputs(model, "synthesize"),)
            torch.onnx.export(graph, args, str(fp32), dynamo=True, dynamic_shapes=shapes, external_data=False)
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(path),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=False,
                # Without VNNI, uint8 x int8 products are summed in pairs into saturating int16:
                # 7-bit weights keep those sums in range (ONNX Runtime's quantization docs).
                reduce_range=int8_kernels() == "x86",
            )

    return build
