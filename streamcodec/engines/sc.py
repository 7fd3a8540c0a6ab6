"""Selective mode's SC generator (`sc-small`) as a Program: one entry point, any engine that runs it.

The graph is F and G of `SCGenerator` with the one-hot and the uint8 conversion inside; the
checks that need data (label ids < K) stay in numpy in `SynthesisModel`, outside the graph:

    synthesize: w_hat (1, C, h, w) float32, labels (1, rh, rw) int64 ids < K → frames (1, 16h, 16w, 3) uint8
                (r = latent factor / label stride)

It runs on the engines every model runs on (`create_backend("torch" | "onnxruntime", sc_program(...))`),
eager torch on the CPU unless asked otherwise. Selective mode's mask models (`selfie`, `face`) are
registry entries run by LiteRT (`selective.runtime`); they have no engine here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.registry import ModelEntry
from ..models.sc import SCGenerator
from .base import EntryPoint, Program, Signature, TensorSpec
from .onnx import ONNX_MAX_SIZE, export_onnx

SC_ENGINES = ("torch", "onnxruntime")
SC_SIGNATURE: Signature = {
    "synthesize": EntryPoint(
        (TensorSpec("w_hat", (1, "C", "h", "w"), np.float32), TensorSpec("labels", (1, "rh", "rw"), np.int64)),
        TensorSpec("frames", (1, "16h", "16w", 3), np.uint8),
    )
}


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


def _dynamic_shapes(net: SCGenerator, max_size: tuple[int, int]) -> dict[str, dict[int, object]]:
    """The latent grid h, w up to `max_size` (W, H); the label grid follows at r times it."""
    ratio = net.cfg.gc.factor // net.cfg.label_stride
    h = torch.export.Dim("h", min=1, max=max(2, max_size[1] // net.cfg.gc.factor))
    w = torch.export.Dim("w", min=1, max=max(2, max_size[0] // net.cfg.gc.factor))
    return {"w_hat": {2: h, 3: w}, "labels": {1: ratio * h, 2: ratio * w}}


def sc_program(entry: ModelEntry, net: SCGenerator) -> Program:
    """A registered SC generator as a Program (torch or onnxruntime; eager torch on the CPU).

    Args:
        entry: its registry entry (`REGISTRY.load_sc(name).entry`).
        net: its network in eval mode (`REGISTRY.load_sc(name).net`).
    Returns:
        The Program with one entry point, "synthesize", as SC_SIGNATURE declares it.
    """
    return Program(
        entry,
        SC_SIGNATURE,
        {"synthesize": SCGraph(net).eval()},
        lambda which: _example(net),
        lambda which, max_size: _dynamic_shapes(net, max_size),
        engines=SC_ENGINES,
        device="cpu",
    )


def export_sc_onnx(entry: ModelEntry, net: SCGenerator, folder: Path, max_size: tuple[int, int] = ONNX_MAX_SIZE) -> Path:
    """The SC generator as ONNX (dynamic latent grid), reused while its manifest matches."""
    return export_onnx(sc_program(entry, net), folder, "fp32", max_size)["synthesize"]
