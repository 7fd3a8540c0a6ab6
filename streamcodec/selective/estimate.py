"""The encoder's running estimate of the background, which either background layer codes at keyframes.

    frame, kept ─▶ estimate += BACKGROUND_RATE · (frame − estimate) outside the kept pixels ─▶ picture()

The estimate starts as the first frame and follows the picture wherever it is not kept, so a
person who walks on leaves the background behind them. `seen` marks the pixels ever outside the
kept region: elsewhere the estimate still holds the first frame's foreground.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from ..metrics import psnr
from .bound import block_errors, luma

__all__ = ["BACKGROUND_RATE", "PLATE_REUSE_DB", "BackgroundEstimate", "unchanged"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

#: Re-send the last background's bytes while the estimate stays this close to the one it was coded from (dB).
PLATE_REUSE_DB = 38.0
#: Weight of the newest frame in the running background estimate (outside the kept region).
BACKGROUND_RATE = 0.25
#: With a background bound: reuse the last background while no block of the estimate moved by more than this share of it.
REUSE_SHARE = 0.25


class BackgroundEstimate:
    """The running background: starts as the first frame, then follows the picture outside the kept region."""

    def __init__(self) -> None:
        self._estimate: npt.NDArray[np.float32] | None = None
        #: Pixels seen outside the kept region at least once ((H, W) bool; None before the first frame).
        self.seen: Mask | None = None

    def observe(self, frame: Image, kept: Mask) -> None:
        """Follow `frame` ((H, W, 3) uint8) outside the kept pixels `kept` ((H, W) bool)."""
        self.seen = ~kept if self.seen is None else self.seen | ~kept
        if self._estimate is None:
            self._estimate = frame.astype(np.float32)
            return
        # estimate += rate · (frame − estimate) outside the kept region, in place (boolean indexing is ~90x slower).
        cv2.accumulateWeighted(frame, self._estimate, BACKGROUND_RATE, mask=(~kept).view(np.uint8))

    def picture(self) -> Image:
        """The estimate as an (H, W, 3) uint8 picture (a copy: later frames go on updating the estimate)."""
        assert self._estimate is not None
        return np.clip(self._estimate + 0.5, 0, 255).astype(np.uint8)


def unchanged(estimate: Image, held: Image | None, bound: float | None = None) -> bool:
    """Whether `estimate` is close enough to `held`, the estimate the last background was coded from, to reuse its bytes.

    Compared with that estimate, not with its decode: coding noise at the background's CRF alone would keep
    the PSNR under the threshold. With a background bound (`SelectiveOptions.max_background_error`) the test
    is local: no 16x16 block's mean absolute luma difference above a quarter of the bound (a person-sized
    change never moves the whole-frame PSNR; the bound would keep such blocks at every frame of the GOP).
    Without one, the whole-frame PSNR above `PLATE_REUSE_DB`, as streams have always been coded.
    """
    if held is None:
        return False
    if bound:
        return bool(block_errors(luma(estimate), luma(held)).max() <= bound * REUSE_SHARE)
    return psnr(estimate, held) > PLATE_REUSE_DB
