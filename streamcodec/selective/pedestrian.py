"""Pedestrians: the selfie segmenter run on overlapping tiles, so that people far from the camera are seen.

The selfie segmenter squeezes the whole frame into 256x256: a person 40-120 px tall in a 640x480 frame
is 20-65 px there, too small for a model made for close-ups (on our still-camera clips it misses half
of them, scripts/benchmarks/mask_recall.py). On a tile half the frame's height each is two to three
times larger. OpenCV's HOG people detector (Dalal and Triggs 2005, full-body windows of 64x128 or
Daimler's 48x96) was measured too: the default model covered 2 % of the upper-body photos our clips
paste, the Daimler model marked 44 % of the frame, each at about 100 ms a frame (docs/selective.md).

    frame ─▶ tiles of side H/2, overlapping by 1/6 ─▶ `per_frame` of them, in turn ─▶ selfie segmenter
          ─▶ each tile's last mask, held until its next turn ─▶ ∪ ─▶ (H, W) bool

Every tile is segmented on a clip's first frame; then `per_frame` tiles a frame, round the grid, so the
cost stays that of `per_frame` segmenter runs. A tile's mask is held until its next turn: a person who
walks is also found by the motion kind; one who stands still, distant, is found only here.
"""

from __future__ import annotations

import numpy as np

from .base import Frame, Mask
from .person import SelfieSegmenter

OVERLAP = 6  # neighbouring tiles overlap by 1/OVERLAP of a side: a person cut by one tile's edge is whole in the next


def tile_origins(height: int, width: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of square tiles of `side` px covering a height x width frame, row by row."""
    step = max(1, side - side // OVERLAP)

    def starts(length: int) -> list[int]:
        last = max(length - side, 0)
        return sorted({*range(0, last, step), last})

    return [(y, x) for y in starts(height) for x in starts(width)]


class TiledPersonSegmenter:
    """People at any distance: the selfie segmenter on tiles of half the frame's height, `per_frame` tiles a frame."""

    def __init__(self, threads: int = 1, per_frame: int = 2, threshold: float = 0.5) -> None:
        self._segmenter = SelfieSegmenter(threads, threshold)
        self._per_frame = per_frame
        self.name = f"tiled-{self._segmenter.name}-n{per_frame}"
        self.reset()

    def reset(self) -> None:
        """Forget the tiles' masks: the next frame is a clip's first, and every tile is segmented."""
        self._shape: tuple[int, int] = (0, 0)
        self._tiles: list[tuple[int, int]] = []
        self._masks: list[Mask] = []
        self._next = 0

    def mask(self, frame: Frame) -> Mask:
        """Person pixels of the next frame of the clip, each tile's as of its last turn: (H, W) bool."""
        height, width = frame.shape[:2]
        side = max(1, min(height, width) // 2)
        if (height, width) != self._shape:  # a clip's first frame, or a new size
            self._shape, self._tiles = (height, width), tile_origins(height, width, side)
            self._masks = [self._segment(frame, y, x, side) for y, x in self._tiles]
            self._next = 0
        else:
            for _ in range(min(self._per_frame, len(self._tiles))):
                y, x = self._tiles[self._next]
                self._masks[self._next] = self._segment(frame, y, x, side)
                self._next = (self._next + 1) % len(self._tiles)
        union = np.zeros((height, width), dtype=bool)
        for (y, x), tile in zip(self._tiles, self._masks, strict=True):
            union[y : y + side, x : x + side] |= tile
        return union

    def _segment(self, frame: Frame, y: int, x: int, side: int) -> Mask:
        return self._segmenter.mask(np.ascontiguousarray(frame[y : y + side, x : x + side]))
