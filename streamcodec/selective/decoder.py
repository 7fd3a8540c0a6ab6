"""The selective decoder: a packet's mask, fidelity and background sections back to one picture.

    packet ─unpack, check the reference─▶ MASK ─▶ blocks ─────────────────────────────┐
                                          FIDELITY ─▶ fidelity layer decoder ─▶ picture ├─▶ composite ─▶ (H, W, 3)
                                          keyframe: PLATE… ─▶ background layer decoder ┘

With `give_planes`, each frame also comes as 4:2:0 planes (`last_planes`): the fidelity codec's own decoded
planes in the kept blocks, the background converted once per keyframe at the stream's matrix elsewhere
(`planes.PlanesCompositor`), so that a 4:2:0 output carries the kept region without an RGB round trip.

The layers' decoders are the ones the stream config names (`kinds.py`); this class only checks the
packet, keeps the keyframe's background for its GOP and composites (see `codec.py` for the format).
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, FrameType, StreamConfig
from ..engines import Backend
from ..errors import CorruptStreamError, StreamcodecError, UnsupportedStreamError
from .kinds import BACKGROUND_LAYERS, FIDELITY_LAYERS
from .maskcode import decode_mask
from .options import BLOCK, SC_QUALITY_LEVELS, Compositor
from .planes import Planes, PlanesCompositor, to_planes

__all__ = ["SelectiveDecoder"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


class SelectiveDecoder:
    """Decodes a selective stream's packets to RGB; refuses inter frames after damage until the next keyframe."""

    def __init__(self, config: StreamConfig, *, backend: str | Backend = "auto", compose: bool = True) -> None:
        """Check the configuration and prepare the layers' decoders.

        Args:
            config: a selective stream's configuration.
            backend: inference backend for the synthesized background and the learned fidelity layer.
            compose: False for the encoder's loop, which needs the layers but not the picture
                (`decode` then returns the fidelity layer).
        """
        config.validate()
        self.compose = compose
        if config.mode != "sc":
            raise UnsupportedStreamError(f"stream mode {config.mode!r} is not selective")
        if not 1 <= config.quality <= SC_QUALITY_LEVELS:
            raise CorruptStreamError(f"stream configuration quality {config.quality} is outside 1..{SC_QUALITY_LEVELS}")
        self.config = config
        extra = config.extra
        self._compositor = Compositor(int(extra["feather"]))  # type: ignore[call-overload]
        # The background first: its decoder checks the model, coded sizes and channels, as GC would.
        self._background = BACKGROUND_LAYERS[str(extra["background"])].decoder(config, backend)
        self._fidelity = FIDELITY_LAYERS[str(extra["fidelity"])].decoder(config, backend)
        self._shown: Image | None = None  # this GOP's background
        #: What the caller should be told (a keyframe whose plate update this decoder could not use);
        #: the file decoder reports and clears them.
        self.notes: list[str] = self._background.notes
        self._blocks: Mask | None = None
        self._crc: int | None = None
        self.last_fidelity: Image | None = None
        #: The colour matrix of the fidelity layer's conversions (the stream's; bt601 unless recorded).
        self.matrix = str(extra.get("matrix", "bt601"))
        self._planes: PlanesCompositor | None = None  # set by give_planes
        self._background_planes: Planes | None = None  # this GOP's background, converted at its first frame
        #: The last frame as I420 planes, (height * 3 // 2, width) uint8, once `give_planes` said yes.
        self.last_planes: Planes | None = None
        self.timings: dict[str, float] = defaultdict(float)

    @property
    def background(self) -> Image | None:
        """The decoded background layer in use (None before the first keyframe, and in a GOP coded whole)."""
        return self._shown

    @property
    def blocks(self) -> Mask | None:
        """The last decoded frame's kept blocks, (⌈H/16⌉, ⌈W/16⌉) bool (None before the first)."""
        return self._blocks

    def give_planes(self) -> bool:
        """From now on also give each decoded frame as 4:2:0 planes, in `last_planes`.

        Returns:
            Whether it will: False (and nothing changes) where the frames have no 4:2:0 of their own, with a
            fidelity layer that paints RGB (learned), an odd width or height, or a decoder that does not compose.
        """
        config = self.config
        if not (self.compose and self._fidelity.own_planes) or config.width % 2 or config.height % 2:
            return False
        self._planes = PlanesCompositor(int(config.extra["feather"]), BLOCK)  # type: ignore[call-overload]
        return True

    def decode(self, packet: bytes) -> Image:
        """One packet → (height, width, 3) uint8; CorruptStreamError for damage or a lost reference."""
        try:
            return self._decode(packet)
        except StreamcodecError:
            self._crc = None  # inter frames are refused until the next keyframe
            raise

    def _decode(self, packet: bytes) -> Image:
        frame = bitstream.unpack_frame(packet)
        if frame.frame_type not in (FrameType.SELECTIVE_INTRA, FrameType.SELECTIVE_INTER):
            raise CorruptStreamError(f"{frame.frame_type.name} frame in a selective-mode stream")
        if not frame.is_key:
            self._check_reference(frame)
        if bitstream.FIDELITY not in frame.sections:
            raise CorruptStreamError("selective frame has no fidelity section")
        started = time.perf_counter()
        shape = (-(-self.config.height // BLOCK), -(-self.config.width // BLOCK))
        blocks = decode_mask(frame.sections.get(bitstream.MASK, b""), shape, None if frame.is_key else self._blocks)
        if frame.is_key:
            # Decoded once per distinct background (a static scene costs nothing); None in a GOP coded whole.
            self._shown = self._background.picture(frame, blocks)
            self._background_planes = None
        background = self._shown
        if background is None and not blocks.all():
            # Inter frames come only after a keyframe (_check_reference): that keyframe kept everything, sent no plate.
            raise CorruptStreamError("selective frame leaves part of the picture to a background its keyframe did not send")
        layers = time.perf_counter()
        fidelity = self._fidelity.decode(frame.sections[bitstream.FIDELITY], frame.is_key)
        decoded = time.perf_counter()
        out = self._compositor(fidelity, background, blocks) if self.compose and background is not None else fidelity
        self.timings["layers"] += layers - started
        self.timings["fidelity"] += decoded - layers
        self.timings["composite"] += time.perf_counter() - decoded
        if self._planes is not None:
            composited = time.perf_counter()
            self.last_planes = self._composite_planes(out, background, blocks)
            self.timings["planes"] += time.perf_counter() - composited
        self._blocks, self._crc, self.last_fidelity = blocks, packet[-1], fidelity
        return out

    def _composite_planes(self, out: Image, background: Image | None, blocks: Mask) -> Planes:
        """The frame `out` as I420: the fidelity layer's own planes where kept, the background's converted elsewhere."""
        assert self._planes is not None
        fidelity = self._fidelity.planes()
        if fidelity is None:  # a picture that is not 8-bit 4:2:0 (not from our encoder): the composite, converted
            return to_planes(out, self.matrix)
        if background is None:  # a GOP coded whole
            return fidelity
        if self._background_planes is None:
            self._background_planes = to_planes(background, self.matrix)
        return self._planes(fidelity, self._background_planes, blocks)

    def _check_reference(self, frame: Frame) -> None:
        if frame.reference_distance != 1 or self._crc is None:
            raise CorruptStreamError("inter frame without its reference (an earlier frame was lost or damaged)")
        wanted = bitstream.unpack_reference(frame.sections.get(bitstream.REFERENCE, b""))
        if wanted != self._crc:
            raise CorruptStreamError(
                f"inter frame follows a packet ending 0x{wanted:02x}, the decoder's last ends "
                f"0x{self._crc:02x} (a frame was lost)"
            )
