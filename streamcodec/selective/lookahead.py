"""Offline, a keyframe's background from the frames ahead: a clean plate, free of people who are about to move.

    push(frame) ─▶ [ Waiting: frame, its detectors' mask, cut? ] × up to `frames` ─▶ next(): the oldest, to code
    keyframe k:    frames k .. k + frames − 1 (never past the next cut), ≤ SAMPLES of them evenly spaced
                   ─▶ per pixel, the median of the samples where its 16-px block is not kept ─▶ clean plate

The running estimate (estimate.py) only knows the past: at a keyframe it holds whoever stood outside the
kept region until then, a person the detectors miss because they stand still, say, who walks off a second
later and stays in the plate for the whole GOP (the background bound then keeps those blocks, at a cost).
Files are coded offline, so the encoder holds the frames of the keyframe's GOP (up to
`SelectiveOptions.plate_lookahead` seconds) before coding it, and its plate takes each pixel's median over
them: whoever is there less than half the time is not in it. Pixels kept in every sample keep the estimate.

Memory: the encoder holds `frames` = min(GOP, `plate_lookahead` x frame rate) frames, at most
`MAX_PLATE_LOOKAHEAD` seconds' worth: a copy of each RGB frame, its (H, W) bool mask and its decoded
source frame (4:2:0), about 5.5 bytes a pixel: at GOP 25, 42 MB at 640x480, 285 MB at 1920x1080. The
median works on ≤ SAMPLES of them, STRIP_BLOCKS rows of blocks at a time (SAMPLES x 64 x W x 3 int16:
7 MB for 1920 wide). Time: one median per keyframe, 60 ms at 640x480 and 0.4-0.5 s at 1920x1080
(2026-12-07, on 2 cores shared with other work: load average 5).
The masks are still found in stream order, each frame's as it arrives (`MaskPipeline`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .maskcode import block_mask, expand

__all__ = ["SAMPLES", "Clean", "Lookahead", "Waiting", "clean_plate"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
#: A clean plate: the median picture, and where it holds one (elsewhere every sample was kept).
Clean = tuple[Image, Mask]
#: The most frames the median takes (evenly spaced over the window; `_median9` is for exactly 9).
SAMPLES = 9
#: Rows of 16-px blocks the median works on at a time (bounds its memory).
STRIP_BLOCKS = 4
#: Stands for half of a pixel's kept samples in the partition (the other half: -1): above every level.
KEPT = 32767


@dataclass(frozen=True)
class Waiting:
    """A frame the offline encoder holds: the picture, its source, the detectors' (H, W) mask, whether it starts a shot."""

    rgb: Image
    source: Any
    mask: Mask
    cut: bool
    #: Its saliency weight per block (`saliency.Saliency.observe`); None without saliency.
    tiers: npt.NDArray[np.float32] | None = None


class Lookahead:
    """Holds up to `frames` frames so that a keyframe's plate sees its GOP ahead (0 or 1: holds none)."""

    def __init__(self, frames: int, block: int) -> None:
        self.frames = frames
        self._block = block
        self._queue: deque[Waiting] = deque()
        self._current: Waiting | None = None  # the frame last handed out, being coded

    def push(self, frame: Waiting) -> None:
        """Hold the stream's next frame."""
        self._queue.append(frame)

    def next(self, end: bool = False) -> Waiting | None:
        """The oldest frame, once the window behind it is full (at the stream's `end`: while any is held); else None."""
        if len(self._queue) < (1 if end else max(1, self.frames)):
            return None
        self._current = self._queue.popleft()
        return self._current

    def clean(self) -> Clean | None:
        """The clean plate of the frame last handed out, over its window (None without look-ahead)."""
        if self.frames <= 1 or self._current is None:
            return None
        window = [self._current]
        for frame in self._queue:
            if frame.cut or len(window) == self.frames:
                break
            window.append(frame)
        return clean_plate([f.rgb for f in window], [f.mask for f in window], self._block)


def clean_plate(frames: list[Image], masks: list[Mask], block: int) -> Clean:
    """Each pixel's median over ≤ SAMPLES of `frames` (evenly spaced) where its `block`-px block is not kept.

    Args:
        frames: (H, W, 3) uint8, the window from the keyframe on.
        masks: their (H, W) bool masks (kept pixels; each counts by its block, as the encoder keeps them).
        block: the keep block's side.
    Returns:
        (H, W, 3) uint8 medians (of an even count, one of the two middle values; 0 where uncovered), (H, W) bool covered.
    """
    picks = np.unique(np.round(np.linspace(0, len(frames) - 1, min(len(frames), SAMPLES))).astype(int))
    height, width = frames[0].shape[:2]
    # Short windows are padded with samples kept everywhere, so the median is always one of 9.
    blocks = [block_mask(masks[i], block) for i in picks]
    kept = np.stack(blocks + [np.ones_like(blocks[0])] * (SAMPLES - len(picks)), axis=-1)  # (⌈H/16⌉, ⌈W/16⌉, 9) by block
    # A pixel's kept samples go half below every level, half above: the middle of all 9 is the middle of the rest.
    low = kept & (np.cumsum(kept, axis=-1) <= kept.sum(axis=-1, keepdims=True) // 2)
    out = np.zeros((height, width, 3), np.uint8)
    for top in range(0, kept.shape[0], STRIP_BLOCKS):  # STRIP_BLOCKS rows of blocks at a time: bounded memory
        rows = slice(top * block, (top + STRIP_BLOCKS) * block)
        samples: list[npt.NDArray[np.int16]] = []
        for sample in range(SAMPLES):
            picture = frames[picks[sample]][rows].astype(np.int16) if sample < len(picks) else np.zeros_like(samples[0])
            for marked, value in ((low[..., sample], -1), (kept[..., sample] & ~low[..., sample], KEPT)):
                pixels = np.repeat(np.repeat(marked[top : top + STRIP_BLOCKS], block, axis=0), block, axis=1)
                picture[pixels[: picture.shape[0], :width]] = value
            samples.append(picture)
        out[rows] = np.clip(_median9(samples), 0, 255).astype(np.uint8)
    covered = expand(np.asarray(~kept.all(axis=-1)), height, width, block)
    out[~covered] = 0
    return out, covered


def _median9(samples: list[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
    """The elementwise median of 9 equal-shaped arrays: Paeth's network of 19 exchanges (a sort would take ~10x longer)."""
    for first, second in _MEDIAN9:
        samples[first], samples[second] = np.minimum(samples[first], samples[second]), np.maximum(samples[first], samples[second])
    return samples[4]


_MEDIAN9 = (
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
)  # fmt: skip
