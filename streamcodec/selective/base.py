"""The one interface every mask kind meets, and the frame/mask types they share."""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.bool_]
Frame = npt.NDArray[np.uint8]


class FrameMasker(Protocol):
    """One kind of kept region (person, face, motion, text, a user's mask): frame in, (H, W) bool out.

    Frames come in clip order; `reset()` starts a new clip, so kinds with state over time
    (background subtraction, a mask video) begin afresh.
    """

    #: Stable identifier of the model and settings; part of the mask source's name.
    name: str

    def reset(self) -> None:
        """Forget everything seen so far; the next frame is a clip's first."""
        ...

    def mask(self, frame: Frame) -> Mask:
        """Pixels of this kind in one (H, W, 3) uint8 RGB frame: (H, W) bool."""
        ...


def resize(image: npt.NDArray[Any], width: int, height: int) -> npt.NDArray[Any]:
    """Resize for a model input (area average when shrinking, bilinear when growing)."""
    shrinking = width * height < image.shape[0] * image.shape[1]
    return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR))


def upscale_probability(probability: npt.NDArray[np.float32], height: int, width: int, threshold: float) -> Mask:
    """A low-resolution probability map → (height, width) bool, interpolated before thresholding (smooth edges)."""
    full = cv2.resize(probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(full > threshold)
