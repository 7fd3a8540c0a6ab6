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

import numpy as np
import numpy.typing as npt

from ..bitstream import Frame, FrameType
from ..metrics import block_errors, luma
from .layer import BackgroundLayerDecoder

__all__ = ["BackgroundBound", "block_errors", "luma"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


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
