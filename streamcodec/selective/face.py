"""Face detection: MediaPipe's short-range BlazeFace (vendored), boxes filled into a mask.

Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs".

frame ─letterbox 128x128, [-1, 1]─▶ BlazeFace ─▶ 896 anchors × (box offsets, score)
      ─sigmoid > 0.5─▶ boxes, grown by `margin` ─fill─▶ (H, W) bool

Every box above the threshold is filled: the union of overlapping boxes needs no NMS.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from ..models.registry import REGISTRY
from .base import Frame, Mask, resize
from .runtime import TfliteModel

INPUT = 128


@functools.cache
def anchors() -> npt.NDArray[np.float32]:
    """Anchor centres (896, 2) as x, y in [0, 1], in the model's output order.

    MediaPipe's SSD anchors for the short-range model: strides 8, 16, 16, 16 with two anchors per
    layer; layers of one stride share a grid, so a 16x16 grid with 2 anchors per cell, then 8x8 with 6.
    """
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = INPUT // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class FaceDetector:
    """Faces as filled boxes, grown by `margin` on each side (hair, chin and ears are kept too)."""

    def __init__(self, threads: int = 1, threshold: float = 0.5, margin: float = 0.2) -> None:
        model = REGISTRY.mask_model("face")
        self._model = TfliteModel(model, threads)
        self._logit = float(np.log(threshold / (1.0 - threshold)))
        self._margin = margin
        self.name = f"blazeface-{model.sha256[:8]}-t{threshold}-m{margin}"

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def boxes(self, frame: Frame) -> npt.NDArray[np.float32]:
        """Detected faces in frame pixels: (N, 4) float32 as x0, y0, x1, y1 (before the margin)."""
        height, width = frame.shape[:2]
        scale = INPUT / max(height, width)
        inner_w, inner_h = max(1, round(width * scale)), max(1, round(height * scale))
        left, top = (INPUT - inner_w) // 2, (INPUT - inner_h) // 2
        x = np.zeros((INPUT, INPUT, 3), dtype=np.float32)
        x[top : top + inner_h, left : left + inner_w] = resize(frame, inner_w, inner_h).astype(np.float32) / 127.5 - 1.0
        regressors, scores = self._model.run(x[None])
        keep = scores[0, :, 0] > self._logit  # sigmoid(score) > threshold, without overflow
        raw, centre = regressors[0, keep, :4] / INPUT, anchors()[keep]
        cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        box = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1) * INPUT
        box -= np.array([left, top, left, top], dtype=np.float32)
        return (box / scale).astype(np.float32)

    def mask(self, frame: Frame) -> Mask:
        """Face pixels of one RGB frame (boxes plus margin): (H, W) bool."""
        height, width = frame.shape[:2]
        mask = np.zeros((height, width), dtype=bool)
        for x0, y0, x1, y1 in self.boxes(frame):
            grow_x, grow_y = (x1 - x0) * self._margin, (y1 - y0) * self._margin
            top, bottom = max(0, int(y0 - grow_y)), min(height, int(np.ceil(y1 + grow_y)))
            left, right = max(0, int(x0 - grow_x)), min(width, int(np.ceil(x1 + grow_x)))
            mask[top:bottom, left:right] = True
        return mask
