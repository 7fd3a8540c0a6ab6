"""The kept region as rectangles for ffmpeg's `addroi` filter (x265-roi).

`addroi` attaches one fixed rectangle per filter instance to every frame (its options cannot change
over time), so x265-roi uses the union of the kept region over the clip, covered by 16x16 blocks —
the granularity at which libx265/libx264 apply ROI QP offsets — merged into as few rectangles as a
row-run/column merge gives. The region is therefore the same pixels streamcodec keeps, at block
precision, made static: a fair but slightly generous ROI for moving subjects.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Quantizer offset on the kept region, as addroi's qoffset (−1..1, scaled by the encoder's QP range:
# −1/6 ≈ −8.5 QP in x265). Rate control still holds the target bitrate, so the background pays.
ROI_QOFFSET = "-1/6"
BLOCK = 16
MAX_RECTANGLES = 32

Rectangle = tuple[int, int, int, int]


def _row_runs(row: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) block indices of each run of True in one row of blocks."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _rectangles(blocks: npt.NDArray[np.bool_]) -> list[tuple[int, int, int, int]]:
    """Block rectangles (col, row, cols, rows): equal runs on consecutive rows are merged."""
    open_runs: dict[tuple[int, int], int] = {}  # run → first row it appeared in, still growing
    done: list[tuple[int, int, int, int]] = []
    for r in range(blocks.shape[0] + 1):
        runs = set(_row_runs(blocks[r])) if r < blocks.shape[0] else set()
        for run in [run for run in open_runs if run not in runs]:
            start = open_runs.pop(run)
            done.append((run[0], start, run[1] - run[0], r - start))
        for run in runs:
            open_runs.setdefault(run, r)
    return sorted(done, key=lambda rect: (rect[1], rect[0]))


def roi_rectangles(mask: npt.NDArray[np.bool_], block: int = BLOCK, limit: int = MAX_RECTANGLES) -> list[Rectangle]:
    """Pixel rectangles (x, y, w, h) covering every True pixel of `mask`, clipped to the frame.

    Args:
        mask: (H, W) bool, True in the kept region.
        block: rectangle granularity in pixels; doubled until at most `limit` rectangles remain.
        limit: most rectangles to return (each becomes one addroi filter).

    Returns:
        Rectangles in raster order; empty when the mask is.
    """
    height, width = mask.shape
    rows, cols = -(-height // block), -(-width // block)
    padded = np.zeros((rows * block, cols * block), dtype=bool)
    padded[:height, :width] = mask
    blocks = np.asarray(padded.reshape(rows, block, cols, block).any(axis=(1, 3)), dtype=bool)
    rectangles = _rectangles(blocks)
    if len(rectangles) > limit:
        return roi_rectangles(mask, block * 2, limit)
    result = []
    for col, row, ncols, nrows in rectangles:
        x, y = col * block, row * block
        result.append((x, y, min(ncols * block, width - x), min(nrows * block, height - y)))
    return result
