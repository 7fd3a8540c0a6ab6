"""GC frame packets ↔ integer symbols: the entropy-coding half of the GC codec, without networks.

    symbols (K, h, w) ──encode_packet──► packet bytes ──SymbolDecoder.decode_symbols──► symbols

Kept apart from gc.py (which loads torch for the networks) so that worker processes of
`parallel` import only numpy and the range coder. The serial codec and the parallel one call
these same functions, so their packets and their errors are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, FrameType, StreamConfig
from ..entropy import context
from ..entropy.context import ContextTables
from ..errors import CorruptStreamError, StreamcodecError

Symbols = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EncodedFrame:
    packet: bytes
    keyframe: bool
    estimated_bits: float

    @property
    def bits(self) -> int:
        return len(self.packet) * 8


def encode_packet(sym: Symbols, reference: Symbols | None, tables: ContextTables) -> EncodedFrame:
    """One frame's packet: intra when `reference` is None, else inter against it.

    Args:
        sym: (K, h, w) int64 symbols of the transmitted channels.
        reference: the previous frame's (K, h, w) symbols, or None for a keyframe.
        tables: the model's context tables.
    Returns:
        The packet, whether it is a keyframe, and the model's estimate of its payload in bits.
    """
    keyframe = reference is None
    payload, estimate = context.encode_frame(sym, reference, tables)
    sections = {bitstream.LATENTS: bitstream.pack_latents(sym.shape[0], payload)}
    if reference is not None:
        sections[bitstream.REFERENCE] = bytes([bitstream.reference_hash(reference)])
    frame = Frame(FrameType.INTRA if keyframe else FrameType.INTER, sections, 0 if keyframe else 1)
    return EncodedFrame(bitstream.pack_frame(frame), keyframe, estimate)


def starts_gop(packet: bytes) -> bool:
    """Whether a packet is an intact intra frame: decoding it needs nothing from earlier packets."""
    try:
        return bitstream.unpack_frame(packet).is_key
    except StreamcodecError:
        return False


class SymbolDecoder:
    """Entropy-decodes the packets of one GC stream, in order, holding the reference between them.

    Args:
        config: the stream configuration (already checked against the model).
        tables: the model's context tables.
        factor: the model's downsampling factor (coded size / symbol grid).
    """

    def __init__(self, config: StreamConfig, tables: ContextTables, factor: int) -> None:
        self.config, self.tables, self.factor = config, tables, factor
        self.reference: Symbols | None = None

    def decode_symbols(self, packet: bytes) -> tuple[Symbols, Frame]:
        """Entropy-decode one packet to its (K, h, w) symbols, checking everything on the way.

        On any error the reference is dropped, so inter frames are refused until the next intra frame.
        """
        try:
            sym, frame = self._decode_symbols(packet)
        except StreamcodecError:
            self.reference = None
            raise
        self.reference = sym
        return sym, frame

    def _decode_symbols(self, packet: bytes) -> tuple[Symbols, Frame]:
        frame = bitstream.unpack_frame(packet)
        if frame.frame_type not in (FrameType.INTRA, FrameType.INTER):
            raise CorruptStreamError(f"{frame.frame_type.name} frame in a gc-mode stream (another mode's: damage or a splice)")
        if bitstream.LATENTS not in frame.sections:
            raise CorruptStreamError("frame has no latent section")
        channels, payload = bitstream.unpack_latents(frame.sections[bitstream.LATENTS])
        if channels != self.config.channels:
            raise CorruptStreamError(f"frame has {channels} channels, the stream {self.config.channels}")
        shape = (channels, self.config.coded_height // self.factor, self.config.coded_width // self.factor)
        reference = None if frame.is_key else self._check_reference(frame)
        sym, exact = context.decode_frame(payload, shape, reference, self.tables)
        if not exact:
            raise CorruptStreamError("entropy payload was not consumed exactly")
        return sym, frame

    def _check_reference(self, frame: Frame) -> Symbols:
        """The held reference, if it is the one this inter frame was coded against."""
        if frame.reference_distance != 1 or self.reference is None:
            raise CorruptStreamError("inter frame without its reference (an earlier frame was lost)")
        if bitstream.REFERENCE in frame.sections:  # absent in streams written before 0.2.0
            wanted = bitstream.unpack_reference(frame.sections[bitstream.REFERENCE])
            held = bitstream.reference_hash(self.reference)
            if wanted != held:
                raise CorruptStreamError(
                    f"inter frame refers to reference 0x{wanted:02x}, the decoder holds 0x{held:02x} (an earlier frame was lost)"
                )
        return self.reference
