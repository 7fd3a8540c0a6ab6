"""Blocks over the bound outside the kept region, and the picture of the worst one: source | decoded.

    each frame: source, decoded ─luma─▶ metrics.block_errors (16x16 mean |Δ|, BT.601)
                ─▶ only blocks no kept pixel touches ─▶ frame counted if one exceeds BLOCK_ERROR_BOUND;
                                                         the largest block so far kept with its frame
    end of clip: OUT/worst/<clip>-<codec>-<point>.png — source and decoded frame side by side, block outlined

Whole-frame and even outside-region PSNR average a person-sized error away; a 16x16 block does not
(issue 21: a phantom person is 40-100 levels there, coding noise 1-6). The kept mask is the eval's,
the same for every codec, so x265 and SVT-AV1 are held to the same rule as selective mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from ..io.safe_output import write_file
from ..metrics import BLOCK_ERROR_BOUND, ERROR_BLOCK, block_errors, luma

Frame = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

#: The outline drawn round the worst block (RGB) and its width in pixels of the picture as shown.
OUTLINE = (255, 0, 255)
_LINE = 2
#: Pictures narrower than this are enlarged (nearest neighbour, whole factors) so a 16-px block can be seen.
_MIN_WIDTH = 320
_GAP = 8


def outside_blocks(kept: Mask, block: int = ERROR_BLOCK) -> Mask:
    """The blocks of an (H, W) bool kept mask that hold no kept pixel: (⌈H/block⌉, ⌈W/block⌉) bool."""
    height, width = kept.shape
    rows, cols = -(-height // block), -(-width // block)
    padded = np.zeros((rows * block, cols * block), dtype=bool)
    padded[:height, :width] = kept
    return np.asarray(~padded.reshape(rows, block, cols, block).any(axis=(1, 3)))


@dataclass
class WorstBlock:
    """The largest block error outside the kept region seen so far, where it was and the frames that show it."""

    error: float
    frame: int
    row: int
    col: int
    source: Frame
    decoded: Frame


class BlockBound:
    """Counts the frames with a block over `bound` outside the kept region and keeps the worst block of a clip."""

    def __init__(self, bound: float = BLOCK_ERROR_BOUND, block: int = ERROR_BLOCK) -> None:
        self.bound, self.block = bound, block
        self.frames = 0
        self.frames_over = 0
        self.worst: WorstBlock | None = None

    def add(self, index: int, source: Frame, decoded: Frame, kept: Mask) -> None:
        """Frame `index`: (H, W, 3) uint8 source and decoded frames, the (H, W) bool kept mask."""
        self.frames += 1
        errors = block_errors(luma(source), luma(decoded), self.block)
        outside = np.where(outside_blocks(kept, self.block), errors, -np.inf)
        row, col = np.unravel_index(int(np.argmax(outside)), outside.shape)
        largest = float(outside[row, col])
        if not math.isfinite(largest):
            return  # every block holds kept pixels: nothing outside to measure
        self.frames_over += largest > self.bound
        if self.worst is None or largest > self.worst.error:
            self.worst = WorstBlock(largest, index, int(row), int(col), source.copy(), decoded.copy())

    def summary(self) -> dict[str, float | int | None]:
        """frames_over_bound, worst_block (levels) and worst_frame; None where nothing was measured."""
        if not self.frames:
            return {"frames_over_bound": None, "worst_block": None, "worst_frame": None}
        worst = self.worst
        return {
            "frames_over_bound": self.frames_over,
            "worst_block": None if worst is None else worst.error,
            "worst_frame": None if worst is None else worst.frame,
        }


def side_by_side(worst: WorstBlock, block: int = ERROR_BLOCK) -> Frame:
    """Source | decoded with the worst block outlined in both: (H·k, 2·W·k + gap, 3) uint8, k enlarges small frames."""
    height, width = worst.source.shape[:2]
    scale = max(1, math.ceil(_MIN_WIDTH / width))
    top, left = worst.row * block * scale, worst.col * block * scale
    bottom, right = min(top + block * scale, height * scale), min(left + block * scale, width * scale)
    halves = []
    for frame in (worst.source, worst.decoded):
        picture = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
        _outline(picture, top, left, bottom, right)
        halves.append(picture)
    gap = np.full((height * scale, _GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([halves[0], gap, halves[1]], axis=1)


def _outline(picture: Frame, top: int, left: int, bottom: int, right: int) -> None:
    """Draw a rectangle just outside [top, bottom) x [left, right), clipped to the picture, so the block stays visible."""
    y0, x0 = max(top - _LINE, 0), max(left - _LINE, 0)
    y1, x1 = min(bottom + _LINE, picture.shape[0]), min(right + _LINE, picture.shape[1])
    colour = np.array(OUTLINE, dtype=np.uint8)
    picture[y0:top, x0:x1] = colour
    picture[bottom:y1, x0:x1] = colour
    picture[y0:y1, x0:left] = colour
    picture[y0:y1, right:x1] = colour


def write_worst_image(worst: WorstBlock, path: Path) -> None:
    """Write `side_by_side(worst)` as a PNG (its folder made; an existing file replaced, a symlink never followed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(side_by_side(worst))
    write_file(path, lambda partial: picture.save(partial, format="PNG"), force=True)
