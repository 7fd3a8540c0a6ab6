"""Selective mode's synthesis layer: the background painted from a q1 GC latent and a label map.

The SC codec sends, at each keyframe, the GC latent at quality 1 (`SCConfig.keep` channels of the
base GC model's encoder, the rest zero) and the label map (`labelcode`); the decoder calls

    SynthesisModel("sc-small").synthesize(w_hat, labels) → (16h, 16w, 3) uint8 background

and takes every pixel outside the keep mask from it. The model is registered like a GC model
(`streamcodec/weights/registry.json`, kind "sc", sha256 and content id checked at load by
`REGISTRY.load_sc`) and runs on any engine that runs its Program (`engines.sc.sc_program`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from ..engines import Backend, create_backend
from ..engines.sc import sc_program
from ..errors import ModelError
from ..models.registry import REGISTRY, Registry
from ..models.sc import SCConfig, SCGenerator

__all__ = ["DEFAULT_SC_MODEL", "SynthesisModel"]

DEFAULT_SC_MODEL = "sc-small"


class SynthesisModel:
    """A registered SC generator in eval mode on the CPU; deterministic for a given thread count.

    Args:
        name: a registered model of kind "sc".
        registry: where it is registered.
        engine: "torch" (eager, the CPU) or "onnxruntime" (the exported generator in engines/,
            within 1 level of 255 of torch's).
    """

    def __init__(self, name: str = DEFAULT_SC_MODEL, registry: Registry = REGISTRY, engine: str = "torch") -> None:
        loaded = registry.load_sc(name)  # kind, sha256 and content id checked
        self.name, self.model_id = name, loaded.entry.model_id
        self.net: SCGenerator = loaded.net
        self.engine: Backend = create_backend(engine, sc_program(loaded.entry, loaded.net))

    @property
    def config(self) -> SCConfig:
        """The generator's config: its labeler, class count and the GC model it reads."""
        return self.net.cfg

    @property
    def classes(self) -> int:
        """K: how many label ids the model was trained on (its labeler's class count)."""
        return self.net.cfg.classes

    def check_labeler(self, name: str, classes: int) -> None:
        """Refuse a labeler other than the one the model was trained with (a different K or name).

        Args:
            name: the labeler's `name` (e.g. "colour-texture-v1-s8", "onnx-1a2b3c4d-s8").
            classes: its class count.
        """
        cfg = self.net.cfg
        if classes != cfg.classes or name != cfg.labeler:
            raise ModelError(
                f"SC model {self.name!r} was trained on labeler {cfg.labeler} ({cfg.classes} classes), "
                f"not {name} ({classes} classes): train an SC model for that labeler "
                f'(streamcodec train with kind = "sc" and labels = its spec)'
            )

    def synthesize_symbols(self, symbols: npt.NDArray[np.int64], labels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """`synthesize` from the q1 symbols as `GCDecoder.decode_symbols` returns them.

        Args:
            symbols: (k, h, w) int64 center indices of the first k latent channels (k ≥ keep).
            labels: (H', W') uint8 label map at stride 8, as for `synthesize`.
        Returns:
            (16h, 16w, 3) uint8 RGB.
        """
        gc = self.net.cfg.gc
        w_hat = np.zeros((1, gc.channels, *symbols.shape[1:]), dtype=np.float32)
        w_hat[0, : symbols.shape[0]] = np.asarray(gc.centers, dtype=np.float32)[symbols]
        return self.synthesize(w_hat, labels)

    def synthesize(self, w_hat: npt.NDArray[np.float32], labels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The synthesized frame at coded size.

        Args:
            w_hat: (1, C, h, w) float32 dequantized q1 latent of the base GC model (channels ≥ keep are ignored).
            labels: (H', W') uint8 label map at stride 8 of the frame; edge-padded or cropped to (2h, 2w)
                so that a map of the uncoded frame size (⌈H/8⌉, ⌈W/8⌉) fits the padded latent.
        Returns:
            (16h, 16w, 3) uint8 RGB.
        """
        if w_hat.ndim != 4 or w_hat.shape[0] != 1 or labels.ndim != 2:
            raise ModelError(f"synthesize wants w_hat (1, C, h, w) and labels (H/8, W/8), got {w_hat.shape} and {labels.shape}")
        ratio = self.net.cfg.gc.factor // self.net.cfg.label_stride
        rows, cols = w_hat.shape[2] * ratio, w_hat.shape[3] * ratio
        if labels.shape[0] > rows or labels.shape[1] > cols:
            raise ModelError(f"label map {labels.shape} is larger than the latent's grid ({rows}, {cols})")
        grid = np.pad(labels, ((0, rows - labels.shape[0]), (0, cols - labels.shape[1])), mode="edge")
        latent = torch.from_numpy(np.ascontiguousarray(w_hat, dtype=np.float32)).clone()
        latent[:, self.net.cfg.keep :] = 0.0
        ids = torch.from_numpy(grid.astype(np.int64))[None]
        self.net.check(latent, ids)
        return self.engine.run("synthesize", latent.numpy(), ids.numpy())[0]
