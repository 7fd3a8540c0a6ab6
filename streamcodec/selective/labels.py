"""Label maps for selective mode's synthesis layer: one class id per cell of the frame.

The generator of Agustsson et al. 2019 (SC mode) paints the regions that are not kept from a
semantic label map. Two labelers meet one interface, and the codec (`labelcode`) does not care
which made a map:

    ColourTextureLabeler  built in, offline, no model: what a cell looks like, not what it is
    OnnxLabeler           `--labels onnx:PATH`, a user's Cityscapes/ADE20K-style segmentation model

A label map is (⌈H/stride⌉, ⌈W/stride⌉) uint8, one id per stride×stride cell of the frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from ..errors import ModelError
from .base import Frame
from .runtime import image_input, onnx_session, run_image_model, shape_text

__all__ = ["DEFAULT_STRIDE", "ColourTextureLabeler", "Labeler", "OnnxLabeler", "create_labeler"]

DEFAULT_STRIDE = 8
Labels = npt.NDArray[np.uint8]


class Labeler(Protocol):
    """Frame in, label map out: (H, W, 3) uint8 RGB → (⌈H/stride⌉, ⌈W/stride⌉) uint8 ids < len(classes)."""

    #: Stable identifier of the labeler and its settings.
    name: str
    #: What each id means, in id order (at most 256).
    classes: list[str]
    #: Pixels per label cell along each side.
    stride: int

    def labels(self, rgb: Frame) -> Labels:
        """The label map of one RGB frame."""
        ...


def label_shape(height: int, width: int, stride: int) -> tuple[int, int]:
    """(⌈height/stride⌉, ⌈width/stride⌉): the label map's shape for a frame."""
    return -(-height // stride), -(-width // stride)


def _cell_means(image: npt.NDArray[np.float32], stride: int) -> npt.NDArray[np.float32]:
    """Mean over each stride×stride cell (edge cells padded by repeating the border): (h, w) or (h, w, C)."""
    height, width = image.shape[:2]
    rows, cols = label_shape(height, width, stride)
    padded = cv2.copyMakeBorder(image, 0, rows * stride - height, 0, cols * stride - width, cv2.BORDER_REPLICATE)
    # INTER_AREA at an integer factor is exactly the mean of each cell.
    return np.asarray(cv2.resize(padded, (cols, rows), interpolation=cv2.INTER_AREA), dtype=np.float32)


class ColourTextureLabeler:
    """Built-in labeler: each cell's colour family, lightness and texture, from fixed thresholds.

    These are appearance classes, not semantics: "green textured" is foliage or a green sweater
    alike. Cells are classified by their mean CIELAB colour and mean local gradient:
      colour:    neutral (chroma < 12) split dark / mid / light by L*, or one of six hue families
                 (Lab hue angle) split dark / light;
      texture:   smooth or textured (mean |∇L*| over the cell ≥ 4 L* units per pixel).
    30 classes; deterministic; no model, no data set.
    """

    NEUTRALS = ("dark grey", "mid grey", "light grey")
    #: Hue families by Lab hue angle: (name, start degree); each runs to the next one's start.
    HUES = (("red", -20.0), ("orange-brown", 35.0), ("yellow", 75.0), ("green", 115.0), ("blue", 200.0), ("purple", 290.0))
    CHROMA_NEUTRAL = 12.0
    TEXTURE_GRADIENT = 4.0

    def __init__(self, stride: int = DEFAULT_STRIDE) -> None:
        if stride < 1:
            raise ModelError(f"label stride {stride} is out of range (≥ 1)")
        self.stride = stride
        colours = list(self.NEUTRALS) + [f"{light} {hue}" for hue, _ in self.HUES for light in ("dark", "light")]
        self.classes = [f"{colour} {texture}" for colour in colours for texture in ("smooth", "textured")]
        self.name = f"colour-texture-v1-s{stride}"

    def labels(self, rgb: Frame) -> Labels:
        """Label map of one (H, W, 3) uint8 RGB frame: (⌈H/stride⌉, ⌈W/stride⌉) uint8 ids < 30."""
        lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2Lab)
        lightness = lab[..., 0]
        gradient = np.zeros(lightness.shape, dtype=np.float32)
        gradient[:, :-1] += cv2.absdiff(lightness[:, 1:], lightness[:, :-1])
        gradient[:-1, :] += cv2.absdiff(lightness[1:, :], lightness[:-1, :])
        cells = _cell_means(lab.astype(np.float32), self.stride)
        # OpenCV's 8-bit Lab: L* scaled to 0…255, a* and b* offset by 128.
        scale = np.float32(100.0 / 255.0)
        colour = self._colour(cells[..., 0] * scale, cells[..., 1] - 128.0, cells[..., 2] - 128.0)
        texture = _cell_means(gradient, self.stride) * scale >= self.TEXTURE_GRADIENT
        return np.asarray(colour * 2 + texture, dtype=np.uint8)

    def _colour(
        self, lightness: npt.NDArray[np.float32], a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.int64]:
        neutral = np.digitize(lightness, [33.0, 67.0])
        angle = (np.degrees(np.arctan2(b, a)) - self.HUES[0][1]) % 360.0
        starts = [start - self.HUES[0][1] for _, start in self.HUES]
        hue = np.digitize(angle, starts[1:])
        chromatic = len(self.NEUTRALS) + hue * 2 + (lightness >= 50.0)
        return np.where(np.hypot(a, b) < self.CHROMA_NEUTRAL, neutral, chromatic).astype(np.int64)


