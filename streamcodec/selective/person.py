"""Person segmenters: MediaPipe's selfie segmentation (vendored) or a user's own ONNX model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import ModelError
from ..models.registry import REGISTRY, file_sha256
from .base import Frame, FrameMasker, Mask, resize, upscale_probability
from .runtime import TfliteModel, image_input, onnx_session, run_image_model, shape_text


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
    Both are checked when it is loaded (its input's declaration, then one blank frame through it), so
    a model of the wrong shape is one ModelError naming the shapes needed and found, before any frame.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        self._session = onnx_session(path, threads)
        self._path = path
        self._input = image_input(self._session, path, "segmenter")
        self.name = f"onnx-{file_sha256(path)[:8]}"
        self.mask(np.zeros((64, 64, 3), dtype=np.uint8))  # its output's shape, now rather than at frame 1

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def mask(self, frame: Frame) -> Mask:
        """Person pixels of one RGB frame, as the user's model sees them: (H, W) bool."""
        output = run_image_model(self._session, self._input, self._input.feed(frame), self._path, "segmenter")
        probability = self._single_channel(output.astype(np.float32, copy=False))
        logits = probability.min() < 0.0 or probability.max() > 1.0
        return upscale_probability(probability, frame.shape[0], frame.shape[1], 0.0 if logits else 0.5)

    def _single_channel(self, output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        squeezed = output.squeeze()
        if squeezed.ndim != 2:
            raise ModelError(
                f"the segmenter needs one person map (1, 1, H, W), (1, H, W, 1) or (1, H, W) as its first output; "
                f"this model gives {shape_text(output.shape)}",
                self._path,
            )
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
