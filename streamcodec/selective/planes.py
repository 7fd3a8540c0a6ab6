"""The fidelity layer's input as 4:2:0 planes, taking the kept blocks from the source's own planes.

The encoder works on RGB frames, and the fidelity codec takes 4:2:0. Converting the decoded source
RGB back to 4:2:0 is not lossless: on carphone the round trip alone is 43.8 dB (Y 46.9, U/V 51 dB),
noise that x265 or SVT-AV1 coding the file directly never see, and which costs about 0.5 dB inside
the kept region at 35 dB. When the source frame is 8-bit 4:2:0 and converts to exactly the RGB the
encoder was given (so the decoder's conversion of those planes shows the source), the kept blocks
are taken from its planes unchanged; the fill outside is converted as before.

Planes are one (H * 3 // 2, W) uint8 array, I420 order (Y, then U and V at half size each), as PyAV
reads and writes yuv420p; the 16-px blocks are 8-px cells in U and V.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .colour import frame_to_rgb, rgb_to_frame

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Planes = npt.NDArray[np.uint8]


def usable_source(source: Any, rgb: Image, matrix: str = "bt601") -> bool:
    """Whether `source` (an av.VideoFrame) may stand in for `rgb`: yuv420p, its size, and converting to it exactly by `matrix`.

    Also needs a width even and a height a multiple of 4, so that the planes stack as one I420 array.
    """
    height, width = rgb.shape[:2]
    if source is None or source.format.name != "yuv420p" or (source.width, source.height) != (width, height):
        return False
    if width % 2 or height % 4 or min(width, height) < 16:
        return False
    return bool(np.array_equal(frame_to_rgb(source, matrix), rgb))


def source_matrix(source: Any, rgb: Image) -> str:
    """The colour matrix (of colour.MATRICES) whose conversion of `source` gives exactly `rgb`; bt601 if none does."""
    return next((matrix for matrix in ("bt709",) if usable_source(source, rgb, matrix)), "bt601")


def to_planes(rgb: Image, matrix: str = "bt601") -> Planes:
    """(H, W, 3) uint8 RGB → I420 planes, by the fidelity layer's own conversion."""
    return np.asarray(rgb_to_frame(rgb, matrix).to_ndarray(), dtype=np.uint8)


def source_planes(source: Any) -> Planes:
    """The planes of a yuv420p av.VideoFrame (a copy)."""
    return np.array(source.to_ndarray(), dtype=np.uint8)


def _plane_masks(blocks: Mask, height: int, width: int, block: int) -> tuple[Mask, Mask]:
    """The kept cells at luma and at chroma resolution."""
    luma = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:height, :width]
    half = block // 2
    chroma = np.repeat(np.repeat(blocks, half, axis=0), half, axis=1)[: height // 2, : width // 2]
    return luma, chroma


def merge(inside: Planes, outside: Planes, blocks: Mask, block: int = 16) -> Planes:
    """`inside`'s planes in the kept blocks, `outside`'s elsewhere.

    Args:
        inside, outside: I420 planes of the same (H, W) picture.
        blocks: (⌈H/block⌉, ⌈W/block⌉) bool, True where kept.
        block: the cell size in luma pixels (even).
    Returns:
        New I420 planes.
    """
    width = inside.shape[1]
    height = inside.shape[0] * 2 // 3
    luma, chroma = _plane_masks(blocks, height, width, block)
    out = np.where(np.vstack([luma, chroma.reshape(-1, width), chroma.reshape(-1, width)]), inside, outside)
    return np.asarray(out, dtype=np.uint8)