#: Class names of a 19-class model trained on Cityscapes (its train ids), used when the model names none.
CITYSCAPES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "terrain",
    "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip


class OnnxLabeler:
    """A user's semantic segmentation model (`--labels onnx:PATH`), e.g. trained on Cityscapes or ADE20K.

    Input: one float32 RGB image in [0, 1] (put any mean/std normalisation inside the graph), NCHW
    (1, 3, H, W) or NHWC (1, H, W, 3); a fixed H, W is honoured, a dynamic one gets the frame at its
    own size rounded to a multiple of 32. Output (the first): class scores (1, C, h, w) for NCHW
    input or (1, h, w, C) for NHWC, any h, w; scores are area-resized to the label map and argmaxed.
    An output of (1, h, w) or (h, w) integers is read as class ids already (resized nearest).
    Class names: the model's metadata property "classes" (comma-separated) if present, the
    Cityscapes names for 19 classes, else "class 0" … At most 256 classes.
    """

    def __init__(self, path: Path, stride: int = DEFAULT_STRIDE, threads: int = 1) -> None:
        from ..models.registry import file_sha256

        self._session = onnx_session(path, threads)
        self._path, self.stride = path, stride
        self._input = image_input(self._session, path, "labeler")
        probe = self._scores(np.zeros((64, 64, 3), dtype=np.uint8))
        self.classes = self._class_names(probe.shape[-1] if probe.ndim == 3 else None)
        self.name = f"onnx-{file_sha256(path)[:8]}-s{stride}"

    def _class_names(self, count: int | None) -> list[str]:
        metadata = self._session.get_modelmeta().custom_metadata_map.get("classes")
        names = [name.strip() for name in metadata.split(",")] if metadata else None
        if count is None and names is None:
            raise ModelError("outputs class ids but names no classes (add metadata property 'classes')", self._path)
        count = count if count is not None else len(names or [])
        if names is not None and len(names) != count:
            raise ModelError(f"metadata names {len(names)} classes, the output has {count}", self._path)
        if not 1 <= count <= 256:
            raise ModelError(f"{count} classes is out of range (1 … 256 for a uint8 label map)", self._path)
        return names or (list(CITYSCAPES) if count == len(CITYSCAPES) else [f"class {i}" for i in range(count)])

    def _scores(self, rgb: Frame) -> npt.NDArray[np.float32]:
        """The model's output for one frame: (h, w, C) scores, or (h, w) ids."""
        output = run_image_model(self._session, self._input, self._input.feed(rgb), self._path, "labeler")
        if output.ndim == 4 and output.shape[0] == 1:
            return output[0].transpose(1, 2, 0) if self._input.channels_first else output[0]
        if output.ndim in (2, 3) and np.issubdtype(output.dtype, np.integer):
            return output.reshape(output.shape[-2:])
        raise ModelError(
            f"the labeler needs class scores (1, C, h, w) or (1, h, w, C), or ids (1, h, w), as its first output; "
            f"this model gives {shape_text(output.shape)} {output.dtype}",
            self._path,
        )

    def labels(self, rgb: Frame) -> Labels:
        """Label map of one (H, W, 3) uint8 RGB frame: (⌈H/stride⌉, ⌈W/stride⌉) uint8 ids < len(classes)."""
        rows, cols = label_shape(rgb.shape[0], rgb.shape[1], self.stride)
        scores = self._scores(rgb)
        if scores.ndim == 2:
            ids = cv2.resize(scores.astype(np.int32), (cols, rows), interpolation=cv2.INTER_NEAREST)
            return np.asarray(np.clip(ids, 0, len(self.classes) - 1), dtype=np.uint8)
        channels = [
            cv2.resize(
                np.ascontiguousarray(scores[..., i : i + 256], dtype=np.float32), (cols, rows), interpolation=cv2.INTER_AREA
            )
            for i in range(0, scores.shape[-1], 256)
        ]
        stacked = np.concatenate([c.reshape(rows, cols, -1) for c in channels], axis=-1)
        return np.asarray(stacked.argmax(axis=-1), dtype=np.uint8)


def create_labeler(spec: str = "builtin", stride: int = DEFAULT_STRIDE, threads: int = 1) -> Labeler:
    """The labeler named by `spec` (`--labels`): "builtin" (`ColourTextureLabeler`) or "onnx:PATH".

    Args:
        spec: "builtin" or "onnx:" followed by a path to an .onnx file.
        stride: pixels per label cell along each side.
        threads: CPU threads for an ONNX model.
    Returns:
        A `Labeler`.
    """
    if spec == "builtin":
        return ColourTextureLabeler(stride)
    if spec.startswith("onnx:") and len(spec) > len("onnx:"):
        return OnnxLabeler(Path(spec[len("onnx:") :]), stride, threads)
    raise ModelError(f"unknown labeler {spec!r} (use 'builtin' or 'onnx:PATH')")
