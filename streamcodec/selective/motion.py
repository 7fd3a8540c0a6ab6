"""Motion: OpenCV's MOG2 background subtraction, for what moves in front of a still camera.

Runs at most `work_width` pixels wide (the cost stays flat for any input size), with a fixed low
learning rate (0.005: something still for ~20 frames becomes background; where a moving object
started is marked as long, a "ghost"), so that a moving object is found whole rather than absorbed
by MOG2's fast start-up learning; a morphological opening drops the speckle of sensor and
compression noise. A camera that pans marks most of the frame: conservative (all kept).
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import Frame, Mask, resize


class MotionMasker:
    """Foreground of a MOG2 background model, per frame in clip order; the first frame has none."""

    def __init__(self, learning_rate: float = 0.005, var_threshold: float = 25.0, work_width: int = 320) -> None:
        self._learning_rate = learning_rate
        self._var_threshold = var_threshold
        self._work_width = work_width
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.name = f"mog2-lr{learning_rate}-v{var_threshold}-w{work_width}"
        self.reset()

    def reset(self) -> None:
        """Start a new background model: the next frame is a clip's first."""
        self._model = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=self._var_threshold, detectShadows=False)
        self._frames = 0

    def mask(self, frame: Frame) -> Mask:
        """Moving pixels of the next frame of the clip: (H, W) bool."""
        height, width = frame.shape[:2]
        scale = min(1.0, self._work_width / width)
        small = resize(frame, max(1, round(width * scale)), max(1, round(height * scale))) if scale < 1.0 else frame
        # The first frame only initialises the model (rate 1): with nothing to compare, nothing moves.
        foreground = self._model.apply(small, learningRate=1.0 if self._frames == 0 else self._learning_rate)
        self._frames += 1
        if self._frames == 1:
            return np.zeros((height, width), dtype=bool)
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, self._kernel)
        if scale < 1.0:
            foreground = cv2.resize(foreground, (width, height), interpolation=cv2.INTER_NEAREST)
        return np.asarray(foreground > 0)
