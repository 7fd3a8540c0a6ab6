"""The background bound (`--max-background-error`): the decoder never shows, outside the kept region, what is not there.

    keyframe: background sections ─▶ the stream's own background decoder ─▶ picture P (what every decoder shows)
    each frame: source ─luma─┐
                P ───luma────┴▶ |·| ─16x16 mean─▶ > bound, outside the kept blocks ─▶ kept too

Outside the kept blocks the decoder shows the keyframe's background and nothing else: the composite's
alpha is 0 there (feathering stays inside the kept region), and the fidelity layer's fill is never
shown. So the encoder runs the very decoder class the stream config names on the very sections the
packet carries (full plate, plate update against the chain, or synthesized latents and labels) and
knows that picture to the byte. A block whose 16x16 mean absolute luma error (BT.601 from RGB) exceeds
the bound joins the kept region for the frame and is coded from the source by the fidelity layer: a
person who left, one the detectors missed, a light switched on, a new shot after a cut. The mask code
carries any set of blocks, so decoders need nothing new. The running background estimate learns from
every block outside the detectors' mask, those included, so the next keyframe's background holds what
was revealed.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from ..bitstream import Frame, FrameType
from .layer import BackgroundLayerDecoder

__all__ = ["BackgroundBound", "block_errors", "luma"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


def luma(rgb: Image) -> Image:
    """BT.601 luma of an (H, W, 3) uint8 RGB picture: (H, W) uint8 (OpenCV's rounding, the same on both sides)."""
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))


def block_errors(first: Image, second: Image, block: int = 16) -> npt.NDArray[np.float32]:
    """Mean absolute difference of two (H, W) uint8 luma pictures per `block`² block (edge blocks: their own pixels).

    Returns:
        (⌈H/block⌉, ⌈W/block⌉) float32.
    """
    height, width = first.shape
    # One integral image, read at the block corners: ~6x faster than summing a padded float copy.
    total = cv2.integral(cv2.absdiff(first, second), sdepth=cv2.CV_32S)
    rows, cols = _edges(height, block), _edges(width, block)
    corners = total[np.ix_(rows, cols)].astype(np.int64)
    sums = corners[1:, 1:] - corners[:-1, 1:] - corners[1:, :-1] + corners[:-1, :-1]
    counts = np.outer(np.diff(rows), np.diff(cols))
    return np.asarray(sums / counts, dtype=np.float32)


def _edges(size: int, block: int) -> npt.NDArray[np.int64]:
    """Block boundaries along one side: 0, block, 2·block, …, size."""
    return np.append(np.arange(0, size, block), size)


class BackgroundBound:
    """The encoder's copy of the decoder's background, and the blocks of a frame it would get wrong."""

    def __init__(self, limit: float, decoder: Callable[[], BackgroundLayerDecoder], block: int = 16) -> None:
        """`limit` in luma levels; `decoder` builds the stream's background layer decoder (at the first keyframe)."""
        self.limit = limit
        self.block = block
        self._make_decoder = decoder
        self._decoder: BackgroundLayerDecoder | None = None
        self._luma: Image | None = None
        #: The background the decoder shows in this GOP ((H, W, 3) uint8; None before the first keyframe's).
        self.picture: Image | None = None

    def keyframe(self, sections: dict[int, bytes], blocks: Mask) -> None:
        """Decode a keyframe's background sections exactly as the decoder will (its layer decoder, in stream order)."""
        if self._decoder is None:
            self._decoder = self._make_decoder()
        picture = self._decoder.picture(Frame(FrameType.SELECTIVE_INTRA, sections, 0), blocks)
        self._decoder.notes.clear()
        if picture is not None and picture is not self.picture:
            self.picture, self._luma = picture, luma(picture)

    def over(self, rgb: Image, blocks: Mask) -> Mask:
        """The blocks outside `blocks` whose background is more than the bound from `rgb`: (⌈H/16⌉, ⌈W/16⌉) bool."""
        if self._luma is None:
            return np.zeros_like(blocks)
        errors = block_errors(luma(rgb), self._luma, self.block)
        return np.asarray((errors > self.limit) & ~blocks)
