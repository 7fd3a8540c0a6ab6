"""Scene cuts: whether a frame starts a new shot, from it and the frame before (causal, so live too).

    frame ─luma─▶ 40-cell-wide thumbnail (area means) ─▶ z = (t − mean) / max(std, 1) ┐
    previous frame's z ────────────────────────────────────────────────────────────────┴▶ median |z − z'| > threshold

Each thumbnail is normalized to zero mean and unit spread, so a light switched on, flicker or auto
exposure (a gain or an offset of the whole picture) moves nothing; the median over the cells only
moves when most of the picture changes, so people walking, even near the camera, do not. A new shot
changes nearly every cell: two unrelated pictures give a median near 0.95 (the median of |N(0, 2)|).

Measured (2026-12-07; `SceneCuts.score` of each frame against the one before, 40 cells across):
    no cut   still-camera clips of scripts/data/make_still_camera_clip.py (crowd, leaves, stops,
             people; 60-100 frames, noise, flicker, foliage) at most 0.037; the crowd with a gain
             step of 1.3 or 0.7 0.047; samples/bbb_640x360.mp4 0.022; carphone 0.033; bikes.mp4's
             fast foreground motion 0.27; the bound's 160x96 test clips, where a person is a sixth
             of the picture, 0.26 (their light step of 1.3: 0.025)
    cut      bikes.mp4's five cuts 0.84-1.12; crowd → bikes 0.88, crowd → carphone 0.87, crowd → garage
             (`make_still_camera_clip.py --scene cut`) 0.92, the test clips' rocket → coffee 1.03
so the default threshold, 0.5, lies about 2x from both.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_SCENE_CUT", "MAX_SCENE_CUT", "SceneCuts", "cut_score"]

Image = npt.NDArray[np.uint8]
Thumb = npt.NDArray[np.float32]

#: The default threshold on `cut_score` (see the module docstring for what it separates).
DEFAULT_SCENE_CUT = 0.5
#: The largest threshold an option may give (a score above it would take two pictures more than opposite).
MAX_SCENE_CUT = 4.0
#: Cells across the thumbnail: its cost does not grow with the frame.
CELLS = 40
#: Spread (luma levels) under which a thumbnail counts as flat: its noise is not blown up to unit spread.
FLAT = 1.0


def thumbnail(rgb: Image) -> Thumb:
    """The normalized luma thumbnail of an (H, W, 3) uint8 frame: (rows, CELLS) float32, zero mean, spread ≤ 1."""
    height, width = rgb.shape[:2]
    rows = max(1, round(CELLS * height / width))
    small = cv2.resize(np.ascontiguousarray(rgb), (CELLS, rows), interpolation=cv2.INTER_AREA)
    cells = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.asarray((cells - cells.mean()) / max(float(cells.std()), FLAT), dtype=np.float32)


def cut_score(previous: Thumb, current: Thumb) -> float:
    """The median over the cells of |current − previous| of two `thumbnail`s (0: the same picture up to light)."""
    return float(np.median(np.abs(current - previous)))


class SceneCuts:
    """Tells, frame by frame in stream order, which frames start a new shot."""

    def __init__(self, threshold: float) -> None:
        """`threshold` on `cut_score` (> 0)."""
        self.threshold = threshold
        self._previous: Thumb | None = None
        #: The last frame's score against the one before (0 for the first).
        self.score = 0.0

    def cut(self, rgb: Image) -> bool:
        """Whether `rgb`, the stream's next frame, starts a new shot (never the first frame: it starts the stream)."""
        current = thumbnail(rgb)
        self.score = 0.0 if self._previous is None else cut_score(self._previous, current)
        self._previous = current
        return self.score > self.threshold
