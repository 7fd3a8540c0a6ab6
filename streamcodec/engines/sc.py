"""Engines for selective mode's SC generator (`sc-small`): eager torch and ONNX Runtime.

The graph is F and G of `SCGenerator` with the one-hot and the uint8 conversion inside; the
checks that need data (label ids < K) stay in numpy in `SynthesisModel`, outside the graph.
The segmenter and face detector of selective mode are vendored MediaPipe .tflite models run by
LiteRT (`ai-edge-litert`); they have no engine here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from ..errors import BackendUnavailableError
from ..models.registry import ModelEntry
from ..models.sc import SCGenerator
from .base import engines_dir
from .manifest import ArtifactSpec, ensure_artifact
from .onnx import ONNX_MAX_SIZE, onnx_exporter, ort_session, run_session

SC_ENGINES = ("torch", "onnxruntime")


class SCGraph(torch.nn.Module):
    """(w_hat (1, C, h, w) float32, labels (1, rh, rw) int64) → (1, 16h, 16w, 3) uint8, r = factor / label stride."""

    def __init__(self, net: SCGenerator) -> None:
        super().__init__()
        self.net = net

    def forward(self, w_hat: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(labels, self.net.cfg.classes).permute(0, 3, 1, 2).to(w_hat.dtype)
        x_hat = self.net.G(torch.cat([w_hat, self.net.F(onehot)], dim=1))
        return x_hat.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _example(net: SCGenerator) -> tuple[torch.Tensor, torch.Tensor]:
    ratio = net.cfg.gc.factor // net.cfg.label_stride
    return torch.zeros(1, net.cfg.gc.channels, 4, 4), torch.zeros(1, 4 * ratio, 4 * ratio, dtype=torch.int64)


def export_sc_onnx(entry: ModelEntry, net: SCGenerator, folder: Path, max_size: tuple[int, int] = ONNX_MAX_SIZE) -> Path:
    """The SC generator as ONNX (dynamic latent grid), reused while its manifest matches."""
    ratio = net.cfg.gc.factor // net.cfg.label_stride
    h = torch.export.Dim("h", min=1, max=max(2, max_size[1] // net.cfg.gc.factor))
    w = torch.export.Dim("w", min=1, max=max(2, max_size[0] // net.cfg.gc.factor))
    shapes = {"w_hat": {2: h, 3: w}, "labels": {1: ratio * h, 2: ratio * w}}
    spec = ArtifactSpec(entry, "synthesize", "onnxruntime", "fp32", max_size)
    return ensure_artifact(folder, spec, ".onnx", onnx_exporter(SCGraph(net), _example(net), shapes))


class SCEngine:
    """Runs the SC graph on one engine ("torch" or "onnxruntime")."""

    def __init__(self, entry: ModelEntry, net: SCGenerator, engine: str = "torch", folder: Path | None = None) -> None:
        if engine not in SC_ENGINES:
            raise BackendUnavailableError(
                f"engine {engine!r} cannot run SC model {entry.name!r} (choose from {', '.join(SC_ENGINES)})"
            )
        self.name = engine
        self._graph = SCGraph(net).eval()
        self._session = ort_session(export_sc_onnx(entry, net, folder or engines_dir())) if engine == "onnxruntime" else None

    def __call__(self, w_hat: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """w_hat (1, C, h, w) float32 and labels (1, rh, rw) int64 ids < K → (1, 16h, 16w, 3) uint8."""
        w_hat = np.ascontiguousarray(w_hat, dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if self._session is not None:
            return run_session(self._session, w_hat, labels).astype(np.uint8)
        with torch.inference_mode():
            return self._graph(torch.from_numpy(w_hat), torch.from_numpy(labels)).numpy()
