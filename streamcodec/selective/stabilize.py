"""Dilation and temporal stability of the kept region, on a block grid the fidelity codec can use.

raw union ─dilate `dilate_px` (ellipse)─▶ any pixel in a `block`² cell → cell kept
          ─max over the last `hold` + 1 frames─▶ cells → pixels, ∪ raw union

Causal: a region that appears is kept on its first frame; one that vanishes is held `hold` frames,
so a detector's one-frame dropout never shows as a hole, and the boundary moves in whole blocks
(16 px: an H.264 macroblock, the smallest HEVC CTU) instead of shimmering pixel by pixel. No
look-ahead, so no added latency for live use. The output always covers the raw union.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from ..errors import ModelError
from .base import Mask


class Stabilizer:
    """Turns each frame's raw union into the kept mask; `reset()` between clips."""

    def __init__(self, dilate_px: int = 8, block: int = 16, hold: int = 4) -> None:
        for label, value, low in (("dilate_px", dilate_px, 0), ("block", block, 1), ("hold", hold, 0)):
            if value < low:
                raise ModelError(f"mask {label} {value} is out of range (≥ {low})")
        self.dilate_px, self.block, self.hold = dilate_px, block, hold
        size = 2 * dilate_px + 1
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)) if dilate_px else None
        self.name = f"d{dilate_px}-b{block}-h{hold}"
        self._recent: deque[np.ndarray] = deque(maxlen=hold + 1)

    def reset(self) -> None:
        """Forget earlier frames: the next one is a clip's first."""
        self._recent.clear()

    def __call__(self, raw: Mask) -> Mask:
        """The kept mask for the next frame: (H, W) bool, a superset of `raw`."""
        height, width = raw.shape
        grown = raw if self._kernel is None else cv2.dilate(raw.astype(np.uint8), self._kernel).astype(bool)
        cells = self._cells(grown)
        if self._recent and self._recent[-1].shape != cells.shape:
            self._recent.clear()  # a size change starts afresh
        self._recent.append(cells)
        held = np.logical_or.reduce(np.stack(self._recent), axis=0)
        pixels = np.repeat(np.repeat(held, self.block, axis=0), self.block, axis=1)[:height, :width]
        return np.asarray(pixels | raw)

    def _cells(self, mask: Mask) -> Mask:
        b = self.block
        rows, cols = -(-mask.shape[0] // b), -(-mask.shape[1] // b)
        padded = np.zeros((rows * b, cols * b), dtype=bool)
        padded[: mask.shape[0], : mask.shape[1]] = mask
        return np.asarray(padded.reshape(rows, b, cols, b).any(axis=(1, 3)))
