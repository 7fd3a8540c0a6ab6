"""Person segmenters: MediaPipe's selfie segmentation (vendored) or a user's own ONNX model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import ModelError
from ..models.registry import REGISTRY, file_sha256
from .base import Frame, FrameMasker, Mask, resize, upscale_probability
from .runtime import TfliteModel, onnx_session


class SelfieSegmenter:
    """MediaPipe selfie segmentation (general model, 256x256 RGB in [0, 1] → person probability).

    frame ─resize 256x256─▶ MobileNetV3-style encoder/decoder ─▶ p(person) 256x256 ─bilinear─▶ > 0.5
    """

    def __init__(self, threads: int = 1, threshold: float = 0.5) -> None:
        model = REGISTRY.mask_model("selfie")
        self._model = TfliteModel(model, threads)
        self._threshold = threshold
        self.name = f"selfie-{model.sha256[:8]}-t{threshold}"

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def mask(self, frame: Frame) -> Mask:
        """Person pixels of one RGB frame: (H, W) bool."""
        _, height, width, _ = self._model.input_shape
        x = resize(frame, width, height).astype(np.float32)[None] / 255.0
        probability = self._model.run(x)[0][0, :, :, 0]
        return upscale_probability(probability, frame.shape[0], frame.shape[1], self._threshold)


class OnnxSegmenter:
    """A user's segmentation model (`--segmenter onnx:PATH`).

    The model takes one float32 RGB image in [0, 1], NCHW (1, 3, H, W) or NHWC (1, H, W, 3); a
    fixed H, W is honoured, a dynamic one gets the frame at its own size rounded to a multiple of 32.
    Its first output is a person map with one channel, (1, 1, H, W), (1, H, W, 1) or (1, H, W):
    probabilities are thresholded at 0.5; a map with values outside [0, 1] is read as logits (> 0).
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        self._session = onnx_session(path, threads)
        self._path = path
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        shape = list(model_input.shape)
        if len(shape) != 4 or 3 not in (shape[1], shape[3]):
            raise ModelError(f"input shape {shape} is not (1, 3, H, W) or (1, H, W, 3)", path)
        self._channels_first = shape[1] == 3
        size = shape[2:4] if self._channels_first else shape[1:3]
        self._size = tuple(size) if all(isinstance(n, int) for n in size) else None
        self.name = f"onnx-{file_sha256(path)[:8]}"

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def mask(self, frame: Frame) -> Mask:
        """Person pixels of one RGB frame, as the user's model sees them: (H, W) bool."""
        height, width = self._size or (max(32, round(frame.shape[0] / 32) * 32), max(32, round(frame.shape[1] / 32) * 32))
        x = resize(frame, int(width), int(height)).astype(np.float32) / 255.0
        x = x.transpose(2, 0, 1)[None] if self._channels_first else x[None]
        output = np.asarray(self._session.run(None, {self._input_name: np.ascontiguousarray(x)})[0], dtype=np.float32)
        probability = self._single_channel(output)
        logits = probability.min() < 0.0 or probability.max() > 1.0
        return upscale_probability(probability, frame.shape[0], frame.shape[1], 0.0 if logits else 0.5)

    def _single_channel(self, output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        squeezed = output.squeeze()
        if squeezed.ndim != 2:
            raise ModelError(f"output shape {list(output.shape)} is not one person map", self._path)
        return squeezed


def create_segmenter(spec: str, threads: int = 1) -> FrameMasker:
    """The person segmenter named by `spec`: "selfie" (vendored MediaPipe) or "onnx:PATH".

    Args:
        spec: "selfie" or "onnx:" followed by a path to an .onnx file.
        threads: CPU threads for the model.
    Returns:
        The segmenter.
    """
    if spec == "selfie":
        return SelfieSegmenter(threads)
    if spec.startswith("onnx:") and len(spec) > len("onnx:"):
        return OnnxSegmenter(Path(spec[len("onnx:") :]), threads)
    raise ModelError(f"unknown segmenter {spec!r} (use 'selfie' or 'onnx:PATH')")
